#!/usr/bin/env python
"""Train 3D Gaussians on a posed scene (RGB stage).

    python train.py --data ../shared/data/llff_fern --out outputs/fern

writes ``<out>/point_cloud.ply`` (standard 3DGS layout), ``<out>/metrics.json``
(held-out PSNR / SSIM, Gaussian count, iterations, seconds), the resolved
``<out>/config.json`` and resumable checkpoints in ``<out>/ckpt/``. Re-running
the same command resumes a killed run, or reuses a finished one.
"""

from __future__ import annotations

import argparse
import sys

from ccl_gs.config import add_arguments, from_args
from ccl_gs.splat.trainer import RGBTrainConfig, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, RGBTrainConfig)
    cfg = from_args(RGBTrainConfig, parser.parse_args(argv), base=RGBTrainConfig())
    try:
        metrics = run(cfg)
    except (ValueError, RuntimeError, OSError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tag = " (reused finished run)" if metrics.get("reused") else ""
    print(
        f"{metrics['scene']}: held-out PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}, "
        f"{metrics['n_gaussians']} Gaussians, {metrics['iterations']} iterations, {metrics['seconds']:.0f} s{tag}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
