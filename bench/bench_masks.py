"""Benchmark: the vectorized two-level mask merge against the straightforward loop.

A synthetic, realistic candidate set (default 300 masks at 1008 x 756, three
granularities: whole objects as ellipses / rectangles / blobs, parts and
subparts inside them, jittered near-duplicates, low-score strays, scores in
[0.6, 1.0]) goes through the full stage-1 mask rule - score filter,
per-granularity LangSplat mask NMS, level union, non-overlap painting, drop of
(nearly) empty masks, index maps - once with :func:`two_level_masks` and once
with :func:`two_level_masks_reference` (a Python loop over mask pairs with
numpy, like LangSplat's ``mask_nms``). Prints a table, checks that the outputs
are identical, writes ``bench/results/masks.json``.

    .venv/bin/python bench/bench_masks.py [--n-masks 300] [--width 1008] [--height 756]

Timings are wall-clock on whatever machine runs it; on a shared machine they
are noisy. The fast path runs with ``--threads`` torch threads (default 1, the
same as the single-threaded reference).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccl_gs.io.artifacts import write_json  # noqa: E402
from ccl_gs.masks.merge import MergeConfig, two_level_masks, two_level_masks_reference  # noqa: E402
from ccl_gs.masks.types import RawMasks  # noqa: E402


def _shape(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:  # rotated ellipse
        t = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u, v = dy * np.cos(t) + dx * np.sin(t), -dy * np.sin(t) + dx * np.cos(t)
        return (u / ry) ** 2 + (v / rx) ** 2 < 1
    if kind == 1:  # rectangle
        return (np.abs(yy - cy) < ry) & (np.abs(xx - cx) < rx)
    # blob: union of three ellipses
    m = np.zeros(yy.shape, dtype=bool)
    for _ in range(3):
        oy, ox = rng.uniform(-ry / 2, ry / 2), rng.uniform(-rx / 2, rx / 2)
        m |= ((yy - cy - oy) / (ry * 0.7)) ** 2 + ((xx - cx - ox) / (rx * 0.7)) ** 2 < 1
    return m


def synthetic_candidates(n: int, h: int, w: int, seed: int = 0) -> RawMasks:
    """``n`` candidate masks with a whole > part > subpart hierarchy, duplicates and strays."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    masks: list[np.ndarray] = []
    gran: list[int] = []

    def add(m: np.ndarray, g: int) -> None:
        if m.any() and len(masks) < n:
            masks.append(m)
            gran.append(g)

    while len(masks) < int(n * 0.8):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.04, 0.25) * h, rng.uniform(0.04, 0.25) * w
        whole = _shape(rng, yy, xx, cy, cx, ry, rx)
        add(whole, 2)
        for _ in range(rng.integers(1, 3)):
            py, px = cy + rng.uniform(-ry, ry) / 2, cx + rng.uniform(-rx, rx) / 2
            part = whole & _shape(rng, yy, xx, py, px, ry * rng.uniform(0.3, 0.7), rx * rng.uniform(0.3, 0.7))
            add(part, 1)
            if rng.random() < 0.7:
                sy, sx = py + rng.uniform(-ry, ry) / 4, px + rng.uniform(-rx, rx) / 4
                add(part & _shape(rng, yy, xx, sy, sx, ry * 0.25, rx * 0.25), 0)
    while len(masks) < n:
        if rng.random() < 0.6:  # near-duplicate: shifted by a few pixels
            i = int(rng.integers(len(masks)))
            add(np.roll(masks[i], (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1)), gran[i])
        else:  # stray
            add(_shape(rng, yy, xx, rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, 60), rng.uniform(5, 60)),
                int(rng.integers(3)))
    iou = rng.uniform(0.75, 1.0, n).astype(np.float32)
    stab = rng.uniform(0.8, 1.0, n).astype(np.float32)
    return RawMasks(
        masks=np.stack(masks), granularity=np.array(gran, dtype=np.int8), scores=iou * stab,
        predicted_iou=iou, stability=stab,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-masks", type=int, default=300)
    ap.add_argument("--width", type=int, default=1008)
    ap.add_argument("--height", type=int, default=756)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="runs of the fast path (median reported)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: like the single-threaded numpy reference; on a busy "
                         "machine more threads mostly wait on each other)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "masks.json")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    raw = synthetic_candidates(args.n_masks, args.height, args.width, args.seed)
    cfg = MergeConfig()
    counts = np.bincount(raw.granularity, minlength=3).tolist()
    print(f"{args.n_masks} masks at {args.width}x{args.height} (subpart/part/whole {counts}), "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cpus")

    fast_times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fast = two_level_masks(raw, cfg)
        fast_times.append(time.perf_counter() - t)
    t = time.perf_counter()
    ref = two_level_masks_reference(raw, cfg)
    ref_time = time.perf_counter() - t

    fields = ("masks", "levels", "index_maps", "scores", "granularity")
    identical = {f: bool(np.array_equal(getattr(fast, f), getattr(ref, f))) for f in fields}
    fast_med = statistics.median(fast_times)
    per_level = np.bincount(fast.levels, minlength=2).tolist()
    rows = [
        ("vectorized (two_level_masks)", fast_med),
        ("reference loop (numpy per pair)", ref_time),
    ]
    print(f"{'path':34s} {'time [s]':>10s}")
    for name, sec in rows:
        print(f"{name:34s} {sec:10.3f}")
    print(f"{'speed-up':34s} {ref_time / fast_med:9.1f}x")
    print(f"kept masks sp / wp: {per_level[0]} / {per_level[1]}; fast runs: "
          + ", ".join(f"{x:.3f}" for x in fast_times))
    print("outputs identical:", all(identical.values()), identical)

    write_json(args.out, {
        "n_masks": args.n_masks, "width": args.width, "height": args.height, "seed": args.seed,
        "granularity_counts": counts, "kept_sp_wp": per_level,
        "fast_seconds_median": fast_med, "fast_seconds_runs": fast_times, "reference_seconds": ref_time,
        "speedup": ref_time / fast_med, "identical": identical,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "torch": torch.__version__,
        "note": "wall clock on a shared CPU machine; noisy",
        "config": cfg,
    })
    assert all(identical.values()), f"vectorized and reference outputs differ: {identical}"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
