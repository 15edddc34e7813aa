"""Inspect a scene folder: ``python -m ccl_gs.data.readers ROOT [--format F] [--factor N] [--test-every N]``.

Prints the detected format, views, intrinsics, split and point count, or a
one-line error naming the file or option at fault (exit status 1).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from ccl_gs.data.scene import SceneError, load_scene


def summary(root: Path, format: str = "auto", factor: int | None = None, test_every: int = 8) -> str:
    """A short human-readable description of the scene at ``root``."""
    options = {} if factor is None else {"factor": factor}
    scene = load_scene(root, format=format, **options)
    sizes = Counter((c.width, c.height) for c in scene.cameras)
    models = Counter(c.model for c in scene.cameras)
    c0 = scene.cameras[0]
    split = {k: len(scene.views(k, test_every)) for k in ("train", "test")}
    lines = [
        f"scene       {scene.name} ({scene.format}) at {scene.root}",
        f"views       {len(scene)}: train {split['train']}, test {split['test']}"
        + (" (format's own split)" if scene.split is not None and test_every == 8 else f" (every {test_every}th held out)"),
        f"images      {scene.image_paths[0].parent}  sizes {dict(sizes)}",
        f"cameras     {dict(models)}; view 0: fx {c0.fx:.2f} fy {c0.fy:.2f} cx {c0.cx:.2f} cy {c0.cy:.2f}"
        + (f" distortion {tuple(round(d, 5) for d in c0.distortion)}" if c0.has_distortion else ""),
        f"points      {0 if scene.points is None else len(scene.points)}",
        f"scale       {scene.scene_scale:.3f} (camera radius x 1.1)",
    ]
    if scene.bounds is not None:
        lines.append(f"bounds      near {np.min(scene.bounds[:, 0]):.3f}, far {np.max(scene.bounds[:, 1]):.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ccl_gs.data.readers", description="Inspect a scene folder.")
    ap.add_argument("root", type=Path, help="scene folder")
    ap.add_argument("--format", default="auto", help="reader name or auto (default: auto)")
    ap.add_argument("--factor", type=int, default=None, help="images_{factor} folder (colmap, llff, nerfstudio)")
    ap.add_argument("--test-every", type=int, default=8, help="hold out every n-th view (default: 8)")
    args = ap.parse_args(argv)
    try:
        print(summary(args.root, args.format, args.factor, args.test_every))
    except (SceneError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
