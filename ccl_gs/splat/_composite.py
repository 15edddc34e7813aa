"""Tile intersection and the differentiable CPU compositor (numba kernels).

:func:`intersect_tiles` bins projected Gaussians into screen tiles sorted by
depth; :func:`composite` alpha-blends them with gsplat's rule and returns
gradients for means2d, conics, colours, opacities and backgrounds through a
``torch.autograd.Function`` whose forward and backward are the kernels of
:mod:`ccl_gs.splat._kernels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ccl_gs.splat import _kernels


@dataclass
class TileIntersections:
    """Gaussian-tile pairs of ``C`` images, sorted by (camera, tile, depth)."""

    tile_size: int
    tile_width: int  # tiles per row
    tile_height: int  # tiles per column
    flatten_ids: Tensor  # [M] int32 index into the flattened [C * N] entries
    offsets: Tensor  # [C * tile_height * tile_width + 1] int64 start of each tile's run
    tiles_per_gauss: Tensor  # [C, N] int32

    @property
    def n_isects(self) -> int:
        return int(self.flatten_ids.shape[0])

    def isect_offsets(self) -> Tensor:  # [C, tile_height, tile_width] int32
        """Start offsets per tile in gsplat's layout."""
        C = (self.offsets.shape[0] - 1) // (self.tile_width * self.tile_height)
        return self.offsets[:-1].to(torch.int32).reshape(C, self.tile_height, self.tile_width)


def _np(x: Tensor, dtype: np.dtype) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=dtype)


def intersect_tiles(
    means2d: Tensor,  # [C, N, 2]
    radii: Tensor,  # [C, N, 2] int32, 0 for culled
    depths: Tensor,  # [C, N]
    width: int,
    height: int,
    tile_size: int = 16,
) -> TileIntersections:
    """Which tiles each visible Gaussian's radius box touches, depth sorted per tile.

    Matches gsplat's ``isect_tiles`` (non-packed): the box of Gaussian ``g``
    covers tiles ``[floor((x - r_x) / s), ceil((x + r_x) / s))`` per axis,
    clamped to the grid; ties in depth keep the Gaussian order.
    """
    C, N = depths.shape
    tile_width = math.ceil(width / tile_size)
    tile_height = math.ceil(height / tile_size)
    radii_flat = radii.detach().reshape(C * N, 2)
    visible = torch.nonzero((radii_flat > 0).all(dim=-1)).squeeze(-1)  # [V]
    vis_depths = depths.detach().reshape(C * N)[visible]
    order = visible[torch.sort(vis_depths, stable=True).indices]  # [V]
    flatten_ids, offsets, tiles_per_gauss = _kernels.build_intersections(
        _np(means2d.reshape(C * N, 2), np.float32),
        _np(radii_flat, np.int32),
        _np(order, np.int64),
        N,
        tile_size,
        tile_width,
        tile_height,
        C,
    )
    return TileIntersections(
        tile_size=tile_size,
        tile_width=tile_width,
        tile_height=tile_height,
        flatten_ids=torch.from_numpy(flatten_ids),
        offsets=torch.from_numpy(offsets),
        tiles_per_gauss=torch.from_numpy(tiles_per_gauss).reshape(C, N),
    )


