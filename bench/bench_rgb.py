#!/usr/bin/env python
"""RGB Gaussian training quality and speed on the real scenes in ../shared/data.

Presets:
  fern252  LLFF fern at images_16 (252x189), views 0, 8, 16 held out
  fern504  LLFF fern at images_8 (504x378), views 0, 8, 16 held out (NeRF reports 25.17 dB here)
  lego     NeRF-synthetic lego subset (25 train / 10 test views) at 200x200, train.py's default options

    python bench/bench_rgb.py fern252 [--iterations N] [--max-seconds S]

Prints held-out PSNR, SSIM, seconds, seconds per iteration and the Gaussian
count, and writes bench/results/rgb_<preset>.json (rgb_<preset>_it<N>.json
with --iterations N).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ccl_gs.io.artifacts import write_json  # noqa: E402
from ccl_gs.splat.strategy import DensifyConfig  # noqa: E402
from ccl_gs.splat.trainer import RGBTrainConfig, run  # noqa: E402

DATA = REPO.parent / "shared" / "data"
TARGET_PSNR = {"lego": 26.0}
"""Held-out PSNR a preset should reach with default options (none for fern)."""


def preset(name: str, iterations: int | None, max_seconds: float) -> RGBTrainConfig:
    """The benchmark configs; densification runs over the first ~55% of the steps."""
    if name in ("fern252", "fern504"):
        iters = iterations or (3000 if name == "fern252" else 1500)
        return RGBTrainConfig(
            data=DATA / "llff_fern",
            factor=16 if name == "fern252" else 8,
            iterations=iters,
            max_seconds=max_seconds,
            sh_degree=3,
            sh_degree_interval=max(iters // 4, 1),
            densify=DensifyConfig(refine_start_iter=200, refine_stop_iter=int(iters * 0.55), refine_every=100),
        )
    if name == "lego":  # train.py's default options at 200x200
        default = RGBTrainConfig()
        return RGBTrainConfig(
            data=DATA / "nerf_synthetic_lego_small",
            factor=4,
            iterations=iterations or default.iterations,
            max_seconds=max_seconds,
        )
    raise SystemExit(f"unknown preset '{name}' (fern252 | fern504 | lego)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset", choices=["fern252", "fern504", "lego"])
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--max-seconds", type=float, default=1200.0, help="training time budget (default 20 minutes)")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary folder)")
    args = ap.parse_args()
    cfg = preset(args.preset, args.iterations, args.max_seconds)
    if not cfg.data.is_dir():
        raise SystemExit(f"missing data folder {cfg.data}")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(cfg, out=args.out or Path(tmp) / args.preset, progress=True)
        m = run(cfg)
    row = {
        "preset": args.preset,
        "resolution": f"{m['width']}x{m['height']}",
        "psnr": round(m["psnr"], 3),
        "ssim": round(m["ssim"], 4),
        "seconds": round(m["seconds"], 1),
        "seconds_per_iter": round(m["seconds_per_iter"], 4),
        "iterations": m["iterations"],
        "n_gaussians": m["n_gaussians"],
        "test_views": m["test_views"],
        "device": m["device"],
        "target_psnr": TARGET_PSNR.get(args.preset),
    }
    for k, v in row.items():
        print(f"{k:>18}: {v}")
    name = args.preset if args.iterations is None else f"{args.preset}_it{args.iterations}"
    row["preset"] = name
    write_json(REPO / "bench" / "results" / f"rgb_{name}.json", {**row, "config": dataclasses.asdict(cfg)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
