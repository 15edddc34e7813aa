#!/usr/bin/env python
"""LERF-OVS evaluation (segmentation mIoU and localization accuracy), as LangSplat evaluates it.

    python eval/lerf_ovs.py --renders outputs/renders --labels data/lerf_ovs/label --out results/lerf_ovs.json

Renders are read from ``<renders>/<scene>/<frame_stem>/<query_slug>.npy``: a
float32 ``[L, H, W]`` relevancy per level (L = 1 for single-level methods), at
the annotation size (another size with the same aspect ratio is resized
bilinearly unless ``--resize error``). ``frame_stem`` is the label file's stem
(``frame_00041``); ``query_slug`` is the category in lower case with runs of
other characters replaced by ``_`` (``rubber_duck_with_hat``). Every labelled
frame and every category must have a render. ``--protocol 3d`` scores the
3D-selection protocol instead (renders = render.py's ``lerf_ovs_3d/``: the
selected Gaussians' opacity; mIoU and mAcc@0.25; never mixed with the 2D
figures). Protocol details:
``ccl_gs/metrics/lerf_ovs/``. Exit status 2 on bad input or an ``--out``
that names a folder, with a one-line message naming the file.
"""

from __future__ import annotations

import argparse
import sys

from ccl_gs.config import add_arguments, from_args
from ccl_gs.io.artifacts import ArtifactError, check_out_file, write_json
from ccl_gs.metrics.labels import EvalInputError
from ccl_gs.metrics.lerf_ovs import LerfOvsEvalConfig, evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, LerfOvsEvalConfig)
    cfg = from_args(LerfOvsEvalConfig, parser.parse_args(argv))
    try:
        check_out_file(cfg.out)
        results, report = evaluate(cfg)
    except (EvalInputError, ArtifactError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    second, key = ("mAcc@.25", "acc_25") if cfg.protocol == "3d" else ("loc acc", "loc_acc")
    print(f"protocol: {report['protocol']}")
    print(f"{'scene':<20} {'mIoU':>8} {second:>8} {'pairs':>6}")
    for r in results:
        print(f"{r.scene:<20} {100 * r.miou:8.2f} {100 * getattr(r, key):8.2f} {r.n_pairs:6d}")
    m, p = report["mean_over_scenes"], report["pooled"]
    print(f"{'mean (over scenes)':<20} {100 * m['miou']:8.2f} {100 * m[key]:8.2f}")
    print(f"{'pooled (all pairs)':<20} {100 * p['miou']:8.2f} {100 * p[key]:8.2f} {p['n_pairs']:6d}")
    write_json(cfg.out, report)
    print(f"wrote {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
