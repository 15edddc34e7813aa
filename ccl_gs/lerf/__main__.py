"""Train a LERF run (targets -> NeRF + language field):

    python -m ccl_gs.lerf --data SCENE --out DIR [--preset cpu|lerf|lerf-lite] [--target.clip-encoder oracle ...]

computes the CLIP pyramid / DINO targets into ``DIR/targets`` when ``--targets``
is not given, trains, and writes ``DIR/lerf.pt``, ``metrics.json`` (held-out
PSNR, seconds), ``config.json``, ``renders/test/`` and resumable checkpoints in
``DIR/ckpt/``. Query it with ``render.py --field-dir DIR``.
"""

from __future__ import annotations

import argparse
import sys

from ccl_gs.config import add_arguments, from_args
from ccl_gs.interrupt import report as report_interrupt
from ccl_gs.io.artifacts import ArtifactError
from ccl_gs.lerf.targets import TargetsError
from ccl_gs.lerf.train import LerfTrainConfig, config_for, run


def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="cpu")
    known, _ = pre.parse_known_args(argv)
    parser = argparse.ArgumentParser(prog="python -m ccl_gs.lerf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, LerfTrainConfig)
    try:
        base = config_for(known.preset)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = from_args(LerfTrainConfig, parser.parse_args(argv), base=base)
    try:
        m = run(cfg)
    except KeyboardInterrupt as e:
        return report_interrupt(e)
    except (ArtifactError, TargetsError, ValueError, OSError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    state = " (reused)" if m.get("reused") else ""
    psnr = "n/a" if m.get("psnr") is None else f"{m['psnr']:.2f} dB"
    print(f"lerf {cfg.preset}{state}: {m['scene']} held-out PSNR {psnr}, {m['iterations']} iterations, "
          f"{m['seconds']:.0f} s -> {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
