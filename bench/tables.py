#!/usr/bin/env python
"""Markdown tables for the README, generated from the benchmark JSON files (never typed by hand).

    python bench/tables.py semantic bench/results/semantic.json [more.json ...]   # language-field table
    python bench/tables.py lerf                                                # LERF NeRF: PSNR / seconds

``semantic`` merges the ``summary`` of every file given (later files win for
the same method / level) and prints one row per method and level: mIoU ±
standard deviation, localization accuracy, 3D-selection precision / recall
and the number of runs, plus the 256x256 query latency of every method
measured in those files. ``lerf`` prints ``bench/results/lerf.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def semantic_table(files: list[Path]) -> str:
    """The language-field table of the ``summary`` entries of ``files``."""
    summary: dict[str, dict] = {}
    latency: dict[str, float] = {}
    for f in files:
        d = json.loads(Path(f).read_text())
        summary.update(d.get("summary", {}))
        latency.update(d.get("query_ms_256", {}))
    lines = ["| method | level | mIoU | loc. acc. | 3D sel. precision | 3D sel. recall | runs |",
             "|---|---|---|---|---|---|---|"]
    for key, v in summary.items():
        parts = key.split("/")
        method, level = parts[0], parts[-1].removeprefix("level")
        lines.append(f"| {method} | {level} | {v['miou']:.3f} ± {v['miou_std']:.3f} | {v['loc_acc']:.3f} | "
                     f"{v['selection_precision']:.3f} | {v['selection_recall']:.3f} | {v['runs']} |")
    if latency:
        lines.append("")
        lines.append("Query latency, one 256x256 view, all queries, CPU: "
                     + ", ".join(f"{m} {ms / 1000:.2f} s" if ms >= 1000 else f"{m} {ms:.0f} ms"
                                 for m, ms in latency.items()) + ".")
    return "\n".join(lines)


def lerf_table(path: Path = REPO / "bench" / "results" / "lerf.json") -> str:
    """The LERF NeRF table of ``bench/results/lerf.json``."""
    runs = json.loads(path.read_text())["runs"]
    lines = ["| scene | size | preset | iterations | held-out PSNR | seconds (s/it, threads) | Gaussians (same views) |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        g = f"{r['gaussians_psnr']:.2f} dB" if r.get("gaussians_psnr") is not None else "-"
        lines.append(f"| {r['case']} | {r['width']}x{r['height']} | {r['preset']} | {r['iterations']} | "
                     f"{r['psnr']:.2f} dB | {r['seconds']:.0f} ({r['seconds_per_iter']:.2f}, {r['threads']}) | {g} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("semantic", "lerf"):
        print(__doc__, file=sys.stderr)
        return 2
    print(semantic_table([Path(a) for a in argv[1:]]) if argv[0] == "semantic" else lerf_table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
