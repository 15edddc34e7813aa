"""A slow, obvious dense rasterizer: every Gaussian against every pixel.

For tests and benchmarks only. It shares nothing with the tile compositor
except the projection's building blocks (gsplat's PyTorch reference
functions): no tiles, no radius boxes, no numba, just autograd over dense
``[C, P, N]`` tensors. The compositing rule is gsplat's:

    sigma_pg = 0.5 (a dx^2 + c dy^2) + b dx dy,  d = mean2d_g - (x + 0.5, y + 0.5)
    alpha_pg = min(0.999, o_g exp(-sigma_pg)), zero where sigma < 0 or alpha < 1/255
    Gaussians sorted by depth (stable); T_pg = prod_{h before g} (1 - alpha_ph)
    g is used iff T_pg (1 - alpha_pg) > 1e-4 (T is monotone, so this is
    "stop before the transmittance would fall to <= 1e-4")
    colour_p = sum_g used_pg alpha_pg T_pg c_g + T_final_p bg,  alpha_p = 1 - T_final_p

Memory is ``C * H * W * N`` floats per intermediate: keep it small.
"""

from __future__ import annotations

import torch
from gsplat.cuda._torch_impl import _persp_proj, _quat_scale_to_covar_preci, _spherical_harmonics, _world_to_cam
from torch import Tensor


def rasterize_reference(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D] | [C, N, D] | [N, K, 3] | [C, N, K, 3] (SH)
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,  # [C, D]
    render_mode: str = "RGB",
    rasterize_mode: str = "classic",
) -> tuple[Tensor, Tensor, dict]:
    """Dense rasterization with the same arguments and outputs as :func:`ccl_gs.splat.rasterize`.

    ``rasterize_mode="antialiased"`` scales each Gaussian's opacity in each camera by
    ``sqrt(det(cov2d) / det(cov2d + eps2d I))`` (the blur keeps the Gaussian's integral).

    Returns:
        render_colors [C, H, W, X], render_alphas [C, H, W, 1] and a dict with
        the projection's ``means2d`` [C, N, 2] (call ``retain_grad`` on it to
        read screen-space gradients) and ``depths`` [C, N].
    """
    C, N = viewmats.shape[0], means.shape[0]
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_covar=True, compute_preci=False)
    means_c, covars_c = _world_to_cam(means, covars, viewmats)  # [C, N, 3], [C, N, 3, 3]
    means2d, cov2d = _persp_proj(means_c, covars_c, Ks, width, height)  # [C, N, 2], [C, N, 2, 2]
    depths = means_c[..., 2]  # [C, N]
    det_orig = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]  # [C, N]
    cov2d = cov2d + eps2d * torch.eye(2, dtype=cov2d.dtype)
    det = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]  # [C, N]
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    opac = opacities[None].expand(C, N)  # [C, N]
    if rasterize_mode == "antialiased":
        opac = opac * torch.sqrt(torch.clamp(det_orig / det_safe, min=1e-12))
    conic_a = cov2d[..., 1, 1] / det_safe
    conic_b = -0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]) / det_safe
    conic_c = cov2d[..., 0, 0] / det_safe

    # Which Gaussians are drawn at all: in the depth range, a proper 2D
    # covariance, opacity reaching the threshold, and (optionally) not too small.
    keep = (depths >= near_plane) & (depths <= far_plane) & (det > 0) & (opac >= 1.0 / 255.0)
    if radius_clip > 0:
        with torch.no_grad():
            extend = torch.sqrt(2.0 * torch.log(torch.clamp(opac * 255.0, min=1.0))).clamp(max=3.33)
            rx = torch.ceil(extend * cov2d[..., 0, 0].clamp(min=0).sqrt())
            ry = torch.ceil(extend * cov2d[..., 1, 1].clamp(min=0).sqrt())
            keep = keep & ~((rx <= radius_clip) & (ry <= radius_clip))

    if sh_degree is not None:
        campos = torch.inverse(viewmats)[:, :3, 3]  # [C, 3]
        dirs = means[None, :, :] - campos[:, None, :]  # [C, N, 3]
        sh = colors if colors.dim() == 4 else colors[None].expand(C, *colors.shape)
        feats = torch.clamp_min(_spherical_harmonics(sh_degree, dirs, sh) + 0.5, 0.0)  # [C, N, 3]
    elif colors.dim() == 2:
        feats = colors[None].expand(C, N, colors.shape[-1])
    else:
        feats = colors
    if render_mode in ("D", "ED"):
        feats = depths[..., None]
        backgrounds = None
    elif render_mode in ("RGB+D", "RGB+ED"):
        feats = torch.cat([feats, depths[..., None]], dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, torch.zeros_like(backgrounds[:, :1])], dim=-1)

    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means.dtype) + 0.5, torch.arange(width, dtype=means.dtype) + 0.5, indexing="ij"
    )
    pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)  # [P, 2]

    outs, alphas_out = [], []
    for cam in range(C):
        order = torch.sort(depths[cam].detach(), stable=True).indices  # [N]
        dx = means2d[cam, order, 0][None, :] - pix[:, :1]  # [P, N]
        dy = means2d[cam, order, 1][None, :] - pix[:, 1:]  # [P, N]
        sigma = 0.5 * (conic_a[cam, order] * dx * dx + conic_c[cam, order] * dy * dy) + conic_b[cam, order] * dx * dy
        alpha = torch.clamp(opac[cam, order][None, :] * torch.exp(-sigma), max=0.999)
        drawn = keep[cam, order][None, :] & (sigma >= 0) & (alpha >= 1.0 / 255.0)
        alpha = torch.where(drawn, alpha, torch.zeros_like(alpha))  # [P, N]
        one_minus = 1.0 - alpha
        T_after = torch.cumprod(one_minus, dim=-1)  # [P, N] transmittance after each Gaussian
        T_before = torch.cat([torch.ones_like(T_after[:, :1]), T_after[:, :-1]], dim=-1)
        used = (T_after > 1e-4).to(alpha.dtype)  # prefix of the sorted list
        weights = alpha * T_before * used  # [P, N]
        T_final = torch.prod(1.0 - alpha * used, dim=-1, keepdim=True)  # [P, 1]
        out = weights @ feats[cam, order]  # [P, X]
        if backgrounds is not None:
            out = out + T_final * backgrounds[cam][None, :]
        outs.append(out.reshape(height, width, -1))
        alphas_out.append((1.0 - T_final).reshape(height, width, 1))
    render_colors = torch.stack(outs, dim=0)  # [C, H, W, X]
    render_alphas = torch.stack(alphas_out, dim=0)  # [C, H, W, 1]
    if render_mode in ("ED", "RGB+ED"):
        depth = render_colors[..., -1:] / render_alphas.clamp(min=1e-10)
        render_colors = torch.cat([render_colors[..., :-1], depth], dim=-1)
    return render_colors, render_alphas, {"means2d": means2d, "depths": depths}
