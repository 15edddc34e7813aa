"""Train the 3D-OVS method on a finished RGB run (targets -> per-Gaussian language on frozen geometry):

    python -m ccl_gs.weakseg --rgb-run DIR --out DIR [--target.clip-encoder oracle ...] [--iterations N]

computes the multi-scale CLIP / DINO targets into ``OUT/targets`` when
``--targets`` is not given, trains against the scene's class names
(``segmentations/classes.txt``) and writes ``OUT/weakseg.pt``,
``point_cloud.ply``, ``metrics.json``, ``config.json``, ``manifest.json``.
Query it with ``render.py --field-dir OUT --ovs3d-data SCENE``.
"""

from __future__ import annotations

import argparse
import sys

from ccl_gs.config import add_arguments, from_args
from ccl_gs.interrupt import report as report_interrupt
from ccl_gs.io.artifacts import ArtifactError
from ccl_gs.weakseg.targets import WeaksegTargetsError
from ccl_gs.weakseg.train import WeaksegConfig, WeaksegError, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ccl_gs.weakseg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, WeaksegConfig)
    try:
        cfg = from_args(WeaksegConfig, parser.parse_args(argv))
        m = run(cfg)
    except KeyboardInterrupt as e:
        return report_interrupt(e)
    except (WeaksegError, WeaksegTargetsError, ArtifactError, ValueError, OSError, FloatingPointError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    state = " (reused)" if m.get("reused") else ""
    print(f"3D-OVS field{state}: {m['iterations']} iterations, {len(m['classes'])} classes, {m['seconds']:.0f} s -> {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