class _Composite(torch.autograd.Function):
    """Tile compositor: forward and backward are numba kernels on CPU arrays."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        means2d: Tensor,  # [C, N, 2]
        conics: Tensor,  # [C, N, 3]
        colors: Tensor,  # [C, N, D]
        opacities: Tensor,  # [C, N]
        backgrounds: Tensor | None,  # [C, D]
        radii: Tensor,  # [C, N, 2] int32
        isect: TileIntersections,
        width: int,
        height: int,
    ) -> tuple[Tensor, Tensor]:
        C, N, D = colors.shape
        f32 = np.float32
        arrays = (
            _np(means2d.reshape(C * N, 2), f32),
            _np(conics.reshape(C * N, 3), f32),
            _np(colors.reshape(C * N, D), f32),
            _np(opacities.reshape(C * N), f32),
            _np(radii.reshape(C * N, 2), np.int32),
            _np(backgrounds, f32) if backgrounds is not None else np.zeros((C, D), f32),
            isect.offsets.numpy(),
            isect.flatten_ids.numpy(),
        )
        out_colors = np.empty((C, height, width, D), f32)
        out_T = np.empty((C, height, width), f32)
        out_last = np.empty((C, height, width), np.int64)
        _kernels.launch(
            _kernels.composite_forward,
            *arrays, width, height, isect.tile_size, isect.tile_width, out_colors, out_T, out_last,
        )
        ctx.arrays = arrays
        ctx.out_T = out_T
        ctx.out_last = out_last
        ctx.geometry = (C, N, D, width, height, isect.tile_size, isect.tile_width)
        ctx.has_bg = backgrounds is not None
        device, dtype = colors.device, colors.dtype
        render_colors = torch.from_numpy(out_colors).to(device=device, dtype=dtype)
        render_alphas = torch.from_numpy(1.0 - out_T).to(device=device, dtype=dtype)[..., None]
        ctx.device, ctx.dtype = device, dtype
        return render_colors, render_alphas

    @staticmethod
    def backward(ctx, v_render_colors: Tensor, v_render_alphas: Tensor):  # type: ignore[override]
        C, N, D, width, height, tile_size, tile_width = ctx.geometry
        arrays = ctx.arrays
        flatten_ids = arrays[7]
        M = flatten_ids.shape[0]
        f32 = np.float32
        v_colors_np = _np(v_render_colors, f32)
        v_alphas_np = _np(v_render_alphas.reshape(C, height, width), f32)
        v_isect = np.zeros((M, 6 + D), f32)
        if M > 0:
            _kernels.launch(
                _kernels.composite_backward,
                *arrays, width, height, tile_size, tile_width,
                ctx.out_T, ctx.out_last, v_colors_np, v_alphas_np, v_isect,
            )
        v_gauss = np.zeros((C * N, 6 + D), f32)
        _kernels.sum_per_gaussian(flatten_ids, v_isect, v_gauss)
        v = torch.from_numpy(v_gauss).to(device=ctx.device, dtype=ctx.dtype)
        v_means2d = v[:, 0:2].reshape(C, N, 2)
        v_conics = v[:, 2:5].reshape(C, N, 3)
        v_opacities = v[:, 5].reshape(C, N)
        v_colors = v[:, 6:].reshape(C, N, D)
        v_backgrounds = None
        if ctx.has_bg and ctx.needs_input_grad[4]:
            T = torch.from_numpy(ctx.out_T).to(device=ctx.device, dtype=ctx.dtype)
            v_backgrounds = (v_render_colors * T[..., None]).sum(dim=(1, 2))  # [C, D]
        return v_means2d, v_conics, v_colors, v_opacities, v_backgrounds, None, None, None, None


def composite(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    colors: Tensor,  # [C, N, D]
    opacities: Tensor,  # [C, N]
    radii: Tensor,  # [C, N, 2] int32
    isect: TileIntersections,
    width: int,
    height: int,
    backgrounds: Tensor | None = None,  # [C, D]
) -> tuple[Tensor, Tensor]:
    """Alpha-composite depth-sorted Gaussians per pixel (differentiable).

    Args:
        means2d: Projected centres in pixels. [C, N, 2]
        conics: Inverse 2D covariances (a, b, c). [C, N, 3]
        colors: Features to blend, any channel count. [C, N, D]
        opacities: Opacities. [C, N]
        radii: Support radii from the projection, 0 for culled. [C, N, 2]
        isect: Tile intersections from :func:`intersect_tiles`.
        width, height: Image size.
        backgrounds: Colour behind the Gaussians. [C, D]

    Returns:
        render_colors [C, H, W, D] and render_alphas [C, H, W, 1].
    """
    return _Composite.apply(means2d, conics, colors, opacities, backgrounds, radii, isect, width, height)
