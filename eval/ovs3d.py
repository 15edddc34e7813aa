#!/usr/bin/env python
"""3D-OVS evaluation (per-class mIoU and pixel accuracy), as the 3D-OVS release computes it.

    python eval/ovs3d.py --renders outputs/ovs3d_renders --data data/3d_ovs --out results/ovs3d.json

Renders are read from ``<renders>/<scene>/<view>.npy``: float32 per-class
scores ``[C, H, W]`` (``[L, C, H, W]`` allowed with ``--protocol threshold``),
``<view>`` being a folder name under ``<data>/<scene>/segmentations/``, with
``<renders>/<scene>/meta.json`` = ``{"classes": [...]}`` naming the channels;
its class set must equal ``classes.txt``. Ground-truth masks are resized
(nearest) to the render size. ``--protocol argmax`` (default) is the release's
protocol, quirks included (a class absent from both GT and prediction scores
IoU 0; a pixel with no or two GT classes is always wrong); ``--protocol
threshold`` applies LangSplat's per-query mask rule to each class. Details:
``ccl_gs/metrics/ovs3d.py``. Exit status 2 on bad input or an ``--out``
that names a folder, with a one-line message naming the file.
"""

from __future__ import annotations

import argparse
import sys

from ccl_gs.config import add_arguments, from_args
from ccl_gs.io.artifacts import ArtifactError, check_out_file, write_json
from ccl_gs.metrics.labels import EvalInputError
from ccl_gs.metrics.ovs3d import Ovs3dEvalConfig, evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, Ovs3dEvalConfig)
    cfg = from_args(Ovs3dEvalConfig, parser.parse_args(argv))
    try:
        check_out_file(cfg.out)
        results, report = evaluate(cfg)
    except (EvalInputError, ArtifactError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"protocol: {cfg.protocol}")
    print(f"{'scene':<20} {'mIoU':>8} {'acc':>8} {'views':>6}")
    fmt = lambda v: f"{100 * v:8.2f}" if v is not None else f"{'-':>8}"  # noqa: E731
    for r in results:
        print(f"{r.scene:<20} {fmt(r.miou)} {fmt(r.accuracy)} {r.n_views:6d}")
    m = report["mean_over_scenes"]
    print(f"{'mean (over scenes)':<20} {fmt(m['miou'])} {fmt(m['accuracy'])}")
    write_json(cfg.out, report)
    print(f"wrote {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
