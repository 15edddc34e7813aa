#!/usr/bin/env python
"""LERF-OVS protocol: oracle ceiling on the real annotations, and evaluation speed.

    python bench/lerf_ovs_protocol.py

1. Oracle ceiling: each category's ground-truth mask itself used as a
   one-level relevancy map, run through the published protocol (30x30 box
   smoothing, min-max normalization, > 0.4, 7x7 vote). The smoothing loses
   thin parts and corners, so even a perfect method scores below 100 % mIoU;
   this is that ceiling on the annotation files in ../shared/data.
2. Speed of one (frame, query) at the LERF-OVS size with 3 levels, and of the
   vectorized 7x7 vote against the published per-pixel loop (on a crop).

Prints the figures and writes bench/results/lerf_ovs_protocol.json. Timings
are wall-clock on a shared machine: noisy.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ccl_gs.io.artifacts import write_json
from ccl_gs.metrics.labels import load_scene_labels
from ccl_gs.metrics.lerf_ovs import localization_points, majority_smooth_7x7, mask_iou, points_in_boxes, segment

REPO = Path(__file__).resolve().parents[1]
LABELS = REPO.parent / "shared" / "data" / "lerf_ovs_labels"


def published_vote(mask: np.ndarray) -> np.ndarray:
    """The published per-pixel loop, for timing only."""
    h, w = mask.shape
    out = mask.copy()
    for i in range(h):
        for j in range(w):
            sq = mask[max(0, i - 3) : min(i + 4, h - 1), max(0, j - 3) : min(j + 4, w - 1)]
            out[i, j] = np.argmax(np.bincount(sq.reshape(-1)))
    return out


def oracle() -> dict:
    out = {}
    for scene_dir in sorted(p for p in LABELS.iterdir() if p.is_dir()):
        ious, hits = [], []
        for fr in load_scene_labels(scene_dir):
            for q in fr.categories:
                rel = fr.masks[q][None].astype(np.float32)
                mask, _ = segment(rel)
                ious.append(mask_iou(mask, fr.masks[q]))
                hits.append(points_in_boxes(localization_points(rel)[0], fr.bboxes[q]))
        out[scene_dir.name] = {"miou": float(np.mean(ious)), "loc_acc": float(np.mean(hits)), "n_pairs": len(ious),
                               "min_iou": float(np.min(ious))}
    return out


def speed(repeats: int = 5) -> dict:
    rng = np.random.default_rng(0)
    h, w, levels = 730, 988, 3
    rel = rng.random((levels, h, w), dtype=np.float32)
    box = np.array([100, 100, 400, 300], float)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        segment(rel)
        points_in_boxes(localization_points(rel)[0], box)
        times.append(time.perf_counter() - t0)
    crop = (rng.random((200, 270)) < 0.5).astype(np.uint8)
    t0 = time.perf_counter()
    ref = published_vote(crop)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = majority_smooth_7x7(crop)
    t_fast = time.perf_counter() - t0
    assert np.array_equal(ref.astype(bool), fast)
    return {
        "pair_seconds_median": float(np.median(times)),
        "pair_shape": [levels, h, w],
        "vote_crop_shape": list(crop.shape),
        "vote_published_loop_seconds": t_loop,
        "vote_vectorized_seconds": t_fast,
    }


def main() -> None:
    results: dict = {}
    if LABELS.is_dir():
        results["oracle_ceiling"] = oracle()
        print(f"{'scene':<12} {'oracle mIoU':>12} {'min IoU':>8} {'loc acc':>8} {'pairs':>6}")
        for s, r in results["oracle_ceiling"].items():
            print(f"{s:<12} {100 * r['miou']:12.2f} {100 * r['min_iou']:8.2f} {100 * r['loc_acc']:8.2f} {r['n_pairs']:6d}")
    else:
        print(f"labels not found at {LABELS}: oracle ceiling skipped")
    results["speed"] = sp = speed()
    print(f"one (frame, query), L=3 at 730x988: {1000 * sp['pair_seconds_median']:.0f} ms (median of 5)")
    print(
        f"7x7 vote on {sp['vote_crop_shape'][0]}x{sp['vote_crop_shape'][1]}: published loop "
        f"{sp['vote_published_loop_seconds']:.2f} s, vectorized {1000 * sp['vote_vectorized_seconds']:.1f} ms (identical output)"
    )
    out = REPO / "bench" / "results" / "lerf_ovs_protocol.json"
    write_json(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
