#!/usr/bin/env python
"""Stage 1: two-level masks, SAM2 track labels and CLIP features for every image of a scene.

    python preprocess/run.py --data SCENE --out SCENE/ccl/preprocess \\
        --sam-checkpoint ckpts/sam_vit_h_4b8939.pth --sam2-checkpoint ckpts/sam2.1_hiera_large.pt

Synthetic scenes (simulated masks / tracks, oracle encoder):

    python preprocess/run.py --data SCENE --out OUT --mask-source precomputed \\
        --track-source precomputed --encoder oracle

Several GPUs / machines: compute the tracks once, then one shard each, then verify:

    python preprocess/run.py --data SCENE --out OUT --steps tracks
    python preprocess/run.py --data SCENE --out OUT --steps images --shard 0/4   # ... 3/4
    python preprocess/run.py --data SCENE --out OUT --steps verify

Re-running resumes: complete images are kept, missing or damaged ones are
redone; Ctrl-C keeps the images finished so far and exits with status 130. A
folder made with another config is refused (the error names the differing
keys) unless --overwrite is given. See ``ccl_gs.preprocess``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ccl_gs.config import add_arguments, from_args
from ccl_gs.data.scene import SceneError
from ccl_gs.interrupt import report as report_interrupt
from ccl_gs.io.artifacts import ArtifactError
from ccl_gs.preprocess import PreprocessConfig, PreprocessError, RunOptions, run_preprocess


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="scene folder (COLMAP, LLFF, nerfstudio, Blender)")
    parser.add_argument("--out", type=Path, required=True, help="artifact folder, e.g. SCENE/ccl/preprocess")
    add_arguments(parser, PreprocessConfig)
    add_arguments(parser, RunOptions)
    # Short names for the two checkpoints every real run needs (same settings as --sam.checkpoint / --sam2.checkpoint).
    parser.add_argument("--sam-checkpoint", dest="sam.checkpoint", type=Path, default=argparse.SUPPRESS,
                        help="SAM checkpoint file (alias of --sam.checkpoint)")
    parser.add_argument("--sam2-checkpoint", dest="sam2.checkpoint", type=Path, default=argparse.SUPPRESS,
                        help="SAM2 checkpoint file (alias of --sam2.checkpoint)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = from_args(PreprocessConfig, args, base=PreprocessConfig())
    opts = from_args(RunOptions, args, base=RunOptions())
    try:
        result = run_preprocess(args.data, args.out, cfg, opts)
    except KeyboardInterrupt as e:
        return report_interrupt(e)
    except (PreprocessError, ArtifactError, SceneError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = len(result.manifest.extra["images"])
    if opts.steps == "verify":
        if result.missing:
            shown = ", ".join(result.missing[:5]) + (" ..." if len(result.missing) > 5 else "")
            print(f"{args.out}: {len(result.missing)} of {total} images incomplete ({shown})", file=sys.stderr)
            return 1
        print(f"{args.out}: complete, {total} images")
        return 0
    for stem, reason in result.redone.items():
        print(f"redone {stem}: {reason}", file=sys.stderr)
    print(
        f"{args.out}: shard {result.shard[0]}/{result.shard[1]}: {len(result.processed)} written, "
        f"{len(result.skipped)} already done; {total - len(result.missing)} of {total} images complete"
        + (", tracks computed" if result.tracks_computed else "")
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
