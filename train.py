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
    ns = parser.parse_args(argv)
    try:
        metrics = run(from_args(RGBTrainConfig, ns, base=RGBTrainConfig()))
    except (ValueError, RuntimeError, OSError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tag = " (reused finished run)" if metrics.get("reused") else ""
    held_out = (
        "no held-out views" if metrics["psnr"] is None
        else f"held-out PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}"
    )
    print(
        f"{metrics['scene']}: {held_out}, "
        f"{metrics['n_gaussians']} Gaussians, {metrics['iterations']} iterations, {metrics['seconds']:.0f} s{tag}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
