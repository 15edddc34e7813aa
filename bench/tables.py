#!/usr/bin/env python
"""Markdown tables for the README, generated from the benchmark JSON files (never typed by hand).

    python bench/tables.py semantic bench/results/semantic.json [more.json ...]   # language-field table
    python bench/tables.py lerf                                                # LERF NeRF: PSNR / seconds
    python bench/tables.py dryrun                                              # real-size dry runs + memory estimate
    python bench/tables.py simulation                                          # what each simulation level does
    python bench/tables.py rgb                                                 # RGB Gaussians: held-out PSNR / seconds
    python bench/tables.py weakseg                                             # 3D-OVS protocol: the 3D-OVS method, CCL, LERF

``semantic`` merges the ``summary`` of every file given (later files win for
the same method / level) and prints one row per method and level: mIoU ±
standard deviation, localization accuracy, 3D-selection precision / recall
and the number of runs, plus the 256x256 query latency of every method
measured in those files. ``lerf`` prints ``bench/results/lerf.json``,
``dryrun`` ``bench/results/dryrun.json`` (``bench/bench_dryrun.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def semantic_table(files: list[Path]) -> str:
    """The language-field table of the ``summary`` entries of ``files``."""
    summary: dict[str, dict] = {}
    latency: dict[str, float] = {}
    for f in files:
        d = json.loads(Path(f).read_text())
        summary.update(d.get("summary", {}))
        latency.update(d.get("query_ms_256", {}))
    with_3d = any("miou_3d" in v for v in summary.values())
    extra = " 3D protocol mIoU | 3D protocol mAcc@0.25 |" if with_3d else ""
    lines = ["| method | level | mIoU | loc. acc. |" + extra + " 3D sel. precision | 3D sel. recall | runs |",
             "|---|---|---|---|" + ("---|---|" if with_3d else "") + "---|---|---|"]
    for key, v in summary.items():
        parts = key.split("/")
        method, level = parts[0], parts[-1].removeprefix("level")
        p3 = (f" {v['miou_3d']:.3f} | {v['acc25_3d']:.3f} |" if "miou_3d" in v else " - | - |") if with_3d else ""
        lines.append(f"| {method} | {level} | {v['miou']:.3f} ± {v['miou_std']:.3f} | {v['loc_acc']:.3f} |{p3} "
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


def _dryrun_row(name: str, r: dict) -> str:
    if "error" in r:
        return f"| {name} | - | - | failed: {r['error']} | {r['peak_rss_mib'] / 1024:.1f} GiB | - |"
    i = r["input"]
    if name == "SAM":
        what = (f"{i['images']} images {i['width']}x{i['height']}, {i['points_per_side']}x{i['points_per_side']} points, "
                f"{i['crops']} crop{'s' if i['crops'] > 1 else ''}")
        secs = (f"{r['seconds_per_image']:.0f} s / image, CPU {r['cpu_seconds_per_image']:.0f} s "
                f"(default {r['default_crops']} crops: ~{r['extrapolated_seconds_per_image_default_crops']:.0f} s)")
        out = f"{r['outputs']['raw_masks'][0]} masks pass the filters"
    elif name == "SAM2":
        what = f"{i['frames']} frames {i['width']}x{i['height']}, {i['tracks']} tracks"
        secs = (f"{r['seconds_per_frame']:.0f} s / frame, CPU {r['cpu_seconds'] / i['frames']:.0f} s "
                f"({r['seconds_per_track_frame']:.1f} s / track / frame after the first)")
        out = "tracks " + "x".join(map(str, r["outputs"]["track_masks_last_frame"]))
    else:
        what = f"{i['crops']} masked crops at {i['crop_size']}, batch {i['batch']}"
        secs = f"{r['seconds']:.0f} s, CPU {r['cpu_seconds']:.0f} s ({r['seconds_per_crop']:.2f} s / crop)"
        out = "features " + "x".join(map(str, r["outputs"]["features"]))
    return f"| {name} | {r['model'].split(',')[0]}, {r['params'] / 1e6:.1f} M | {what} | {secs} | {r['peak_rss_mib'] / 1024:.1f} GiB | {out} |"


def dryrun_table(path: Path = REPO / "bench" / "results" / "dryrun.json") -> str:
    """The measured parts and the memory estimate of ``bench/results/dryrun.json``."""
    d = json.loads(path.read_text())
    parts = d["parts"]
    load = [p["loadavg_start"][0] for p in parts.values() if "loadavg_start" in p]
    busy = f", load average {min(load):.0f}-{max(load):.0f} on {d['machine']['cpu_count']} cores" if load else ""
    lines = [f"CPU, {d['threads']} torch threads{busy}, random weights:", "",
             "| part | model, params | input | seconds | peak RSS | outputs |", "|---|---|---|---|---|---|"]
    for key, name in (("sam", "SAM"), ("sam2", "SAM2"), ("clip", "CLIP")):
        if key in parts:
            lines.append(_dryrun_row(name, parts[key]))
    est = d.get("estimate")
    if est:
        c, m = est["config"], est["models"]
        lines += ["", f"Memory estimate, {c['views']} views at {c['width']}x{c['height']}, {c['tracks']} SAM2 tracks, "
                  f"{c['gaussians'] / 1e6:g} M Gaussians ({m['sam_type']}, {Path(m['sam2_config']).stem}, ViT-B-16):", "",
                  "| stage | memory | peak | largest terms |", "|---|---|---|---|"]
        for key, s in est["summary"].items():
            stage, where = key.rsplit("/", 1)
            dom = "; ".join(f"{t['name']} {t['gib']:.1f} GiB" for t in s["dominant"])
            lines.append(f"| {stage} | {'GPU' if where == 'gpu' else 'host'} | {s['peak_gib']:.1f} GiB | {dom} |")
    return "\n".join(lines)


def simulation_table(path: Path = REPO / "bench" / "results" / "simulation.json") -> str:
    """What each simulation level does to the features (``bench/results/simulation.json``)."""
    d = json.loads(path.read_text())
    variants = sorted({k.removeprefix("prototypes_per_track_") for v in d["summary"].values() for k in v
                       if k.startswith("prototypes_per_track_")})
    head = "| level | oracle noise / drift | wrong nearest text, sp / wp | texts per track, sp / wp |"
    head += "".join(f" prototypes per track ({v}), sp / wp |" for v in variants)
    lines = [head, "|---|---|---|---|" + "---|" * len(variants)]
    for lv, v in d["summary"].items():
        info = d["levels"][lv]
        row = (f"| {lv} ({info['name']}) | {info['noise']:g} / {info['drift']:g} | {v['sp']['wrong_nearest']:.3f} / "
               f"{v['wp']['wrong_nearest']:.3f} | {v['sp']['texts_per_track']:.2f} / {v['wp']['texts_per_track']:.2f} |")
        for var in variants:
            p = v.get(f"prototypes_per_track_{var}")
            row += f" {p['sp']:.2f} / {p['wp']:.2f} |" if p else " - |"
        lines.append(row)
    scenes = sorted({r["scene"] for r in d["rows"]})
    lines += ["", f"Scenes {', '.join(map(str, scenes))}; commit {d['commit'][:10]}."]
    return "\n".join(lines)


def _rgb_start(name: str, row: dict) -> str:
    """Where a run's Gaussians started: its sparse points, or ``--init.seeding`` (rows written before that
    option existed started at random)."""
    if row.get("n_init_points") or name.startswith("fern"):  # the fern rows predate n_init_points
        return "sparse points"
    return row.get("config", {}).get("init", {}).get("seeding", "random")


def _rgb_raster(row: dict) -> str:
    """The rasterize mode, 2D blur and growth threshold a run used (rows written before ``--raster.*`` existed
    read as the RGB trainer reads such runs)."""
    from ccl_gs.splat.trainer import with_legacy_defaults  # torch: only for this table

    cfg = with_legacy_defaults(row["config"])
    return f"{cfg['raster']['mode']} {cfg['raster']['eps2d']:g} / {cfg['densify']['grow_grad2d']:g}"


def rgb_table(results: Path = REPO / "bench" / "results") -> str:
    """Held-out PSNR of RGB training: ``rgb_<preset>.json`` (``bench/bench_rgb.py``) and the presets of
    ``rgb_synthetic.json`` (``bench/bench_synthetic_rgb.py``), with their targets where the issue set one."""
    rows = []
    for f in sorted(results.glob("rgb_*.json")):
        d = json.loads(f.read_text())
        if f.name == "rgb_synthetic.json":
            rows += [(f"synthetic {name}", r) for name, r in d.get("presets", d).items() if isinstance(r, dict)]
        else:
            rows.append((d["preset"], d))
    lines = ["| scene | size | start | raster / growth | iterations | held-out PSNR | SSIM | seconds (s/it) | Gaussians | target |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        target = f"{r['target_psnr']:.0f} dB" if r.get("target_psnr") else "-"
        lines.append(f"| {name} | {r['resolution']} | {_rgb_start(name, r)} | {_rgb_raster(r)} | {r['iterations']} | {r['psnr']:.2f} dB | {r['ssim']:.3f} | "
                     f"{r['seconds']:.0f} ({r['seconds_per_iter']:.2f}) | {r['n_gaussians']} | {target} |")
    return "\n".join(lines)


WEAKSEG_ORDER = ("weakseg", "no_rda", "no_fda", "fixed_scale", "fixed_scale_small", "weakseg_fixes", "weakseg_d8", "weakseg_d64",
                 "weakseg_lr_dec", "weakseg_lr_dec100", "weakseg_lr_dec_fixes", "weakseg_lr_dec_d8", "weakseg_lr_dec_d64",
                 "ccl_gated", "lerf")


def _span(values: list[float], fmt: str) -> str:
    """``lo-hi`` of ``values`` (one figure when they agree at ``fmt``; empty when there are none)."""
    if not values:
        return ""
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def weakseg_table(path: Path = REPO / "bench" / "results" / "weakseg.json") -> str:
    """The 3D-OVS-protocol table of ``bench/results/weakseg.json`` (``bench/bench_weakseg.py``): one row per
    method and level, one mIoU column per scene, their mean where every scene has one; the CLIP targets alone
    (per crop scale) as the last rows."""
    rows = json.loads(path.read_text())["rows"]
    scenes = sorted({r["scene"] for r in rows})
    cells: dict[tuple[str, int], dict[int, dict]] = {}
    for r in rows:
        cells.setdefault((r["method"], r["level"]), {})[r["scene"]] = r
    order = {m: i for i, m in enumerate(WEAKSEG_ORDER)}
    keys = sorted(cells, key=lambda k: (k[0].startswith("clip_targets"), k[1], order.get(k[0], len(order)), k[0]))
    head = " | ".join(f"scene {s}" for s in scenes)
    lines = [f"| method | level | mIoU {head} | mean | s / iteration | peak memory |",
             "|---|---|" + "---|" * len(scenes) + "---|---|---|"]
    for key in keys:
        c = cells[key]
        vals = " | ".join(f"{100 * c[s]['miou']:.1f}" if s in c else "-" for s in scenes)
        mean = f"{100 * sum(c[s]['miou'] for s in scenes) / len(scenes):.1f}" if all(s in c for s in scenes) else "-"
        its = [c[s]["s_per_iter"] for s in scenes if s in c and c[s].get("s_per_iter")]
        mem = [c[s]["peak_mb"] for s in scenes if s in c and c[s].get("peak_mb")]
        t = _span(its, "{:.2f}")
        m = _span(mem, "{:.0f}") + (" MB" if mem else "")
        lines.append(f"| `{key[0]}` | {key[1]} | {vals} | {mean} | {t} | {m} |")
    return "\n".join(lines)


def weakseg_fidelity_table(path: Path = REPO / "bench" / "results" / "weakseg.json") -> str:
    """What the 3D-OVS method's fields learned from their targets (rows of ``weakseg.json`` with ``fidelity``,
    see ``bench_weakseg.distillation_fidelity``): on object pixels, the field's accuracy, each crop scale's
    target accuracy and the share of pixels where the field's argmax equals that scale's."""
    rows = [r for r in json.loads(path.read_text())["rows"] if "fidelity" in r]
    order = {m: i for i, m in enumerate(WEAKSEG_ORDER)}
    rows.sort(key=lambda r: (r["scene"], order.get(r["method"], len(order)), r["method"]))
    lines = ["| method | scene | field acc. | target acc. large / medium / small crops | "
             "field = target, large / medium / small | mIoU |", "|---|---|---|---|---|---|"]
    for r in rows:
        f = r["fidelity"]
        lines.append(f"| `{r['method']}` | {r['scene']} | {f['field_acc']:.2f} | "
                     f"{' / '.join(f'{a:.2f}' for a in f['target_acc'])} | {' / '.join(f'{a:.2f}' for a in f['agree'])} | "
                     f"{100 * r['miou']:.1f} |")
    return "\n".join(lines)


TABLES = {"weakseg": weakseg_table, "weakseg_fidelity": weakseg_fidelity_table, "rgb": rgb_table, "lerf": lerf_table, "dryrun": dryrun_table, "simulation": simulation_table}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("semantic", *TABLES):
        print(__doc__, file=sys.stderr)
        return 2
    print(semantic_table([Path(a) for a in argv[1:]]) if argv[0] == "semantic" else TABLES[argv[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
