"""Mask containers passed between the mask sources, the two-level merge and preprocessing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRANULARITIES = ("subpart", "part", "whole")
"""Index 0, 1, 2 of :attr:`RawMasks.granularity` (SAM's three multimask outputs)."""
LEVELS = ("sp", "wp")
"""The two CCL-LGS levels: sp = subpart + part, wp = whole + part."""


@dataclass
class RawMasks:
    """Candidate masks of one image at three granularities, before merging."""

    masks: np.ndarray
    """``[M, H, W]`` bool."""
    granularity: np.ndarray
    """``[M]`` int8 in {0, 1, 2} (subpart, part, whole)."""
    scores: np.ndarray
    """``[M]`` float32 quality (predicted IoU x stability; 1.0 for precomputed masks)."""
    predicted_iou: np.ndarray | None = None
    """``[M]`` float32 SAM predicted IoU, when known."""
    stability: np.ndarray | None = None
    """``[M]`` float32 SAM stability score, when known."""


@dataclass
class LevelMasks:
    """Final non-overlapping masks of one image at the two levels."""

    masks: np.ndarray
    """``[M, H, W]`` bool; masks of one level do not overlap."""
    levels: np.ndarray
    """``[M]`` int8 in {0, 1} (sp, wp)."""
    index_maps: np.ndarray
    """``[2, H, W]`` int32: per level, the row of ``masks`` covering each pixel, -1 for none."""
    scores: np.ndarray | None = None
    """``[M]`` float32 quality of each row (predicted IoU x stability), when known."""
    granularity: np.ndarray | None = None
    """``[M]`` int8 SAM granularity each row came from (0 subpart, 1 part, 2 whole), when known."""
