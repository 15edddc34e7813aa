"""3D-OVS benchmark: per-view class IoU and pixel accuracy, as the 3D-OVS release computes them.

Protocol ``"argmax"`` (the release, ``renderer.py: evaluation_segmentation_test``):

- Classes: ``segmentations/classes.txt``, sorted alphabetically; evaluated
  views: the folders under ``segmentations/`` (see :mod:`ccl_gs.metrics.labels`).
- Ground truth per view: ``[N = H*W, C]`` 0/1 rows, 1 only where the class PNG
  is 255 (resized with PIL ``NEAREST`` to the render size). A pixel may have
  no class or several.
- Prediction: ``argmax`` over classes of the per-class scores (first class on
  ties), one-hot ``[N, C]``. (The release takes the argmax of a softmax of
  cosine similarities; any monotone score gives the same argmax.)
- IoU: sklearn ``jaccard_score(gt, one_hot, average=None)``. **Quirk kept:** a
  class absent from both the ground truth and the prediction of a view scores
  0 (sklearn's ``zero_division``), not 1 and not skipped.
- Accuracy: sklearn ``accuracy_score(gt, one_hot)`` on the multilabel rows,
  i.e. the fraction of pixels whose row matches exactly. **Quirk kept:** a
  pixel with no ground-truth class, or with two, is always wrong.
- Scene mIoU = mean of all views' per-class IoUs (``np.mean`` of the list of
  ``[C]`` arrays); scene accuracy = mean over views. Both are computed here
  with numpy (:func:`jaccard_per_class`, :func:`subset_accuracy`); the tests
  check them against sklearn.

Protocol ``"threshold"`` (optional; the per-query protocol of LangSplat-style
papers): each class's relevancy map goes through LangSplat's LERF-OVS
segmentation rule, unchanged (:func:`ccl_gs.metrics.lerf_ovs.segment`: 30x30
box smoothing, level with the largest peak, min-max normalization, ``x*2-1``,
clip, ``> threshold`` (0.4), 7x7 majority vote), and the IoU is taken against
that class's ground-truth mask. Source of the rule: LangSplat's
``eval/evaluate_iou_loc.py`` (``activate_stream``), applied per 3D-OVS class;
papers that report 3D-OVS this way do not share one reference script, so
figures from this protocol compare only with the same code. A class whose
ground truth is empty in a view has no defined IoU here: it is excluded and
counted in ``n_excluded_empty_gt`` of the results. There is no accuracy.

Input layout (method-agnostic, written e.g. with :func:`save_render`)::

    <renders>/<scene>/meta.json      {"classes": [names, in channel order]}
    <renders>/<scene>/<view>.npy     float32 [C, H, W] scores (argmax protocol)
                                     or [L, C, H, W] relevancy per level (threshold protocol;
                                     [C, H, W] is read as L = 1)

``<view>`` is the view folder name under ``segmentations/`` (e.g. ``00``).
The channels follow ``meta.json``; they are reordered to the sorted
``classes.txt`` order before the argmax, and the class sets must be equal.
The ground truth is resized to the render's ``H x W`` (as the release
resizes it to the training resolution).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ccl_gs.io.artifacts import atomic_write_bytes, write_json
from ccl_gs.metrics.labels import EvalInputError, ovs3d_views, read_ovs3d_classes, read_ovs3d_view_masks
from ccl_gs.metrics.lerf_ovs import MASK_THRESHOLD, mask_iou, segment

ProtocolName = Literal["argmax", "threshold"]
PROTOCOLS: tuple[str, ...] = ("argmax", "threshold")

# --------------------------------------------------------------------------- metric


def argmax_prediction(scores: np.ndarray) -> np.ndarray:
    """Per-pixel class: ``argmax`` over the class axis, first class on ties.

    Args:
        scores: ``[C, H, W]``.

    Returns:
        ``[H, W]`` int64 in ``[0, C)``.
    """
    s = np.asarray(scores)
    if s.ndim != 3:
        raise ValueError(f"scores must be [C, H, W], got shape {s.shape}")
    return np.argmax(s, axis=0)


def one_hot_rows(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``[H, W]`` (or ``[N]``) class indices -> ``[N, C]`` bool one-hot rows."""
    flat = np.asarray(labels).reshape(-1)
    out = np.zeros((flat.shape[0], num_classes), dtype=bool)
    out[np.arange(flat.shape[0]), flat] = True
    return out


