"""Rays, samples along them, volume-rendering weights and the proposal losses.

Samples are intervals ``[t_start, t_end]`` along a ray. The proposal
machinery works in "s-space", a normalized distance: with nerfacto's
spacing ``g(t) = t / 2`` for ``t < 1`` and ``1 - 1 / (2 t)`` beyond,
``s = (g(t) - g(near)) / (g(far) - g(near))`` in [0, 1] (uniform in ``t``
near the cameras, uniform in disparity far away).

* :func:`camera_rays` - origins and unit directions of pixels (OpenCV camera).
* :func:`uniform_lindisp_bins` - the initial sampler (stratified in s-space).
* :func:`pdf_bins` - importance sampling of new bins from a weight histogram.
* :func:`render_weights` - ``w_i = (1 - exp(-sigma_i delta_i)) T_i``.
* :func:`interlevel_loss`, :func:`distortion_loss` - mip-NeRF 360's losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class RaySamples:
    """Samples of ``R`` rays, ``S`` intervals each, with their s-space edges."""

    origins: Tensor  # [R, 3]
    directions: Tensor  # [R, 3] unit
    sdist: Tensor  # [R, S + 1] interval edges in s-space, ascending
    near: float
    far: float

    @property
    def tdist(self) -> Tensor:
        """``[R, S + 1]`` interval edges in ray distance ``t``."""
        return s_to_t(self.sdist, self.near, self.far)

    def midpoints(self) -> tuple[Tensor, Tensor]:
        """Positions ``[R, S, 3]`` of the interval midpoints and their distances ``[R, S]``."""
        t = self.tdist
        mid = 0.5 * (t[:, :-1] + t[:, 1:])
        return self.origins[:, None, :] + self.directions[:, None, :] * mid[..., None], mid


def _spacing(t: Tensor | float) -> Tensor:
    t = torch.as_tensor(t, dtype=torch.float32)
    return torch.where(t < 1, t / 2, 1 - 1 / (2 * t.clamp_min(1e-6)))


def _spacing_inv(g: Tensor) -> Tensor:
    return torch.where(g < 0.5, 2 * g, 1 / (2 * (1 - g).clamp_min(1e-6)))


def s_to_t(s: Tensor, near: float, far: float) -> Tensor:
    """s-space -> ray distance (inverse of nerfacto's piecewise lin / disparity spacing)."""
    g0, g1 = _spacing(near).to(s), _spacing(far).to(s)
    return _spacing_inv(g0 + s * (g1 - g0))


def camera_rays(c2w: Tensor, K: Tensor, rows: Tensor, cols: Tensor) -> tuple[Tensor, Tensor]:
    """Rays through pixel centres.

    Args:
        c2w: ``[R, 4, 4]`` or ``[4, 4]`` camera-to-world (OpenCV axes: x right, y down, z forward).
        K: ``[R, 3, 3]`` or ``[3, 3]`` intrinsics (pixel centres at +0.5).
        rows, cols: ``[R]`` integer pixel coordinates.
    Returns:
        origins ``[R, 3]`` and unit directions ``[R, 3]`` (world). Directions are
        normalized, so a rotation block carrying a uniform scale does no harm.
    """
    x = (cols.to(torch.float32) + 0.5 - K[..., 0, 2]) / K[..., 0, 0]
    y = (rows.to(torch.float32) + 0.5 - K[..., 1, 2]) / K[..., 1, 1]
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1)  # [R, 3]
    R = c2w[..., :3, :3]
    d = (R @ d_cam[..., None])[..., 0] if R.ndim == 3 else d_cam @ R.T
    origins = c2w[..., :3, 3].expand_as(d)
    return origins.contiguous(), torch.nn.functional.normalize(d, dim=-1)


def uniform_lindisp_bins(n_rays: int, n_samples: int, jitter: bool, device=None) -> Tensor:
    """``[R, S + 1]`` s-space edges, evenly spaced, jittered per ray in training."""
    s = torch.linspace(0, 1, n_samples + 1, device=device).expand(n_rays, -1)
    if jitter:
        mids = 0.5 * (s[:, 1:] + s[:, :-1])
        lo = torch.cat([s[:, :1], mids], -1)
        hi = torch.cat([mids, s[:, -1:]], -1)
        s = lo + (hi - lo) * torch.rand(n_rays, 1, device=device)
    return s.contiguous()


