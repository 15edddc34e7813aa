"""The pictures of a render: PNG files, LERF's heat map over the RGB and the colours of the language features.

See :mod:`ccl_gs.field.render` for the files written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ccl_gs.io.artifacts import atomic_path


def _save_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def heatmap_over(rgb: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """LERF's composite: relevancy ``[H, W]`` at or above 0.5 in turbo colours, plain ``rgb [H, W, 3]`` uint8 below.

    Above 0.5 (more likely the query than the hardest canonical phrase) the
    colour shows ``(rel - 0.5)`` scaled by its maximum, so a query's map shows
    where the object is and leaves the rest of the image untouched.
    """
    import cv2

    v = np.clip(np.asarray(rel, np.float32) - 0.5, 0, None)
    shown = v > 0
    if not shown.any():
        return rgb.copy()
    v = v / max(float(v.max()), 1e-6)
    col = cv2.applyColorMap((v * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    return np.where(shown[..., None], col, rgb).astype(np.uint8)


def feature_colors(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[d_f]`` and top-3 principal axes ``[d_f, 3]`` of per-Gaussian features ``[N, d_f]``, for display."""
    mean = features.mean(0)
    _, _, v = torch.pca_lowrank(features - mean, q=min(3, features.shape[1]), center=False)
    if v.shape[1] < 3:
        v = torch.cat([v, v.new_zeros(v.shape[0], 3 - v.shape[1])], 1)
    return mean, v


def features_png(feats: Tensor, mean: Tensor, axes: Tensor, scale: Tensor) -> np.ndarray:
    """Rendered features ``[H, W, d_f]`` -> ``[H, W, 3]`` uint8 through fixed principal axes (same colours in every view)."""
    x = ((feats - mean) @ axes) / scale  # [H, W, 3], about [-1, 1]
    return ((x.clamp(-1, 1) * 0.5 + 0.5) * 255 + 0.5).byte().cpu().numpy()
