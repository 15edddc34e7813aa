"""The LERF-OVS protocol steps on one relevancy map: box filter, level choice, mask, majority vote, IoU, localization.

Each function reproduces one step of LangSplat's evaluation; see
:mod:`ccl_gs.metrics.lerf_ovs` for the protocol.
"""

from __future__ import annotations

import cv2
import numpy as np

BOX_SIZE = 30
"""Side of LangSplat's mean filter."""
MASK_THRESHOLD = 0.4
"""LangSplat's ``--mask_thresh`` default (the value its published numbers use)."""
MAJORITY_RADIUS = 3
"""Half-size of the 7x7 majority window."""


def box_filter_30(relevancy: np.ndarray) -> np.ndarray:
    """30x30 mean filter with ``cv2.filter2D`` semantics.

    Even-size kernel anchored at its centre (15, 15): the window of pixel ``i``
    is ``[i - 15, i + 14]``; borders are reflect-101 (``cv2.BORDER_DEFAULT``,
    ``dcb|abcd|cba``). This calls ``cv2.filter2D`` itself, with LangSplat's
    kernel ``np.ones((30, 30)) / 900``, so results are bit-identical.

    Args:
        relevancy: ``[H, W]`` or ``[L, H, W]``; computed in float32.

    Returns:
        Same shape, float32.
    """
    x = np.asarray(relevancy, dtype=np.float32)
    kernel = np.ones((BOX_SIZE, BOX_SIZE)) / (BOX_SIZE**2)
    if x.ndim == 2:
        return cv2.filter2D(np.ascontiguousarray(x), -1, kernel)
    if x.ndim == 3:
        return np.stack([cv2.filter2D(np.ascontiguousarray(level), -1, kernel) for level in x], axis=0)
    raise ValueError(f"box_filter_30 expects [H, W] or [L, H, W], got shape {x.shape}")


def smooth_relevancy(relevancy: np.ndarray) -> np.ndarray:
    """``0.5 * (box30(r) + r)``: the smoothed relevancy of the segmentation protocol.

    Args:
        relevancy: ``[H, W]`` or ``[L, H, W]``.

    Returns:
        Same shape, float32.
    """
    x = np.asarray(relevancy, dtype=np.float32)
    return np.float32(0.5) * (box_filter_30(x) + x)


def normalize_mask(smoothed: np.ndarray, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """Min-max normalize (+1e-9), map ``x * 2 - 1``, clip to ``[0, 1]``, threshold.

    Args:
        smoothed: ``[H, W]`` smoothed relevancy of one level.
        threshold: strict threshold on the clipped value (LangSplat: 0.4).

    Returns:
        ``[H, W]`` bool.
    """
    v = np.asarray(smoothed, dtype=np.float32)
    v = v - v.min()
    v = v / (v.max() + np.float32(1e-9))
    v = v * np.float32(2.0) + np.float32(-1.0)
    v = np.clip(v, np.float32(0.0), np.float32(1.0))
    return v > np.float32(threshold)


def majority_smooth_7x7(mask: np.ndarray) -> np.ndarray:
    """LangSplat's 7x7 majority vote, vectorized with an integral image.

    Pixel ``(i, j)`` becomes the majority value of
    ``mask[max(0, i-3) : min(i+4, h-1), max(0, j-3) : min(j+4, w-1)]``; the
    upper bounds stop one short of the last row and column (the published
    quirk), and a tie goes to 0 (``np.argmax`` of the bincount). An empty
    window (only when ``h == 1`` or ``w == 1``, where the published code
    raises) gives 0.

    Args:
        mask: ``[H, W]`` bool (or 0/1).

    Returns:
        ``[H, W]`` bool.
    """
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"majority_smooth_7x7 expects [H, W], got shape {m.shape}")
    h, w = m.shape
    r = MAJORITY_RADIUS
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = m.astype(np.int64).cumsum(0).cumsum(1)
    i = np.arange(h)
    j = np.arange(w)
    r0, r1 = np.maximum(0, i - r), np.minimum(i + r + 1, h - 1)
    c0, c1 = np.maximum(0, j - r), np.minimum(j + r + 1, w - 1)
    r1 = np.maximum(r1, r0)
    c1 = np.maximum(c1, c0)
    ones = (
        integral[r1[:, None], c1[None, :]]
        - integral[r0[:, None], c1[None, :]]
        - integral[r1[:, None], c0[None, :]]
        + integral[r0[:, None], c0[None, :]]
    )
    size = (r1 - r0)[:, None] * (c1 - c0)[None, :]
    return 2 * ones > size


