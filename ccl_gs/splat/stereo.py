"""Photo-consistent starting points for scenes without sparse points (a small plane sweep).

Random Gaussians in a box start almost everywhere in empty space. On an
object-centric capture with a background (an object on a table in a room,
photographed all around) there is no box that holds the object, the table
and the walls without also holding the cameras, and the Gaussians that start
in front of a lens become floaters that explain one training view and spoil
the others. Structure-from-motion points avoid this; when a capture has none,
this module computes a crude substitute from the training images alone.

For a pixel ``p`` of a reference view ``i`` the ray through it is cut at ``D``
depths, uniform in disparity between the view's near and far bound. Each
candidate point is projected into the ``K`` views nearest to ``i``; the cost of
the candidate in view ``j`` is the mean absolute difference between the
``P x P`` colour patch around ``p`` and the patch around the projection in
``j`` (fronto-parallel patches, bilinear sampling, images reduced so that
their longer side is at most ``max_side``). The cost of a depth is the mean of
its ``best_views`` smallest view costs - robust to views where the point is
occluded or outside the image - and the ray keeps its cheapest depth when
that cost is below ``max_cost``. The point takes the pixel's colour.

This is the winner-take-all plane sweep of multi-view stereo without any
regularization: points in textureless regions land at an arbitrary depth on
the right ray (they still render the right colour from their own view), and
densification and pruning take care of the rest. Views with alpha (Blender)
seed only pixels whose alpha is at least 0.5. The patches are neither rotated
nor warped: neighbours must see the surface with little roll between them
(level cameras, as in walk-arounds and orbits; a 60-degree roll between
neighbours halves the matched rays), and a capture where nothing matches
falls back to random points (:mod:`ccl_gs.splat.seeding`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class StereoConfig:
    """Parameters of :func:`stereo_points` (fixed; the defaults were measured on generated orbits and lego)."""

    max_side: int = 160
    """Longer image side used for matching (images are reduced with an area filter)."""
    depths: int = 64
    """Depth hypotheses per ray."""
    neighbours: int = 6
    """Views compared with each reference view (nearest camera centres)."""
    best_views: int = 2
    """A depth's cost is the mean of its this many best view costs."""
    patch: int = 3
    """Patch side in pixels of the reduced images."""
    max_cost: float = 0.08
    """Largest accepted mean absolute patch difference (colours in [0, 1])."""
    oversample: float = 2.0
    """Rays cast per requested point (rays above ``max_cost`` are dropped)."""
    chunk: int = 1024
    """Rays per batch (memory: chunk x depths x patch^2 x 3 floats per neighbour)."""


@dataclass
class StereoView:
    """One training view as the plane sweep needs it."""

    image: Tensor
    """``[H, W, 3]`` float in [0, 1]."""
    viewmat: Tensor
    """``[4, 4]`` world-to-camera (OpenCV axes)."""
    K: Tensor
    """``[3, 3]`` intrinsics of ``image`` (pixel centres at +0.5)."""
    near: float
    """Nearest depth searched."""
    far: float
    """Farthest depth searched."""
    alpha: Tensor | None = None
    """``[H, W, 1]`` or None."""


def _reduce(view: StereoView, max_side: int) -> StereoView:
    """The view with its image reduced (area filter) so that its longer side is at most ``max_side``."""
    H, W = view.image.shape[:2]
    s = max(H, W) / max_side
    if s <= 1:
        return view
    h, w = max(int(round(H / s)), 1), max(int(round(W / s)), 1)
    img = F.interpolate(view.image.permute(2, 0, 1)[None], size=(h, w), mode="area")[0].permute(1, 2, 0)
    alpha = None
    if view.alpha is not None:
        alpha = F.interpolate(view.alpha.permute(2, 0, 1)[None], size=(h, w), mode="area")[0].permute(1, 2, 0)
    K = view.K.clone()
    K[0] *= w / W
    K[1] *= h / H
    return StereoView(img.contiguous(), view.viewmat, K, view.near, view.far, alpha)


def neighbour_views(viewmats: Tensor, k: int) -> Tensor:
    """For each view the ``k`` other views with the nearest camera centres: ``[V, k]`` (``k`` <= V - 1)."""
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    centers = -(R.transpose(1, 2) @ t[..., None])[..., 0]  # [V, 3]
    d = torch.cdist(centers, centers)
    d.fill_diagonal_(float("inf"))
    return d.topk(min(k, len(viewmats) - 1), dim=1, largest=False).indices


