"""Image-quality metrics and losses: PSNR and SSIM (Gaussian window, as in 3DGS)."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, target: Tensor) -> float:
    """PSNR in dB of images in [0, 1]; ``pred``, ``target``: ``[..., H, W, 3]``."""
    mse = float(F.mse_loss(pred.clamp(0, 1), target))
    return -10.0 * math.log10(max(mse, 1e-12))


@functools.lru_cache(maxsize=8)
def _gaussian_window(size: int, sigma: float, channels: int) -> Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    w2 = g[:, None] * g[None, :]
    return w2.expand(channels, 1, size, size).contiguous()


def ssim(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM with an 11x11 Gaussian window (sigma 1.5), zero padding, as 3DGS computes it.

    Args:
        pred, target: ``[B, H, W, C]`` or ``[H, W, C]`` in [0, 1].
    Returns:
        scalar tensor (differentiable).
    """
    if pred.dim() == 3:
        pred, target = pred[None], target[None]
    x = pred.permute(0, 3, 1, 2)
    y = target.permute(0, 3, 1, 2)
    C = x.shape[1]
    w = _gaussian_window(window, sigma, C).to(x)
    pad = window // 2
    mu_x = F.conv2d(x, w, padding=pad, groups=C)
    mu_y = F.conv2d(y, w, padding=pad, groups=C)
    sxx = F.conv2d(x * x, w, padding=pad, groups=C) - mu_x**2
    syy = F.conv2d(y * y, w, padding=pad, groups=C) - mu_y**2
    sxy = F.conv2d(x * y, w, padding=pad, groups=C) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean()
