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

The projection is written as batched elementwise ops (no 3x3 einsums) so that
it stays cheap on CPU for 10^5 Gaussians; it computes what gsplat's
``_torch_impl._fully_fused_projection`` computes (which the dense reference
uses). Gradients flow through autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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
    compensations: Tensor | None = None  # [C, N] sqrt(det(cov2d) / det(cov2d + eps2d I)), antialiased only


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
    antialiased: bool = False,
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
        antialiased: Also return the opacity compensation of gsplat's
            ``rasterize_mode="antialiased"`` (Mip-Splatting's 2D filter): the
            blur then keeps each Gaussian's integral, so a Gaussian smaller than
            a pixel dims instead of growing to the blur's size. Culling and the
            radius box use the compensated opacity, as gsplat does.

    Returns:
        A :class:`Projection` with means2d [C, N, 2], conics [C, N, 3],
        depths [C, N], int32 radii [C, N, 2] and, when ``antialiased``,
        compensations [C, N].
    """
    sxx, sxy, sxz, syy, syz, szz = _covariance(quats, scales)  # 6 x [N]
    R = viewmats[:, :3, :3, None]  # [C, 3, 3, 1]
    t = viewmats[:, :3, 3, None]  # [C, 3, 1]
    mx, my, mz = means.unbind(-1)  # [N]
    # Camera-space centres, [C, N] each.
    tx = R[:, 0, 0] * mx + R[:, 0, 1] * my + R[:, 0, 2] * mz + t[:, 0]
    ty = R[:, 1, 0] * mx + R[:, 1, 1] * my + R[:, 1, 2] * mz + t[:, 1]
    tz = R[:, 2, 0] * mx + R[:, 2, 1] * my + R[:, 2, 2] * mz + t[:, 2]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]  # [C, 1]
    # gsplat clamps x/z and y/z in the Jacobian to 1.3x the field of view.
    lim_x = 0.3 * (0.5 * width / fx)
    lim_y = 0.3 * (0.5 * height / fy)
    inv_z = 1.0 / tz
    u = torch.maximum(torch.minimum(tx * inv_z, (width - cx) / fx + lim_x), -(cx / fx + lim_x))  # [C, N]
    v = torch.maximum(torch.minimum(ty * inv_z, (height - cy) / fy + lim_y), -(cy / fy + lim_y))
    # Rows p, q of J R (J: perspective Jacobian at the centre): 2D cov = [p; q] S [p; q]^T.
    ax, ay = fx * inv_z, fy * inv_z
    p0, p1, p2 = (ax * (R[:, 0, k] - u * R[:, 2, k]) for k in range(3))
    q0, q1, q2 = (ay * (R[:, 1, k] - v * R[:, 2, k]) for k in range(3))
    sp0 = sxx * p0 + sxy * p1 + sxz * p2  # S p, [C, N] each
    sp1 = sxy * p0 + syy * p1 + syz * p2
    sp2 = sxz * p0 + syz * p1 + szz * p2
    cxx0 = sp0 * p0 + sp1 * p1 + sp2 * p2  # [C, N] 2D covariance before the blur
    cxy = sp0 * q0 + sp1 * q1 + sp2 * q2
    cyy0 = (sxx * q0 + sxy * q1 + sxz * q2) * q0 + (sxy * q0 + syy * q1 + syz * q2) * q1 \
        + (sxz * q0 + syz * q1 + szz * q2) * q2
    cxx, cyy = cxx0 + eps2d, cyy0 + eps2d  # blurred
    means2d = torch.stack([fx * tx * inv_z + cx, fy * ty * inv_z + cy], dim=-1)  # [C, N, 2]
    depths = tz
    det = cxx * cyy - cxy * cxy  # [C, N]
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([cyy / det_safe, -cxy / det_safe, cxx / det_safe], dim=-1)  # [C, N, 3]
    compensations = None
    opac = opacities.detach()
    if antialiased:
        det_orig = cxx0 * cyy0 - cxy * cxy
        compensations = torch.sqrt(torch.clamp(det_orig / det_safe, min=1e-12))  # [C, N]; finite gradient at 0
        opac = opac * compensations.detach()

    with torch.no_grad():
        radii = _radii(
            means2d.detach(), cxx.detach(), cyy.detach(), det.detach(), depths.detach(),
            opac, width, height, near_plane, far_plane, radius_clip,
        )
    return Projection(means2d=means2d, conics=conics, depths=depths, radii=radii, compensations=compensations)


def _covariance(
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:  # 6 x [N]
    """Upper triangle (xx, xy, xz, yy, yz, zz) of ``R diag(s^2) R^T`` (wxyz quaternions)."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    sx, sy, sz = scales.unbind(-1)
    # Columns of R scaled by the scales: M = R diag(s).
    m00, m10, m20 = (1 - 2 * (y * y + z * z)) * sx, 2 * (x * y + w * z) * sx, 2 * (x * z - w * y) * sx
    m01, m11, m21 = 2 * (x * y - w * z) * sy, (1 - 2 * (x * x + z * z)) * sy, 2 * (y * z + w * x) * sy
    m02, m12, m22 = 2 * (x * z + w * y) * sz, 2 * (y * z - w * x) * sz, (1 - 2 * (x * x + y * y)) * sz
    return (
        m00 * m00 + m01 * m01 + m02 * m02,
        m00 * m10 + m01 * m11 + m02 * m12,
        m00 * m20 + m01 * m21 + m02 * m22,
        m10 * m10 + m11 * m11 + m12 * m12,
        m10 * m20 + m11 * m21 + m12 * m22,
        m20 * m20 + m21 * m21 + m22 * m22,
    )


def _radii(
    means2d: Tensor,  # [C, N, 2]
    cxx: Tensor,  # [C, N]
    cyy: Tensor,  # [C, N]
    det: Tensor,  # [C, N]
    depths: Tensor,  # [C, N]
    opacities: Tensor,  # [N] | [C, N]
    width: int,
    height: int,
    near_plane: float,
    far_plane: float,
    radius_clip: float,
) -> Tensor:  # [C, N, 2] int32
    """gsplat's opacity-aware support radii, zero for culled Gaussians."""
    opac = opacities.to(cxx.dtype).expand_as(cxx)  # [N] or [C, N]
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


__all__ = ["ALPHA_THRESHOLD", "MAX_EXTEND", "Projection", "project_gaussians"]
