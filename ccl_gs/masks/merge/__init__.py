"""The CCL-LGS two-level merge: SAM masks at three granularities -> two levels of
non-overlapping masks and their per-pixel index maps, vectorized.

The rule
========

Input: :class:`~ccl_gs.masks.types.RawMasks` (candidates with a granularity in
{subpart, part, whole} and a score = SAM predicted IoU x stability score).
Output: :class:`~ccl_gs.masks.types.LevelMasks` for the two levels
``sp = subpart + part`` and ``wp = whole + part`` (CCL-LGS, Sec. 3.2).

1. **Candidates.** Masks with fewer than ``min_area`` pixels are dropped (an
   empty mask has no IoU; LangSplat's loop would divide by zero).
2. **Per-granularity mask NMS** - LangSplat's ``mask_nms`` as called by
   ``masks_update(..., iou_thr=0.8, score_thr=0.7, inner_thr=0.5)`` in
   LangSplat ``preprocess.py`` (github.com/minghanqin/LangSplat), which the
   CCL-LGS preprocessing inherits. Masks are sorted by score, descending
   (stable: ties keep input order). Mask ``j`` is removed when

   * its score is ``<= score_thr`` (0.7);
   * some higher-scoring mask ``i`` has ``IoU(i, j) > iou_thr`` (0.8);
   * it is nested: a mask ``i`` (higher *or* lower score) holds
     ``>= 0.85`` of ``j`` while ``j`` covers ``< 0.5`` of ``i``; LangSplat
     then scores the pair ``1 - (I/|j|)(I/|i|)`` (always > 0.575) and removes
     ``j`` when that exceeds ``1 - inner_thr`` (0.5). The 0.85 / 0.5 constants
     are hard-coded in LangSplat's loop; they are ``inner_cover`` /
     ``outer_cover`` here.

   This is *not* greedy NMS: a suppressed mask still suppresses others (the
   reference takes column maxima of the full upper-triangular IoU matrix), so
   the rule has no sequential dependency and its vectorized form below is
   exact. LangSplat's fallback "if no mask passes a test, let the 3 best-scored
   through" crashes there (``keep_conf[index, 0]`` on a 1-D tensor); we apply
   it as intended (``fallback_topk``). LangSplat's lower-triangular nesting
   matrix is taken with ``torch.tril(..., diagonal=1)``, which also admits the
   first superdiagonal; we keep that quirk, so the results are the same mask
   for mask.
3. **Level union.** For each level the survivors of its two granularities are
   pooled; cross-granularity duplicates (the same region predicted as, e.g.,
   both subpart and part) are removed by the same rule with the IoU test only
   (no score or nesting test: nesting across granularities *is* the hierarchy).
4. **Non-overlap.** Each pixel goes to the covering mask of highest priority.
   Priorities are a registry (:data:`PRIORITIES`): ``"score"`` (default: the
   larger predicted IoU x stability wins a contested pixel), ``"area"``
   (the smaller mask wins, so parts stay visible on top of wholes) and
   ``"granularity"`` (the level's own granularity - subpart for sp, whole for
   wp - before part, then score). The CCL-LGS release was not available to us;
   the default follows our design notes (DESIGN.md, stage 1).
5. **Empty masks.** A mask left with fewer than ``max(min_visible_area,
   min_visible_fraction * area)`` visible pixels is dropped and the pixels are
   painted again without it (they go to the next covering mask). Dropping only
   enlarges the others' visible parts, so one repaint is final.
6. **Output.** Rows: sp masks then wp masks, each in priority order; the masks
   are the visible (non-overlapping) parts; ``index_maps[l]`` holds the row
   covering each pixel at level ``l`` and -1 where no mask does.

How it is fast
==============

Every set operation above needs only pairwise intersection counts, areas and
"who covers this pixel". :func:`mask_regions` splits the image into the cells of
the masks' arrangement (pixels covered by exactly the same set of masks): the
masks are bit-packed per pixel into 64-bit words, runs of equal words along
image rows are found, a random linear hash of each run's words is uniqued once
(one sort over the runs) and the grouping is verified exactly against the words. With ``U`` cells (a few thousand for hundreds of
masks), pairwise intersections are one ``[N, U] @ [U, N]`` product with cell
sizes as weights, exact in float64, and painting is a per-cell ``argmin`` of
priority ranks. No Python loop runs over pairs, masks or pixels; the loops left
are over the 8 bits of a byte and over the three granularities / two levels.

:func:`two_level_masks_reference` is the same rule written straightforwardly
(a Python loop over pairs with numpy, like LangSplat's ``mask_nms``, and a
painting loop over masks); tests and ``bench/bench_masks.py`` check that both
give identical outputs.

Modules
=======

* :mod:`~ccl_gs.masks.merge.config`: :class:`MergeConfig`, the priorities (:data:`PRIORITIES`) and the input check;
* :mod:`~ccl_gs.masks.merge.regions`: the cells of a mask set's arrangement (:func:`mask_regions`);
* :mod:`~ccl_gs.masks.merge.vectorized`: :func:`mask_nms`, :func:`paint` and :func:`two_level_masks`;
* :mod:`~ccl_gs.masks.merge.reference`: :func:`mask_nms_reference` and :func:`two_level_masks_reference`.

Every name is importable from ``ccl_gs.masks.merge`` itself.
"""

from __future__ import annotations

from ccl_gs.masks.merge.config import (
    LEVEL_GRANULARITIES,
    PART,
    PRIORITIES,
    SUBPART,
    WHOLE,
    MergeConfig,
    PriorityFn,
    _check_raw,
    _priority_area,
    _priority_granularity,
    _priority_score,
    priority_order,
)
from ccl_gs.masks.merge.reference import mask_nms_reference, two_level_masks_reference
from ccl_gs.masks.merge.regions import MaskRegions, _fold_labels, mask_regions, pack_masks
from ccl_gs.masks.merge.vectorized import _visible_threshold, mask_nms, paint, two_level_masks

__all__ = [
    "LEVEL_GRANULARITIES",
    "PRIORITIES",
    "MaskRegions",
    "MergeConfig",
    "mask_nms",
    "mask_nms_reference",
    "mask_regions",
    "pack_masks",
    "paint",
    "priority_order",
    "two_level_masks",
    "two_level_masks_reference",
]