def _patches(image: Tensor, uv: Tensor, offsets: Tensor) -> Tensor:
    """Bilinear colour patches of ``image [H, W, 3]`` around pixel positions ``uv [..., 2]``: ``[..., P*P, 3]``.

    Positions are continuous pixel coordinates (centres at +0.5); outside the image the border is repeated.
    """
    H, W = image.shape[:2]
    pts = uv[..., None, :] + offsets  # [..., P*P, 2]
    grid = torch.stack([pts[..., 0] / W * 2 - 1, pts[..., 1] / H * 2 - 1], -1).reshape(1, -1, 1, 2)
    s = F.grid_sample(image.permute(2, 0, 1)[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return s[0, :, :, 0].T.reshape(*pts.shape[:-1], 3)


def _sample_pixels(view: StereoView, n: int, generator: torch.Generator) -> Tensor:
    """``[n, 2]`` random continuous pixel positions of ``view``; only pixels with alpha >= 0.5 when it has alpha."""
    H, W = view.image.shape[:2]
    if view.alpha is None:
        return torch.rand(n, 2, generator=generator) * torch.tensor([W, H], dtype=torch.float32)
    ys, xs = torch.nonzero(view.alpha[..., 0] >= 0.5, as_tuple=True)
    if len(xs) == 0:
        return torch.zeros(0, 2)
    pick = torch.randint(0, len(xs), (n,), generator=generator)
    return torch.stack([xs[pick], ys[pick]], 1).float() + torch.rand(n, 2, generator=generator)


def backproject(view: StereoView, pix: Tensor, depths: Tensor) -> Tensor:
    """World points at camera depths ``depths [R, D]`` along the rays of pixels ``pix [R, 2]``: ``[R, D, 3]``."""
    rays = torch.cat([pix, torch.ones_like(pix[:, :1])], 1) @ torch.linalg.inv(view.K).T  # [R, 3], z = 1
    c2w = torch.linalg.inv(view.viewmat)
    return (rays[:, None, :] * depths[..., None]) @ c2w[:3, :3].T + c2w[:3, 3]


def sweep_costs(
    ref: StereoView, others: list[StereoView], pix: Tensor, world: Tensor, patch: int, best_views: int
) -> Tensor:
    """Plane-sweep cost of candidate points along rays of one reference view.

    Args:
        ref: the reference view.
        others: the views compared with it.
        pix: ``[R, 2]`` pixel positions in ``ref`` (continuous, centres at +0.5).
        world: ``[R, D, 3]`` candidate points on the rays of ``pix`` (:func:`backproject`).
        patch: patch side.
        best_views: how many of the smallest view costs are averaged.
    Returns:
        ``[R, D]`` costs (``inf`` where fewer than ``best_views`` views see the candidate).
    """
    r = torch.arange(patch, dtype=torch.float32, device=pix.device) - (patch - 1) / 2
    offsets = torch.stack(torch.meshgrid(r, r, indexing="xy"), -1).reshape(-1, 2)  # [P*P, 2]
    ref_patch = _patches(ref.image, pix, offsets)  # [R, P*P, 3]
    costs = []
    for o in others:
        pc = world @ o.viewmat[:3, :3].T + o.viewmat[:3, 3]  # [R, D, 3]
        z = pc[..., 2]
        uvh = pc @ o.K.T
        uv = uvh[..., :2] / z.clamp_min(1e-6)[..., None]
        H, W = o.image.shape[:2]
        inside = (z > 1e-6) & (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
        c = (_patches(o.image, uv, offsets) - ref_patch[:, None]).abs().mean((-1, -2))  # [R, D]
        costs.append(torch.where(inside, c, torch.full_like(c, float("inf"))))
    stack = torch.stack(costs, -1)  # [R, D, K]
    k = min(best_views, stack.shape[-1])
    return stack.topk(k, dim=-1, largest=False).values.mean(-1)


def stereo_points(
    views: list[StereoView], n: int, generator: torch.Generator, cfg: StereoConfig = StereoConfig()
) -> tuple[Tensor, Tensor, dict]:
    """Up to ``n`` photo-consistent world points ``[M, 3]`` and their colours ``[M, 3]`` in [0, 1].

    Rays are spread evenly over the views (random pixels, among those with alpha >= 0.5 where the
    views have alpha); ``stats`` holds ``rays`` (cast), ``kept`` and ``median_cost`` of the kept rays.
    """
    small = [_reduce(v, cfg.max_side) for v in views]
    V = len(small)
    if V < 2:
        return torch.zeros(0, 3), torch.zeros(0, 3), {"rays": 0, "kept": 0, "median_cost": float("nan")}
    nbrs = neighbour_views(torch.stack([v.viewmat for v in small]), cfg.neighbours)
    per_view = int(np.ceil(n * cfg.oversample / V))
    pts, cols, kept_cost = [], [], []
    cast = 0
    steps = torch.linspace(0, 1, cfg.depths)
    for i, ref in enumerate(small):
        pix = _sample_pixels(ref, per_view, generator)
        cast += len(pix)
        depth = 1 / (1 / ref.near + steps * (1 / ref.far - 1 / ref.near))  # [D], uniform in disparity
        others = [small[j] for j in nbrs[i].tolist()]
        for c0 in range(0, len(pix), cfg.chunk):
            p = pix[c0 : c0 + cfg.chunk]
            world = backproject(ref, p, depth[None].expand(len(p), -1))  # [R, D, 3]
            cost = sweep_costs(ref, others, p, world, cfg.patch, cfg.best_views)  # [R, D]
            best, idx = cost.min(1)
            ok = best < cfg.max_cost
            if not ok.any():
                continue
            pts.append(world[ok, idx[ok]])
            cols.append(_patches(ref.image, p[ok], torch.zeros(1, 2))[:, 0])
            kept_cost.append(best[ok])
    if not pts:
        return torch.zeros(0, 3), torch.zeros(0, 3), {"rays": cast, "kept": 0, "median_cost": float("nan")}
    P, C, cost = torch.cat(pts), torch.cat(cols).clamp(0, 1), torch.cat(kept_cost)
    if len(P) > n:
        keep = torch.randperm(len(P), generator=generator)[:n]
        P, C = P[keep], C[keep]
    return P, C, {"rays": cast, "kept": int(len(cost)), "median_cost": float(cost.median())}
