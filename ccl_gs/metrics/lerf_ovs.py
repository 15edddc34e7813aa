"""LERF-OVS benchmark: segmentation mIoU and localization accuracy, as LangSplat evaluates them.

Every step reproduces LangSplat's ``eval/evaluate_iou_loc.py`` (functions
``activate_stream`` and ``lerf_localization``) and ``eval/utils.py``
(``smooth``), in float32 like the published code:

Segmentation, per (frame, query), per feature level ``l``:
    1. ``v = 0.5 * (box30(r) + r)`` where ``box30`` is ``cv2.filter2D`` with a
       30x30 mean kernel (even size: the window of pixel ``i`` is
       ``[i - 15, i + 14]``) and reflect-101 borders (:func:`smooth_relevancy`).
    2. The level is the one whose ``v`` has the largest maximum, the first on
       ties (:func:`choose_level`).
    3. ``v`` is min-max normalized (``(v - min) / (max - min + 1e-9)``), mapped
       by ``x * 2 - 1``, clipped to ``[0, 1]`` and thresholded ``> 0.4``
       (:func:`normalize_mask`).
    4. A 7x7 majority vote whose window is
       ``mask[max(0, i-3) : min(i+4, h-1), max(0, j-3) : min(j+4, w-1)]`` (so
       it never reaches the last row or column), ties to 0
       (:func:`majority_smooth_7x7`).
    5. IoU with the ground-truth mask. mIoU = mean over all (frame, query).

Localization, per (frame, query):
    ``box30`` of the raw relevancy of every level; the level with the highest
    peak; every pixel equal to that peak is a candidate; a hit if any
    candidate ``(x, y)`` lies in any box of the label, bounds inclusive,
    corners in either order (:func:`localization_hit`). Accuracy = hits /
    (frame, query) pairs.

Input layout (method-agnostic; every method writes it, e.g. with :func:`save_render`)::

    <renders>/<scene>/<frame_stem>/<query_slug>.npy

``frame_stem`` is the label file's stem (``frame_00041``) and ``query_slug``
is :func:`query_slug` of the category text (``"rubber duck with hat"`` ->
``rubber_duck_with_hat``). Each file holds a float32 ``[L, H, W]`` array: the
relevancy of the query at each of the method's ``L`` feature levels (``L = 1``
for single-level methods), e.g. :func:`ccl_gs.query.canonical_relevancy`.

Resize rule: relevancy should be rendered at the annotation size
(``info.width x info.height``), as LangSplat does. A render of another size
with the same aspect ratio (within 1 %) is resized to the annotation size with
``cv2.resize(..., INTER_LINEAR)`` per level before step 1, unless
``resize="error"``; a different aspect ratio is always an error.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ccl_gs.io.artifacts import atomic_write_bytes
from ccl_gs.metrics.labels import EvalInputError, LabelledFrame, load_scene_labels

BOX_SIZE = 30
"""Side of LangSplat's mean filter."""
MASK_THRESHOLD = 0.4
"""LangSplat's ``--mask_thresh`` default (the value its published numbers use)."""
MAJORITY_RADIUS = 3
"""Half-size of the 7x7 majority window."""
ASPECT_TOLERANCE = 0.01
"""Relative aspect-ratio difference above which a render of another size is rejected."""


# --------------------------------------------------------------------------- steps


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


# --------------------------------------------------------------------------- layout


def query_slug(query: str) -> str:
    """File-name form of a query: lower case, runs of non-alphanumerics -> ``_``.

    >>> query_slug("Rubber duck with hat")
    'rubber_duck_with_hat'
    """
    slug = re.sub(r"[^a-z0-9]+", "_", query.strip().lower()).strip("_")
    if not slug:
        raise ValueError(f"query {query!r} has no letters or digits")
    return slug


def render_path(renders: str | Path, scene: str, frame_stem: str, query: str) -> Path:
    """``<renders>/<scene>/<frame_stem>/<query_slug>.npy``."""
    return Path(renders) / scene / frame_stem / f"{query_slug(query)}.npy"