def choose_level(smoothed: np.ndarray) -> int:
    """Index of the level whose (smoothed) relevancy has the largest maximum; first on ties.

    Args:
        smoothed: ``[L, H, W]``.
    """
    s = np.asarray(smoothed, dtype=np.float32)
    if s.ndim != 3:
        raise ValueError(f"choose_level expects [L, H, W], got shape {s.shape}")
    return int(np.argmax(s.reshape(s.shape[0], -1).max(axis=1)))


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """``|pred & gt| / |pred | gt|`` of two ``[H, W]`` masks; NaN when both are empty."""
    p, g = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    if p.shape != g.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {g.shape}")
    union = np.logical_or(p, g).sum()
    if union == 0:
        return float("nan")
    return float(np.logical_and(p, g).sum() / union)


def segment(relevancy_levels: np.ndarray, threshold: float = MASK_THRESHOLD) -> tuple[np.ndarray, int]:
    """The protocol's predicted mask of one query.

    Args:
        relevancy_levels: ``[L, H, W]`` raw relevancy per level.
        threshold: see :func:`normalize_mask`.

    Returns:
        ``([H, W] bool mask, chosen level)``.
    """
    smoothed = smooth_relevancy(_levels(relevancy_levels))
    level = choose_level(smoothed)
    return majority_smooth_7x7(normalize_mask(smoothed[level], threshold)), level


def segmentation_iou(relevancy_levels: np.ndarray, gt_mask: np.ndarray, threshold: float = MASK_THRESHOLD) -> float:
    """IoU of the protocol's mask (:func:`segment`) with ``gt_mask``.

    Args:
        relevancy_levels: ``[L, H, W]`` raw relevancy per level.
        gt_mask: ``[H, W]`` bool.
    """
    mask, _ = segment(relevancy_levels, threshold)
    return mask_iou(mask, gt_mask)


def localization_points(relevancy_levels: np.ndarray) -> tuple[np.ndarray, int]:
    """Candidate points of the localization protocol.

    ``box30`` of the raw relevancy of each level; the level with the highest
    peak (first on ties); every pixel equal to that peak.

    Args:
        relevancy_levels: ``[L, H, W]`` raw relevancy per level.

    Returns:
        ``([N, 2] int64 (x, y) pixel coordinates, chosen level)``.
    """
    filtered = box_filter_30(_levels(relevancy_levels))
    peaks = filtered.reshape(filtered.shape[0], -1).max(axis=1)
    level = int(np.argmax(peaks))
    ys, xs = np.nonzero(filtered[level] == peaks[level])
    return np.stack([xs, ys], axis=1).astype(np.int64), level


def points_in_boxes(points: np.ndarray, bboxes: np.ndarray) -> bool:
    """Whether any point ``[N, 2]`` (x, y) lies in any box ``[K, 4]`` (x1, y1, x2, y2).

    Bounds are inclusive and the corners may come in either order.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    boxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    x_min = np.minimum(boxes[:, 0], boxes[:, 2])
    x_max = np.maximum(boxes[:, 0], boxes[:, 2])
    y_min = np.minimum(boxes[:, 1], boxes[:, 3])
    y_max = np.maximum(boxes[:, 1], boxes[:, 3])
    x, y = pts[:, 0:1], pts[:, 1:2]  # [N, 1]
    inside = (x >= x_min) & (x <= x_max) & (y >= y_min) & (y <= y_max)  # [N, K]
    return bool(inside.any())


def localization_hit(relevancy_levels: np.ndarray, bboxes: np.ndarray) -> bool:
    """Whether the localization protocol's peak falls in a box of the label.

    Args:
        relevancy_levels: ``[L, H, W]`` raw relevancy per level.
        bboxes: ``[K, 4]`` (or ``[4]``) boxes ``x1, y1, x2, y2`` of the label.
    """
    points, _ = localization_points(relevancy_levels)
    return points_in_boxes(points, bboxes)


def _levels(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 2:
        return a[None]
    if a.ndim != 3:
        raise ValueError(f"relevancy must be [L, H, W], got shape {a.shape}")
    return a
