#!/usr/bin/env python
"""Frame time of the interactive viewer on CPU: one frame as the page gets it.

A frame is :func:`ccl_gs.viewer.frame.render_frame` (render the run at the
browser's camera, then the heat map / features / selection) plus the JPEG
encoding the page is sent. Cases, on a trained run (default: the demo
scene's semantic field, ``bash scripts/synthetic.sh outputs/demo``), at
the first training camera, square frames of 256x256 and 512x512:

  idle       the colour alone (no query)
  query      one query, its heat map (canonical relevancy, auto level)
  select     the query's heat map and its 3D selection highlighted
  features   the language features as colour

Each figure is the median (and 90th percentile) of ``--repeats`` frames after
``--warmup`` frames. The machine may be shared: timings are as measured.

    python bench/bench_viewer.py [--field-dir outputs/demo/field] [--query vase] [--repeats 9]

Prints a table and writes bench/results/viewer.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ccl_gs.field.render import load_viewable_run  # noqa: E402
from ccl_gs.io.artifacts import write_json  # noqa: E402
from ccl_gs.runtime import device_for_run  # noqa: E402
from ccl_gs.viewer.camera import pose_from_view, render_item  # noqa: E402
from ccl_gs.viewer.frame import DisplayState, QueryEncoder, render_frame  # noqa: E402

SIDES = (256, 512)
JPEG_QUALITY = 90
"""The viewer's default ``--jpeg-quality``."""


def cases(query: str) -> dict[str, DisplayState]:
    """The display states timed, by name."""
    return {
        "idle": DisplayState(display="rgb"),
        "query": DisplayState(queries=(query,)),
        "select": DisplayState(queries=(query,), select=True),
        "features": DisplayState(display="features"),
    }


def time_frames(model, encoder, item, state, repeats: int, warmup: int) -> dict[str, float]:
    """Median / p90 milliseconds of render + encode, render alone, encode alone."""
    total, render, encode = [], [], []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        frame = render_frame(model, encoder, item, state)
        t1 = time.perf_counter()
        ok, _ = cv2.imencode(".jpg", frame.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        t2 = time.perf_counter()
        assert ok
        if i >= warmup:
            total.append(t2 - t0)
            render.append(t1 - t0)
            encode.append(t2 - t1)
    ms = lambda xs: round(1000 * statistics.median(xs), 1)  # noqa: E731
    return {
        "frame_ms": ms(total),
        "frame_p90_ms": round(1000 * float(np.percentile(total, 90)), 1),
        "render_ms": ms(render),
        "encode_ms": ms(encode),
        "fps": round(1.0 / statistics.median(total), 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--field-dir", type=Path, default=REPO / "outputs" / "demo" / "field")
    ap.add_argument("--query", default="vase")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "viewer.json")
    args = ap.parse_args()

    if not args.field_dir.is_dir():
        print(f"error: no trained run at {args.field_dir}; run: bash scripts/synthetic.sh outputs/demo", file=sys.stderr)
        return 2
    import ccl_gs.encoders.oracle  # noqa: F401  (the demo's text encoder)

    device = device_for_run()
    model = load_viewable_run(args.field_dir, None, device)
    encoder = QueryEncoder(model)
    start = model.dataset("train")[0]
    pose = pose_from_view(start["viewmat"].cpu().numpy(), start["K"].cpu().numpy(), int(start["height"]))
    n_gauss = int(model.lf.params["means"].shape[0]) if hasattr(model, "lf") else None
    rows = []
    print(f"{model.scene.name}: {n_gauss} Gaussians, device {device}, torch threads {torch.get_num_threads()}")
    print(f"{'case':10s} {'size':>9s} {'frame ms':>9s} {'p90 ms':>8s} {'render':>8s} {'jpeg':>6s} {'fps':>6s}")
    for side in SIDES:
        item = render_item(pose, 1.0, side)
        for name, state in cases(args.query).items():
            r = time_frames(model, encoder, item, state, args.repeats, args.warmup)
            rows.append({"case": name, "width": side, "height": side, **r})
            print(f"{name:10s} {side:>4d}x{side:<4d} {r['frame_ms']:9.1f} {r['frame_p90_ms']:8.1f} {r['render_ms']:8.1f} "
                  f"{r['encode_ms']:6.1f} {r['fps']:6.2f}")
    write_json(args.out, {
        "note": "one viewer frame on CPU: render_frame (render + heat map / selection / features) + JPEG encoding; "
                "median and 90th percentile over the repeats; shared machine, noisy",
        "run": str(args.field_dir),
        "scene": model.scene.name,
        "gaussians": n_gauss,
        "query": args.query,
        "camera": "first training view, square frames",
        "repeats": args.repeats,
        "warmup": args.warmup,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": str(device),
        },
        "rows": rows,
    })
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