def save_render(renders: str | Path, scene: str, frame_stem: str, query: str, relevancy: np.ndarray) -> Path:
    """Write one query's relevancy ``[L, H, W]`` (float32) atomically in the eval layout.

    Returns:
        The path written.
    """
    arr = np.asarray(relevancy, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"relevancy must be [L, H, W], got shape {arr.shape}")
    buf = io.BytesIO()
    np.save(buf, arr)
    path = render_path(renders, scene, frame_stem, query)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_render(path: Path, height: int, width: int, resize: Literal["bilinear", "error"] = "bilinear") -> np.ndarray:
    """Read one render file and bring it to the annotation size.

    Returns:
        ``[L, height, width]`` float32.

    Raises:
        EvalInputError: missing/unreadable file, wrong rank, non-finite
            values, or a size that cannot be resized under ``resize``.
    """
    if not path.is_file():
        raise EvalInputError(f"missing render {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EvalInputError(f"unreadable render {path}: {e}") from None
    if arr.ndim != 3 or arr.shape[0] < 1:
        raise EvalInputError(f"render {path} must be a float [L, H, W] array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise EvalInputError(f"render {path} must hold floats, got {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise EvalInputError(f"render {path} holds NaN or infinite values")
    h, w = arr.shape[1:]
    if (h, w) == (height, width):
        return arr
    if resize == "error":
        raise EvalInputError(f"render {path} is {w}x{h}, the annotation is {width}x{height} (resize is 'error')")
    if abs((w / h) / (width / height) - 1.0) > ASPECT_TOLERANCE:
        raise EvalInputError(
            f"render {path} is {w}x{h}, aspect ratio differs from the annotation's {width}x{height}"
        )
    return np.stack([cv2.resize(level, (width, height), interpolation=cv2.INTER_LINEAR) for level in arr], axis=0)


# --------------------------------------------------------------------------- evaluation


@dataclass
class QueryResult:
    """Outcome of one (frame, query) pair."""

    iou: float
    """Segmentation IoU at the chosen level."""
    level: int
    """Level chosen for segmentation (largest smoothed peak)."""
    hit: bool
    """Localization hit."""
    loc_level: int
    """Level chosen for localization (largest box-filtered peak)."""


@dataclass
class SceneResult:
    """Results of one scene."""

    scene: str
    miou: float
    """Mean IoU over the scene's (frame, query) pairs."""
    loc_acc: float
    """Localization hits / (frame, query) pairs."""
    n_pairs: int
    frames: dict[str, dict[str, QueryResult]] = field(default_factory=dict)
    """``frame_stem -> query -> result``."""


def evaluate_frame(
    frame: LabelledFrame,
    renders: str | Path,
    scene: str,
    threshold: float = MASK_THRESHOLD,
    resize: Literal["bilinear", "error"] = "bilinear",
    levels: int | None = None,
) -> tuple[dict[str, QueryResult], int]:
    """Evaluate every category of one labelled frame from its render files.

    Args:
        levels: expected ``L`` (all renders of a scene must agree); ``None`` accepts any.

    Returns:
        ``(query -> result, L)``.

    Raises:
        EvalInputError: the frame has no render folder, a query has no
            render, a render is malformed, or its level count differs from ``levels``.
    """
    folder = Path(renders) / scene / frame.frame_stem
    if not folder.is_dir():
        raise EvalInputError(f"label file {frame.path} has no render folder {folder}")
    slugs: dict[str, str] = {}
    for q in frame.categories:
        s = query_slug(q)
        if s in slugs:
            raise EvalInputError(f"label file {frame.path}: queries {slugs[s]!r} and {q!r} share the file name {s}.npy")
        slugs[s] = q
    out: dict[str, QueryResult] = {}
    for q in frame.categories:
        path = render_path(renders, scene, frame.frame_stem, q)
        rel = load_render(path, frame.height, frame.width, resize)
        if levels is not None and rel.shape[0] != levels:
            raise EvalInputError(f"render {path} has {rel.shape[0]} levels, other renders of scene '{scene}' have {levels}")
        levels = rel.shape[0]
        mask, level = segment(rel, threshold)
        points, loc_level = localization_points(rel)
        out[q] = QueryResult(
            iou=mask_iou(mask, frame.masks[q]),
            level=level,
            hit=points_in_boxes(points, frame.bboxes[q]),
            loc_level=loc_level,
        )
    assert levels is not None  # a parsed frame has at least one category
    return out, levels


def evaluate_scene(
    renders: str | Path,
    labels: str | Path,
    scene: str,
    threshold: float = MASK_THRESHOLD,
    resize: Literal["bilinear", "error"] = "bilinear",
) -> SceneResult:
    """Evaluate one scene: every ``<labels>/<scene>/frame_*.json`` against ``<renders>/<scene>``."""
    frames = load_scene_labels(Path(labels) / scene)
    if not (Path(renders) / scene).is_dir():
        raise EvalInputError(f"missing render folder for scene '{scene}': {Path(renders) / scene}")
    result = SceneResult(scene=scene, miou=math.nan, loc_acc=math.nan, n_pairs=0)
    levels = None
    for frame in frames:
        res, levels = evaluate_frame(frame, renders, scene, threshold, resize, levels)
        result.frames[frame.frame_stem] = res
    pairs = [r for fr in result.frames.values() for r in fr.values()]
    result.n_pairs = len(pairs)
    result.miou = float(np.mean([r.iou for r in pairs]))
    result.loc_acc = float(np.mean([r.hit for r in pairs]))
    return result


@dataclass
class LerfOvsEvalConfig:
    """Configuration of a LERF-OVS evaluation run."""

    renders: Path = field(
        metadata={"help": "folder of renders laid out as <renders>/<scene>/<frame_stem>/<query_slug>.npy, float32 [L, H, W]"}
    )
    labels: Path = field(metadata={"help": "LERF-OVS label folder holding <scene>/frame_XXXXX.json (LangSplat release)"})
    # A str, not a Path, so that a trailing "/" (a folder, refused) survives parsing.
    out: str = field(metadata={"help": "JSON file to write the results to (a file name, not a folder)"})
    scenes: list[str] = field(
        default_factory=list, metadata={"help": "scenes to evaluate (default: every folder of --labels with frame_*.json)"}
    )
    mask_thresh: float = field(default=MASK_THRESHOLD, metadata={"help": "segmentation mask threshold (LangSplat)"})
    resize: Literal["bilinear", "error"] = field(
        default="bilinear",
        metadata={"help": "renders of another size than the annotation: bilinear resize (same aspect ratio) or error"},
    )


def scene_names(labels: str | Path, scenes: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The scenes to evaluate: ``scenes`` if given (each must exist), else every labelled folder."""
    root = Path(labels)
    if not root.is_dir():
        raise EvalInputError(f"missing label folder: {root} (--labels)")
    if scenes:
        for s in scenes:
            if not (root / s).is_dir():
                raise EvalInputError(f"scene '{s}' (--scenes) has no label folder {root / s}")
        return list(scenes)
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("frame_*.json")))
    if not found:
        raise EvalInputError(f"no <scene>/frame_*.json under {root} (--labels)")
    return found


def evaluate(cfg: LerfOvsEvalConfig) -> tuple[list[SceneResult], dict]:
    """Evaluate every scene of ``cfg``.

    Returns:
        ``(per-scene results, JSON-able report)``; the report holds the
        protocol name, the config, per-scene figures and per-pair details,
        and :func:`summarize`.
    """
    if not Path(cfg.renders).is_dir():
        raise EvalInputError(f"missing render folder: {cfg.renders} (--renders)")
    results = [
        evaluate_scene(cfg.renders, cfg.labels, s, cfg.mask_thresh, cfg.resize) for s in scene_names(cfg.labels, cfg.scenes)
    ]
    report = {
        "benchmark": "lerf_ovs",
        "protocol": "LangSplat eval/evaluate_iou_loc.py (segmentation mIoU, localization accuracy)",
        "config": cfg,
        "scenes": {r.scene: {"miou": r.miou, "loc_acc": r.loc_acc, "n_pairs": r.n_pairs, "frames": r.frames} for r in results},
        **summarize(results),
    }
    return results, report


def summarize(scenes: list[SceneResult]) -> dict:
    """Mean over scenes (the papers' "mean" column) and pooled over all (frame, query) pairs."""
    pairs = [r for s in scenes for fr in s.frames.values() for r in fr.values()]
    return {
        "mean_over_scenes": {
            "miou": float(np.mean([s.miou for s in scenes])),
            "loc_acc": float(np.mean([s.loc_acc for s in scenes])),
        },
        "pooled": {
            "miou": float(np.mean([r.iou for r in pairs])),
            "loc_acc": float(np.mean([r.hit for r in pairs])),
            "n_pairs": len(pairs),
        },
    }


__all__ = [
    "BOX_SIZE",
    "MASK_THRESHOLD",
    "LerfOvsEvalConfig",
    "QueryResult",
    "SceneResult",
    "box_filter_30",
    "choose_level",
    "evaluate",
    "evaluate_frame",
    "evaluate_scene",
    "load_render",
    "localization_hit",
    "localization_points",
    "majority_smooth_7x7",
    "mask_iou",
    "normalize_mask",
    "points_in_boxes",
    "query_slug",
    "render_path",
    "save_render",
    "scene_names",
    "segment",
    "segmentation_iou",
    "smooth_relevancy",
    "summarize",
]