def gt_rows(gt_masks: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` masks -> ``[N = H*W, C]`` bool rows (the release's layout)."""
    g = np.asarray(gt_masks).astype(bool)
    return g.reshape(g.shape[0], -1).T


def jaccard_per_class(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """sklearn ``jaccard_score(gt, pred, average=None)`` on multilabel rows.

    Args:
        gt: ``[N, C]`` 0/1.
        pred: ``[N, C]`` 0/1.

    Returns:
        ``[C]`` float64: ``|gt & pred| / |gt | pred|`` per column; a column
        empty in both scores 0 (sklearn's ``zero_division`` default).
    """
    g, p = np.asarray(gt).astype(bool), np.asarray(pred).astype(bool)
    if g.shape != p.shape or g.ndim != 2:
        raise ValueError(f"gt and pred must be equal [N, C] arrays, got {g.shape} and {p.shape}")
    inter = np.logical_and(g, p).sum(0).astype(np.float64)
    union = np.logical_or(g, p).sum(0).astype(np.float64)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def subset_accuracy(gt: np.ndarray, pred: np.ndarray) -> float:
    """sklearn ``accuracy_score(gt, pred)`` on multilabel rows: fraction of rows equal in full.

    Args:
        gt: ``[N, C]`` 0/1.
        pred: ``[N, C]`` 0/1.
    """
    g, p = np.asarray(gt).astype(bool), np.asarray(pred).astype(bool)
    if g.shape != p.shape or g.ndim != 2:
        raise ValueError(f"gt and pred must be equal [N, C] arrays, got {g.shape} and {p.shape}")
    return float(np.all(g == p, axis=1).mean())


def view_metrics(scores: np.ndarray, gt_masks: np.ndarray) -> tuple[np.ndarray, float]:
    """Argmax protocol on one view.

    Args:
        scores: ``[C, H, W]`` per-class scores (sorted class order).
        gt_masks: ``[C, H, W]`` bool ground truth (same order and size).

    Returns:
        ``([C] per-class IoU, accuracy)``.
    """
    if np.shape(scores) != np.shape(gt_masks):
        raise ValueError(f"scores {np.shape(scores)} and ground truth {np.shape(gt_masks)} differ in shape")
    pred = one_hot_rows(argmax_prediction(scores), np.shape(scores)[0])
    gt = gt_rows(gt_masks)
    return jaccard_per_class(gt, pred), subset_accuracy(gt, pred)


def thresholded_view_ious(
    relevancy: np.ndarray, gt_masks: np.ndarray, threshold: float = MASK_THRESHOLD
) -> np.ndarray:
    """Threshold protocol on one view: LangSplat's segmentation rule per class.

    Args:
        relevancy: ``[L, C, H, W]`` (or ``[C, H, W]`` for ``L = 1``).
        gt_masks: ``[C, H, W]`` bool.
        threshold: mask threshold after normalization (LangSplat: 0.4).

    Returns:
        ``[C]`` float64 IoU; NaN for a class with an empty ground-truth mask.
    """
    r = np.asarray(relevancy, dtype=np.float32)
    if r.ndim == 3:
        r = r[None]
    if r.ndim != 4 or r.shape[1:] != np.shape(gt_masks):
        raise ValueError(f"relevancy [L, C, H, W] {r.shape} does not match ground truth [C, H, W] {np.shape(gt_masks)}")
    out = np.full(r.shape[1], np.nan)
    for c in range(r.shape[1]):
        gt = np.asarray(gt_masks[c]).astype(bool)
        if gt.any():
            mask, _ = segment(r[:, c], threshold)
            out[c] = mask_iou(mask, gt)
    return out


# --------------------------------------------------------------------------- layout

META_FILE = "meta.json"


def save_render(renders: str | Path, scene: str, view: str, scores: np.ndarray, classes: list[str]) -> Path:
    """Write one view's scores atomically, and the scene's ``meta.json`` (class order).

    Args:
        scores: ``[C, H, W]`` or ``[L, C, H, W]``, channels in ``classes`` order.
        classes: ``C`` class names.

    Returns:
        The ``.npy`` path written.
    """
    arr = np.asarray(scores, dtype=np.float32)
    if arr.ndim not in (3, 4) or arr.shape[-3] != len(classes):
        raise ValueError(f"scores must be [C={len(classes)}, H, W] or [L, C, H, W], got shape {arr.shape}")
    folder = Path(renders) / scene
    meta = folder / META_FILE
    if meta.is_file():
        old = read_render_classes(folder)
        if old != list(classes):
            raise ValueError(f"{meta} lists classes {old}, this render has {list(classes)}")
    else:
        write_json(meta, {"classes": list(classes)})
    buf = io.BytesIO()
    np.save(buf, arr)
    path = folder / f"{view}.npy"
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_render_classes(folder: Path) -> list[str]:
    """Channel order of a scene's renders, from ``<folder>/meta.json``."""
    meta = folder / META_FILE
    if not meta.is_file():
        raise EvalInputError(f"missing {meta} (it lists the class of each render channel)")
    try:
        classes = json.loads(meta.read_text(encoding="utf-8"))["classes"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise EvalInputError(f"{meta} must be JSON with a 'classes' list ({e!r})") from None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise EvalInputError(f"{meta}: 'classes' must be a list of names")
    if len(set(classes)) != len(classes):
        raise EvalInputError(f"{meta} repeats a class name")
    return classes


def load_view(path: Path, order: np.ndarray, protocol: ProtocolName) -> np.ndarray:
    """Read one view render and reorder its class channels.

    Args:
        order: ``[C]`` channel index in the file of each sorted class.

    Returns:
        ``[C, H, W]`` (argmax) or ``[L, C, H, W]`` (threshold), float32.
    """
    if not path.is_file():
        raise EvalInputError(f"missing render {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EvalInputError(f"unreadable render {path}: {e}") from None
    if not np.issubdtype(arr.dtype, np.floating):
        raise EvalInputError(f"render {path} must hold floats, got {arr.dtype}")
    if protocol == "argmax" and arr.ndim != 3:
        raise EvalInputError(f"render {path} must be [C, H, W] for the argmax protocol, got shape {arr.shape}")
    if arr.ndim not in (3, 4):
        raise EvalInputError(f"render {path} must be [C, H, W] or [L, C, H, W], got shape {arr.shape}")
    if arr.shape[-3] != len(order):
        raise EvalInputError(f"render {path} has {arr.shape[-3]} class channels, meta.json lists {len(order)}")
    if not np.isfinite(arr).all():
        raise EvalInputError(f"render {path} holds NaN or infinite values")
    return np.take(arr.astype(np.float32, copy=False), order, axis=-3)


# --------------------------------------------------------------------------- evaluation


@dataclass
class ViewResult:
    """One view's figures."""

    ious: dict[str, float | None]
    """Per class IoU (``None`` in the threshold protocol when the class's GT is empty)."""
    miou: float | None
    """Mean of :attr:`ious` (over classes with a ground truth in the threshold protocol; ``None`` if none has)."""
    accuracy: float | None
    """Pixel (subset) accuracy; ``None`` in the threshold protocol."""


@dataclass
class SceneResult:
    """One scene's figures."""

    scene: str
    protocol: str
    classes: list[str]
    miou: float
    """Mean over all views' per-class IoUs."""
    accuracy: float | None
    """Mean accuracy over views (argmax protocol)."""
    n_views: int
    n_excluded_empty_gt: int = 0
    """(view, class) pairs left out of the threshold protocol because the GT mask is empty."""
    views: dict[str, ViewResult] = field(default_factory=dict)


def evaluate_scene(
    renders: str | Path,
    data: str | Path,
    scene: str,
    protocol: ProtocolName = "argmax",
    threshold: float = MASK_THRESHOLD,
) -> SceneResult:
    """Evaluate one scene: ``<data>/<scene>/segmentations`` against ``<renders>/<scene>``.

    Raises:
        EvalInputError: missing data or render files, class sets that differ
            between ``classes.txt`` and ``meta.json``, or shape mismatches.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}', choose one of {list(PROTOCOLS)}")
    seg = Path(data) / scene / "segmentations"
    classes = read_ovs3d_classes(seg)
    views = ovs3d_views(seg)
    folder = Path(renders) / scene
    if not folder.is_dir():
        raise EvalInputError(f"missing render folder for scene '{scene}': {folder}")
    render_classes = read_render_classes(folder)
    unknown = [c for c in render_classes if c not in classes]
    if unknown:
        raise EvalInputError(f"{folder / META_FILE} lists class '{unknown[0]}' missing from {seg / 'classes.txt'}")
    absent = [c for c in classes if c not in render_classes]
    if absent:
        raise EvalInputError(f"{folder / META_FILE} lacks class '{absent[0]}' of {seg / 'classes.txt'}")
    order = np.array([render_classes.index(c) for c in classes])

    result = SceneResult(scene=scene, protocol=protocol, classes=classes, miou=math.nan, accuracy=None, n_views=len(views))
    all_ious: list[np.ndarray] = []
    accs: list[float] = []
    for view in views:
        path = folder / f"{view}.npy"
        scores = load_view(path, order, protocol)
        h, w = scores.shape[-2:]
        gt = read_ovs3d_view_masks(seg, view, classes, size=(w, h))
        if protocol == "argmax":
            ious, acc = view_metrics(scores, gt)
            accs.append(acc)
            result.views[view] = ViewResult(dict(zip(classes, ious.tolist())), float(np.mean(ious)), acc)
        else:
            ious = thresholded_view_ious(scores, gt, threshold)
            result.n_excluded_empty_gt += int(np.isnan(ious).sum())
            valid = ious[~np.isnan(ious)]
            per_class = {c: (None if math.isnan(v) else v) for c, v in zip(classes, ious.tolist())}
            result.views[view] = ViewResult(per_class, float(valid.mean()) if valid.size else None, None)
        all_ious.append(ious)
    stacked = np.stack(all_ious)
    if protocol == "argmax":
        result.miou = float(np.mean(stacked))
        result.accuracy = float(np.mean(accs))
    else:
        valid = stacked[~np.isnan(stacked)]
        if valid.size == 0:
            raise EvalInputError(f"every ground-truth mask under {seg} is empty")
        result.miou = float(valid.mean())
    return result


@dataclass
class Ovs3dEvalConfig:
    """Configuration of a 3D-OVS evaluation run."""

    renders: Path = field(
        metadata={"help": "folder of renders laid out as <renders>/<scene>/<view>.npy plus <renders>/<scene>/meta.json"}
    )
    data: Path = field(metadata={"help": "3D-OVS data folder holding <scene>/segmentations/{classes.txt,<view>/<class>.png}"})
    # A str, not a Path, so that a trailing "/" (a folder, refused) survives parsing.
    out: str = field(metadata={"help": "JSON file to write the results to (a file name, not a folder)"})
    scenes: list[str] = field(
        default_factory=list, metadata={"help": "scenes to evaluate (default: every folder of --data with segmentations/)"}
    )
    protocol: ProtocolName = field(
        default="argmax",
        metadata={"help": "argmax: the 3D-OVS release (class argmax, jaccard + accuracy); threshold: per-class LangSplat mask rule"},
    )
    mask_thresh: float = field(default=MASK_THRESHOLD, metadata={"help": "mask threshold of the threshold protocol"})


def scene_names(data: str | Path, scenes: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The scenes to evaluate: ``scenes`` if given (each must exist), else every folder with ``segmentations/``."""
    root = Path(data)
    if not root.is_dir():
        raise EvalInputError(f"missing data folder: {root} (--data)")
    if scenes:
        for s in scenes:
            if not (root / s / "segmentations").is_dir():
                raise EvalInputError(f"scene '{s}' (--scenes) has no folder {root / s / 'segmentations'}")
        return list(scenes)
    found = sorted(p.name for p in root.iterdir() if (p / "segmentations").is_dir())
    if not found:
        raise EvalInputError(f"no <scene>/segmentations under {root} (--data)")
    return found


def evaluate(cfg: Ovs3dEvalConfig) -> tuple[list[SceneResult], dict]:
    """Evaluate every scene of ``cfg``; returns ``(per-scene results, JSON-able report)``."""
    if not Path(cfg.renders).is_dir():
        raise EvalInputError(f"missing render folder: {cfg.renders} (--renders)")
    results = [evaluate_scene(cfg.renders, cfg.data, s, cfg.protocol, cfg.mask_thresh) for s in scene_names(cfg.data, cfg.scenes)]
    source = {
        "argmax": "3D-OVS release renderer.py evaluation_segmentation_test (sklearn jaccard_score average=None, accuracy_score)",
        "threshold": "LangSplat activate_stream mask rule per 3D-OVS class (box30 smoothing, level by peak, > mask_thresh, 7x7 vote)",
    }[cfg.protocol]
    report = {
        "benchmark": "3d_ovs",
        "protocol": cfg.protocol,
        "source": source,
        "config": cfg,
        "scenes": {r.scene: r for r in results},
        "mean_over_scenes": summarize(results),
    }
    return results, report


def summarize(scenes: list[SceneResult]) -> dict:
    """Mean over scenes of the scene figures."""
    out: dict = {"miou": float(np.mean([s.miou for s in scenes]))}
    accs = [s.accuracy for s in scenes if s.accuracy is not None]
    out["accuracy"] = float(np.mean(accs)) if accs else None
    return out


__all__ = [
    "META_FILE",
    "Ovs3dEvalConfig",
    "PROTOCOLS",
    "SceneResult",
    "ViewResult",
    "argmax_prediction",
    "evaluate",
    "evaluate_scene",
    "gt_rows",
    "jaccard_per_class",
    "load_view",
    "one_hot_rows",
    "read_render_classes",
    "save_render",
    "scene_names",
    "subset_accuracy",
    "summarize",
    "thresholded_view_ious",
    "view_metrics",
]
