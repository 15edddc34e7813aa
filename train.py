#!/usr/bin/env python
"""Train 3D Gaussians on a posed scene (RGB stage).

    python train.py --data ../shared/data/llff_fern --out outputs/fern

writes ``<out>/point_cloud.ply`` (standard 3DGS layout), ``<out>/metrics.json``
(held-out PSNR / SSIM, Gaussian count, iterations, seconds), the resolved
``<out>/config.json`` and resumable checkpoints in ``<out>/ckpt/``. Re-running
the same command resumes a killed run, or reuses a finished one. Ctrl-C saves
a checkpoint of the current step and exits with status 130.
"""

from __future__ import annotations

import argparse
import sys

from ccl_gs.config import add_arguments, from_args
from ccl_gs.interrupt import report as report_interrupt
from ccl_gs.splat.trainer import RGBTrainConfig, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, RGBTrainConfig)
    ns = parser.parse_args(argv)
    try:
        metrics = run(from_args(RGBTrainConfig, ns, base=RGBTrainConfig()))
    except KeyboardInterrupt as e:
        return report_interrupt(e)
    except (ValueError, RuntimeError, OSError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if metrics.get("reused"):
        tag = " (reused finished run)"
    else:
        tag = f" (resumed from step {metrics['resumed_from_step']})" if metrics.get("resumed_from_step") else ""
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
