"""The LERF-OVS 3D-selection protocol (OpenGaussian's; Dr. Splat's selection rule as an option).

Recent papers (OpenGaussian, NeurIPS 2024; Dr. Splat, CVPR 2025) score
LERF-OVS differently from LangSplat: per query, Gaussians are *selected in 3D*
from per-Gaussian language, rendered alone, and the rendered silhouette is the
mask. Published numbers under the two protocols are not comparable (LangSplat:
51.4 mIoU under its own protocol, 9.66 under this one; OpenGaussian issues #9
and #14), so this module never mixes them: its report is named
``"3d-selection"`` and holds mIoU and mAcc@0.25 only.

The steps, as OpenGaussian's release runs them (``render_lerf_by_text.py``,
``scripts/compute_lerf_iou.py``):

1. Selection (render side, :func:`ccl_gs.field.language.protocol_selection`):
   each Gaussian goes to its most similar text of the scene's query list
   (``argmax``), or, Dr. Splat's rule, canonical relevancy ``> 0.5``.
2. The selected Gaussians are rasterized alone; their accumulated opacity is
   the render file ``<renders>/<scene>/<frame>/<query>.npy`` (``[1, H, W]``,
   written by ``render.py`` into ``lerf_ovs_3d/``).
3. Mask = opacity ``> 0.7`` (OpenGaussian's silhouette threshold).
4. IoU with the polygon mask per (frame, query) pair (0 when the union is
   empty); mIoU = mean over pairs; mAcc@0.25 = fraction of pairs with
   IoU ``> 0.25`` (strict, as ``compute_lerf_iou.py``).

Deliberate differences: OpenGaussian also drops Gaussians with a scale axis
``>= 0.1`` and kNN outliers before rendering, and skips views with fewer than
100 selected Gaussians (scoring them 0); this module renders every selected
Gaussian. Dr. Splat's own evaluation code is not released.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ccl_gs.metrics.labels import EvalInputError, load_scene_labels
from ccl_gs.metrics.lerf_ovs.layout import load_render, render_path
from ccl_gs.metrics.lerf_ovs.protocol import mask_iou

OPACITY_THRESHOLD = 0.7
"""Silhouette threshold on the accumulated opacity of the selected Gaussians (OpenGaussian)."""
ACC_IOU = 0.25
"""A pair counts as accurate when its IoU exceeds this (mAcc@0.25)."""
PROTOCOL = "3d-selection"


@dataclass
class Scene3DResult:
    """Results of one scene under the 3D-selection protocol."""

    scene: str
    miou: float
    acc_25: float
    n_pairs: int
    frames: dict[str, dict[str, float]] = field(default_factory=dict)
    """``frame_stem -> query -> IoU``."""


def silhouette_iou(opacity: np.ndarray, gt_mask: np.ndarray, threshold: float = OPACITY_THRESHOLD) -> float:
    """IoU of ``opacity [H, W] > threshold`` with ``gt_mask [H, W]`` bool (0 for an empty union, as OpenGaussian)."""
    iou = mask_iou(opacity > threshold, gt_mask)
    return 0.0 if math.isnan(iou) else iou


def evaluate_scene_3d(renders: str | Path, labels: str | Path, scene: str, threshold: float = OPACITY_THRESHOLD,
                      resize: Literal["bilinear", "error"] = "bilinear") -> Scene3DResult:
    """Evaluate one scene: every labelled (frame, query) pair from its silhouette render."""
    frames = load_scene_labels(Path(labels) / scene)
    if not (Path(renders) / scene).is_dir():
        raise EvalInputError(
            f"missing 3D-selection render folder for scene '{scene}': {Path(renders) / scene} "
            "(render.py writes lerf_ovs_3d/ for fields with per-Gaussian language)"
        )
    res = Scene3DResult(scene=scene, miou=math.nan, acc_25=math.nan, n_pairs=0)
    for fr in frames:
        out = {}
        for q in fr.categories:
            path = render_path(renders, scene, fr.frame_stem, q)
            if not path.is_file():
                raise EvalInputError(f"label file {fr.path}: query {q!r} has no 3D-selection render {path}")
            opa = load_render(path, fr.height, fr.width, resize)
            if opa.shape[0] != 1:
                raise EvalInputError(f"render {path} has {opa.shape[0]} levels; a 3D-selection render has one (opacity)")
            out[q] = silhouette_iou(opa[0], fr.masks[q], threshold)
        res.frames[fr.frame_stem] = out
    ious = [v for fr in res.frames.values() for v in fr.values()]
    res.n_pairs = len(ious)
    res.miou = float(np.mean(ious))
    res.acc_25 = float(np.mean([v > ACC_IOU for v in ious]))
    return res


def summarize_3d(scenes: list[Scene3DResult]) -> dict:
    """Mean over scenes and pooled over all pairs."""
    ious = [v for s in scenes for fr in s.frames.values() for v in fr.values()]
    return {
        "mean_over_scenes": {"miou": float(np.mean([s.miou for s in scenes])), "acc_25": float(np.mean([s.acc_25 for s in scenes]))},
        "pooled": {"miou": float(np.mean(ious)), "acc_25": float(np.mean([v > ACC_IOU for v in ious])), "n_pairs": len(ious)},
    }
