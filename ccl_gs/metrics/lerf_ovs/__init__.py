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

Modules
=======

* :mod:`~ccl_gs.metrics.lerf_ovs.protocol`: the protocol steps on one relevancy map (segmentation and localization);
* :mod:`~ccl_gs.metrics.lerf_ovs.layout`: the render files, written (:func:`save_render`) and read back (:func:`load_render`);
* :mod:`~ccl_gs.metrics.lerf_ovs.evaluation`: frames, scenes, a whole run (:func:`evaluate`) and :func:`summarize`.

Every name is importable from ``ccl_gs.metrics.lerf_ovs`` itself.
"""

from __future__ import annotations

from ccl_gs.metrics.lerf_ovs.evaluation import (
    LerfOvsEvalConfig,
    QueryResult,
    SceneResult,
    evaluate,
    evaluate_frame,
    evaluate_scene,
    scene_names,
    summarize,
)
from ccl_gs.metrics.lerf_ovs.layout import ASPECT_TOLERANCE, load_render, query_slug, render_path, save_render
from ccl_gs.metrics.lerf_ovs.protocol import (
    BOX_SIZE,
    MAJORITY_RADIUS,
    MASK_THRESHOLD,
    _levels,
    box_filter_30,
    choose_level,
    localization_hit,
    localization_points,
    majority_smooth_7x7,
    mask_iou,
    normalize_mask,
    points_in_boxes,
    segment,
    segmentation_iou,
    smooth_relevancy,
)

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