def pdf_bins(sdist: Tensor, weights: Tensor, n_samples: int, jitter: bool, padding: float = 0.01, eps: float = 1e-5) -> Tensor:
    """Importance-sample ``n_samples`` new intervals from a weight histogram.

    Args:
        sdist: ``[R, S + 1]`` s-space edges of the histogram.
        weights: ``[R, S]`` (non-negative) weights of its intervals.
        n_samples: intervals to return.
        jitter: one random offset per ray (training) or the evenly spaced
            quantiles (evaluation).
        padding: added to every weight (nerfstudio's histogram padding).
    Returns:
        ``[R, n_samples + 1]`` s-space edges, ascending (the samples'
        quantiles are the edges; the original edges are not included).
    """
    w = weights.detach() + padding
    wsum = w.sum(-1, keepdim=True)
    padding_extra = (eps - wsum).clamp_min(0)
    w = w + padding_extra / w.shape[-1]
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1).clamp(max=1)], -1)  # [R, S + 1]
    R = sdist.shape[0]
    n = n_samples + 1
    if jitter:
        u = torch.linspace(0, 1 - 1 / n, n, device=sdist.device) + torch.rand(R, 1, device=sdist.device) / n
    else:
        u = torch.linspace(0, 1, n, device=sdist.device).expand(R, -1)
    u = u.contiguous()
    idx = torch.searchsorted(cdf.detach().contiguous(), u, right=True)
    below = (idx - 1).clamp(0, cdf.shape[-1] - 1)
    above = idx.clamp(0, cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = cdf.gather(1, below), cdf.gather(1, above)
    s_lo, s_hi = sdist.gather(1, below), sdist.gather(1, above)
    denom = cdf_hi - cdf_lo
    frac = torch.where(denom > 0, (u - cdf_lo) / denom.clamp_min(1e-12), torch.zeros_like(u)).clamp(0, 1)
    out = s_lo + frac * (s_hi - s_lo)
    return torch.sort(out.detach(), -1).values


def render_weights(density: Tensor, tdist: Tensor) -> Tensor:
    """Volume-rendering weights ``[R, S]`` from densities ``[R, S]`` and interval edges ``[R, S + 1]``."""
    delta = (tdist[:, 1:] - tdist[:, :-1]).clamp_min(0)
    sd = density * delta
    alpha = 1 - torch.exp(-sd)
    trans = torch.exp(-torch.cat([torch.zeros_like(sd[:, :1]), torch.cumsum(sd, -1)[:, :-1]], -1))
    return alpha * trans


def _outer(t0: Tensor, t1: Tensor, w1: Tensor) -> Tensor:
    """Weight of histogram ``(t1, w1)`` inside each interval of ``t0``: ``[R, S0]`` (mip-NeRF 360's ``outer``)."""
    cw = torch.cat([torch.zeros_like(w1[:, :1]), torch.cumsum(w1, -1)], -1)  # [R, S1 + 1]
    lo = (torch.searchsorted(t1[:, :-1].contiguous(), t0[:, :-1].contiguous(), right=True) - 1).clamp(0, w1.shape[-1] - 1)
    hi = torch.searchsorted(t1[:, 1:].contiguous(), t0[:, 1:].contiguous(), right=True).clamp(0, w1.shape[-1] - 1)
    return cw[:, 1:].gather(1, hi) - cw[:, :-1].gather(1, lo)


def interlevel_loss(final: tuple[Tensor, Tensor], proposals: list[tuple[Tensor, Tensor]], eps: float = 1e-7) -> Tensor:
    """mip-NeRF 360's proposal loss: each proposal histogram must bound the final one from above.

    Args:
        final: ``(sdist [R, S + 1], weights [R, S])`` of the NeRF samples (detached here).
        proposals: the same for each proposal level (gradients flow into these weights).
    """
    s, w = final[0].detach(), final[1].detach()
    loss = w.new_zeros(())
    for sp, wp in proposals:
        w_outer = _outer(s, sp.detach(), wp)
        loss = loss + ((w - w_outer).clamp_min(0) ** 2 / (w + eps)).mean()
    return loss


def distortion_loss(sdist: Tensor, weights: Tensor) -> Tensor:
    """mip-NeRF 360's distortion loss on s-space intervals, mean over rays.

    ``sum_ij w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 (s_{i+1} - s_i)``, computed
    in O(S) with exclusive cumulative sums (the midpoints are sorted).
    """
    mid = 0.5 * (sdist[:, 1:] + sdist[:, :-1])
    width = sdist[:, 1:] - sdist[:, :-1]
    wm = weights * mid
    w_cum = torch.cumsum(weights, -1) - weights  # exclusive
    wm_cum = torch.cumsum(wm, -1) - wm
    inter = 2 * (weights * (mid * w_cum - wm_cum)).sum(-1)
    intra = (weights**2 * width).sum(-1) / 3
    return (inter + intra).mean()
