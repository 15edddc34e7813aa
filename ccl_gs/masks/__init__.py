"""Masks for stage 1: SAM at three granularities, the two-level merge, containers.

- :mod:`ccl_gs.masks.types`: :class:`RawMasks`, :class:`LevelMasks`.
- :mod:`ccl_gs.masks.merge`: :func:`two_level_masks` (vectorized CCL-LGS merge and
  LangSplat mask NMS) and its straightforward reference.
- :mod:`ccl_gs.masks.sam`: :class:`SamMaskSource` (official ``segment_anything``,
  keeps the subpart / part / whole outputs apart), :func:`load_sam`.
"""

from ccl_gs.masks.merge import (
    MergeConfig,
    mask_nms,
    mask_regions,
    two_level_masks,
    two_level_masks_reference,
)
from ccl_gs.masks.sam import SamCheckpointError, SamConfig, SamMaskSource, build_tiny_sam, load_sam
from ccl_gs.masks.types import GRANULARITIES, LEVELS, LevelMasks, RawMasks

__all__ = [
    "GRANULARITIES",
    "LEVELS",
    "LevelMasks",
    "MergeConfig",
    "RawMasks",
    "SamCheckpointError",
    "SamConfig",
    "SamMaskSource",
    "build_tiny_sam",
    "load_sam",
    "mask_nms",
    "mask_regions",
    "two_level_masks",
    "two_level_masks_reference",
]
