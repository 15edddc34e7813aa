"""What the merge takes: its thresholds (:class:`MergeConfig`), the pixel priorities (:data:`PRIORITIES`) and the input check.

See :mod:`ccl_gs.masks.merge` for the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ccl_gs.masks.types import GRANULARITIES, RawMasks

SUBPART, PART, WHOLE = 0, 1, 2
LEVEL_GRANULARITIES: dict[str, tuple[int, int]] = {"sp": (SUBPART, PART), "wp": (WHOLE, PART)}
"""Granularities pooled into each level; the first is the level's own (CCL-LGS Sec. 3.2)."""


@dataclass
class MergeConfig:
    """Thresholds of the two-level merge (defaults: LangSplat ``preprocess.py``)."""

    iou_thr: float = field(
        default=0.8,
        metadata={"help": "A mask is removed when a higher-scored mask of its granularity overlaps it with IoU above this (LangSplat masks_update)."},
    )
    score_thr: float = field(
        default=0.7,
        metadata={"help": "Masks whose predicted IoU x stability is not above this are removed (LangSplat masks_update)."},
    )
    inner_thr: float = field(
        default=0.5,
        metadata={"help": "Nested masks are removed when 1 - (I/|small|)(I/|big|) exceeds 1 - inner_thr (LangSplat masks_update)."},
    )
    inner_cover: float = field(
        default=0.85,
        metadata={"help": "A mask counts as nested when at least this fraction of it lies inside another (LangSplat mask_nms)."},
    )
    outer_cover: float = field(
        default=0.5,
        metadata={"help": "... and it covers less than this fraction of that other mask (LangSplat mask_nms)."},
    )
    fallback_topk: int = field(
        default=3,
        metadata={"help": "When no mask of a granularity passes a test, this many best-scored masks pass it (LangSplat mask_nms)."},
    )
    cross_iou_thr: float = field(
        default=0.9,
        metadata={"help": "Within a level, a mask of one granularity duplicating a higher-scored mask (IoU above this) is removed."},
    )
    min_area: int = field(
        default=1,
        metadata={"help": "Candidate masks with fewer pixels are dropped before NMS (at least 1: empty masks have no IoU)."},
    )
    priority: str = field(
        default="granularity",
        metadata={
            "help": "Who wins a pixel covered by several masks of a level: 'granularity' (the level's own granularity "
            "first - subparts in sp, wholes in wp - parts fill the rest; by score within), 'score' or 'area' "
            "(smaller wins). With 'score', a part that outscores its whole takes the whole's pixels and wp stops "
            "being object-level."
        },
    )
    min_visible_area: int = field(
        default=100,
        metadata={"help": "Masks left with fewer visible pixels after the non-overlap step are dropped (SAM's min_mask_region_area in LangSplat)."},
    )
    min_visible_fraction: float = field(
        default=0.0,
        metadata={"help": "Masks left with less than this fraction of their own area visible are dropped."},
    )

    def __post_init__(self) -> None:
        if self.priority not in PRIORITIES:
            raise ValueError(f"unknown --priority '{self.priority}'; choose from {sorted(PRIORITIES)}")
        if self.min_area < 1:
            raise ValueError(f"--min-area must be at least 1, got {self.min_area}")


# Priorities: who wins a contested pixel. Each returns a sort key per mask;
# the mask with the smallest key wins (ties: the earlier row).


def _priority_score(scores: Tensor, areas: Tensor, granularity: Tensor, own: int) -> Tensor:
    return -scores.double()


def _priority_area(scores: Tensor, areas: Tensor, granularity: Tensor, own: int) -> Tensor:
    return areas.double()


def _priority_granularity(scores: Tensor, areas: Tensor, granularity: Tensor, own: int) -> Tensor:
    # own granularity first (offset 0), then the shared 'part' masks; score within each.
    return (granularity != own).double() * 4.0 - scores.double()


PriorityFn = Callable[[Tensor, Tensor, Tensor, int], Tensor]
PRIORITIES: dict[str, PriorityFn] = {
    "score": _priority_score,
    "area": _priority_area,
    "granularity": _priority_granularity,
}
"""Name -> ``key(scores [N], areas [N], granularity [N], own_granularity) -> [N]``; smallest key wins."""


def priority_order(key: Tensor) -> Tensor:
    """Rows sorted by priority: ``key`` ascending, ties by row (stable).

    Args:
        key: ``[N]`` sort keys.

    Returns:
        ``[N]`` int64 permutation, best first.
    """
    return torch.sort(key, stable=True).indices


def _check_raw(raw: RawMasks) -> None:
    m = raw.masks
    if m.ndim != 3 or m.dtype != np.bool_:
        raise ValueError(f"RawMasks.masks must be [M, H, W] bool, got {m.shape} {m.dtype}")
    k = m.shape[0]
    if raw.granularity.shape != (k,) or raw.scores.shape != (k,):
        raise ValueError(
            f"RawMasks: granularity {raw.granularity.shape} and scores {raw.scores.shape} must be [{k}]"
        )
    if k and (raw.granularity.min() < 0 or raw.granularity.max() >= len(GRANULARITIES)):
        raise ValueError(f"RawMasks.granularity must lie in 0..{len(GRANULARITIES) - 1}")
