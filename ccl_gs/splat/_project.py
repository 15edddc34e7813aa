"""Differentiable EWA projection of 3D Gaussians on any device (PyTorch ops only).

This is the projection half of the CPU rasterizer. It follows gsplat's CUDA
projection (``ProjectionEWA3DGSFused.cu``, ``packed=False``,
``rasterize_mode="classic"``) so that visibility and radii agree with it:

- a Gaussian is culled (``radii == 0``) when its camera-space depth is outside
  ``[near_plane, far_plane]``, the blurred 2D covariance is not positive
  definite, its opacity is below ``1/255``, both radii are ``<= radius_clip``,
  or its radius box lies fully outside the image;
- the radius box is opacity aware: ``extend = min(3.33, sqrt(2 ln(255 o)))``
  standard deviations per axis, ``radius = ceil(extend * sqrt(cov2d_ii))``.
  Outside this box ``o * exp(-sigma) < 1/255``, so the compositor may skip it.

The building blocks (camera transform, perspective Jacobian, SH evaluation)
are gsplat's pure-PyTorch reference functions; gradients flow through autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from gsplat.cuda._torch_impl import (
    _persp_proj,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
    _world_to_cam,
)
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
"""Smallest alpha a Gaussian may contribute to a pixel (gsplat's threshold)."""

MAX_EXTEND = 3.33
"""Largest radius of the support box, in standard deviations (gsplat's value)."""


@dataclass
class Projection:
    """Per-camera screen-space Gaussians; culled entries have ``radii == 0``."""

    means2d: Tensor  # [C, N, 2] pixel coordinates of the centres
    conics: Tensor  # [C, N, 3] upper triangle (a, b, c) of the inverse blurred 2D covariance
    depths: Tensor  # [C, N] camera-space z
    radii: Tensor  # [C, N, 2] int32 per-axis support radii in pixels, 0 when culled


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4] wxyz, need not be normalized
    scales: Tensor,  # [N, 3] activated
    opacities: Tensor,  # [N] activated
    viewmats: Tensor,  # [C, 4, 4] world-to-camera
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
) -> Projection:
    """Project Gaussians into ``C`` pinhole cameras (differentiable except radii).

    Args:
        means: Centres in world space. [N, 3]
        quats: Rotations as wxyz quaternions. [N, 4]
        scales: Per-axis standard deviations. [N, 3]
        opacities: Opacities in [0, 1]; used only for culling and the radius box. [N]
        viewmats: World-to-camera matrices. [C, 4, 4]
        Ks: Intrinsics. [C, 3, 3]
        width, height: Image size in pixels.
        eps2d: Added to the diagonal of every projected 2D covariance.
        near_plane, far_plane: Depth range kept.
        radius_clip: Gaussians whose radii are both ``<= radius_clip`` are culled.

    Returns:
        A :class:`Projection` with means2d [C, N, 2], conics [C, N, 3],
        depths [C, N] and int32 radii [C, N, 2].
    """
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_covar=True, compute_preci=False)
    means_c, covars_c = _world_to_cam(means, covars, viewmats)  # [C, N, 3], [C, N, 3, 3]
    means2d, cov2d = _persp_proj(means_c, covars_c, Ks, width, height)  # [C, N, 2], [C, N, 2, 2]
    depths = means_c[..., 2]  # [C, N]

    cxx = cov2d[..., 0, 0] + eps2d
    cyy = cov2d[..., 1, 1] + eps2d
    cxy = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    det = cxx * cyy - cxy * cxy  # [C, N]
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([cyy / det_safe, -cxy / det_safe, cxx / det_safe], dim=-1)  # [C, N, 3]

    with torch.no_grad():
        radii = _radii(
            means2d.detach(), cxx.detach(), cyy.detach(), det.detach(), depths.detach(),
            opacities.detach(), width, height, near_plane, far_plane, radius_clip,
        )
    return Projection(means2d=means2d, conics=conics, depths=depths, radii=radii)


def _radii(
    means2d: Tensor,  # [C, N, 2]
    cxx: Tensor,  # [C, N]
    cyy: Tensor,  # [C, N]
    det: Tensor,  # [C, N]
    depths: Tensor,  # [C, N]
    opacities: Tensor,  # [N]
    width: int,
    height: int,
    near_plane: float,
    far_plane: float,
    radius_clip: float,
) -> Tensor:  # [C, N, 2] int32
    """gsplat's opacity-aware support radii, zero for culled Gaussians."""
    opac = opacities.to(cxx.dtype).expand_as(cxx)
    extend = torch.sqrt(2.0 * torch.log(torch.clamp(opac / ALPHA_THRESHOLD, min=1.0)))
    extend = torch.clamp(extend, max=MAX_EXTEND)
    rx = torch.ceil(extend * torch.sqrt(torch.clamp(cxx, min=0.0)))
    ry = torch.ceil(extend * torch.sqrt(torch.clamp(cyy, min=0.0)))
    mx, my = means2d[..., 0], means2d[..., 1]
    valid = (
        (depths >= near_plane)
        & (depths <= far_plane)
        & (det > 0)
        & (opac >= ALPHA_THRESHOLD)
        & ~((rx <= radius_clip) & (ry <= radius_clip))
        & (mx + rx > 0)
        & (mx - rx < width)
        & (my + ry > 0)
        & (my - ry < height)
        & torch.isfinite(mx)
        & torch.isfinite(my)
    )
    radii = torch.stack([rx, ry], dim=-1)
    radii = torch.where(valid[..., None], radii, torch.zeros_like(radii))
    return radii.to(torch.int32)


def sh_to_colors(
    means: Tensor,  # [N, 3]
    sh_coeffs: Tensor,  # [N, K, 3] or [C, N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    sh_degree: int,
) -> Tensor:  # [C, N, 3]
    """View-dependent colours from SH coefficients, as gsplat does it.

    The viewing direction is ``means - camera centre``; the result is
    ``max(SH(dir) + 0.5, 0)`` (the Inria convention gsplat follows).

    Args:
        means: Gaussian centres. [N, 3]
        sh_coeffs: SH coefficients, per Gaussian or per camera and Gaussian. [N, K, 3] | [C, N, K, 3]
        viewmats: World-to-camera matrices. [C, 4, 4]
        sh_degree: Degree to evaluate; ``(sh_degree + 1) ** 2 <= K``.

    Returns:
        Colours per camera. [C, N, 3]
    """
    C = viewmats.shape[0]
    N = means.shape[0]
    campos = torch.inverse(viewmats)[:, :3, 3]  # [C, 3]
    dirs = means[None, :, :] - campos[:, None, :]  # [C, N, 3]
    if sh_coeffs.dim() == 3:
        sh_coeffs = sh_coeffs[None].expand(C, N, sh_coeffs.shape[-2], 3)
    colors = _spherical_harmonics(sh_degree, dirs, sh_coeffs)  # [C, N, 3]
    return torch.clamp_min(colors + 0.5, 0.0)


__all__ = ["ALPHA_THRESHOLD", "MAX_EXTEND", "Projection", "project_gaussians", "sh_to_colors"]
