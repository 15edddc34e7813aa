"""LERF's multi-scale CLIP pyramid and DINO map: tile geometry and per-pixel lookup.

Tile geometry (``pyramid_embedding_dataloader.py`` / ``patch_embedding_dataloader.py``):
``n`` tile ratios ``linspace(0.05, 0.5, 7)`` of the image **height** H; per
level ``kernel = int(H * ratio)``, ``stride = int(kernel * stride_ratio)``
with ``stride_ratio = interp(ratio, [0.05, 0.15], [1.0, 0.5])``, zero padding
``kernel // 2`` (``torch.nn.Unfold``): tile ``(i, j)`` covers rows
``[stride * i - pad, stride * i - pad + kernel)`` and likewise columns; its
centre is ``(kernel - 1) / 2 - pad + stride * i``. A level's embeddings are
stored ``[rows + 1, cols + 1, D]`` with the last row and column repeated.

Lookup of a pixel ``(row, col)`` (integer indices): bilinear over the tile
centres of a level; training draws a random lower level ``b`` in ``0..n-2``
and ``w ~ U[0, 1)`` per ray and lerps levels ``b`` and ``b + 1`` (not
renormalized); the ray's normalized scale is ``s = (b + w) / (n - 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


@dataclass
class PyramidConfig:
    """The CLIP pyramid (LERF's hard-coded values by default)."""

    tile_min: float = field(default=0.05, metadata={"help": "Smallest tile side as a fraction of the image height."})
    tile_max: float = field(default=0.5, metadata={"help": "Largest tile side as a fraction of the image height."})
    levels: int = field(default=7, metadata={"help": "Number of tile sizes."})
    stride_scaler: float = field(default=0.5, metadata={"help": "Stride / tile side of the large tiles."})

    def validate(self) -> None:
        if not 0 < self.tile_min <= self.tile_max <= 1 or self.levels < 2 or not 0 < self.stride_scaler <= 1:
            raise ValueError(
                f"pyramid: need 0 < tile_min <= tile_max <= 1, levels >= 2, 0 < stride_scaler <= 1 "
                f"(got {self.tile_min}, {self.tile_max}, {self.levels}, {self.stride_scaler})"
            )

    def ratios(self) -> np.ndarray:
        """``[n]`` tile side / H per level."""
        return np.linspace(self.tile_min, self.tile_max, self.levels)


@dataclass(frozen=True)
class TileGrid:
    """The tiles of one pyramid level on an ``H x W`` image."""

    kernel: int
    stride: int
    pad: int
    rows: int
    cols: int

    @property
    def centre0(self) -> float:
        """Row (and column) of the first tile's centre."""
        return (self.kernel - 1) / 2 - self.pad

    def boxes(self) -> Tensor:
        """``[rows * cols, 4]`` int64 ``(row0, col0, row1, col1)`` of every tile, row-major."""
        i = torch.arange(self.rows) * self.stride - self.pad
        j = torch.arange(self.cols) * self.stride - self.pad
        r0 = i[:, None].expand(self.rows, self.cols).reshape(-1)
        c0 = j[None, :].expand(self.rows, self.cols).reshape(-1)
        return torch.stack([r0, c0, r0 + self.kernel, c0 + self.kernel], -1)


def tile_grids(height: int, width: int, cfg: PyramidConfig) -> list[TileGrid]:
    """The :class:`TileGrid` of every level for an ``height x width`` image."""
    cfg.validate()
    grids = []
    for ratio in cfg.ratios():
        stride_ratio = float(np.interp(ratio, [0.05, 0.15], [1.0, cfg.stride_scaler]))
        k = max(int(height * ratio), 1)
        s = max(int(k * stride_ratio), 1)
        pad = k // 2
        rows = (height + 2 * pad - k) // s + 1
        cols = (width + 2 * pad - k) // s + 1
        grids.append(TileGrid(k, s, pad, rows, cols))
    return grids


def pad_grid(emb: Tensor) -> Tensor:
    """``[rows, cols, D]`` -> ``[rows + 1, cols + 1, D]`` with the last row and column repeated."""
    emb = torch.cat([emb, emb[-1:]], 0)
    return torch.cat([emb, emb[:, -1:]], 1)


def bilinear_lookup(grid: TileGrid, emb: Tensor, view: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Bilinear interpolation of a level's tile embeddings at pixels.

    Args:
        grid: the level's tiles.
        emb: ``[V, rows + 1, cols + 1, D]`` padded embeddings (see :func:`pad_grid`).
        view, rows, cols: ``[R]`` int64 view index (into ``emb``) and pixel coordinates.
    Returns:
        ``[R, D]`` (float32).
    """
    c0 = grid.centre0
    fr = (rows.to(torch.float32) - c0) / grid.stride
    fc = (cols.to(torch.float32) - c0) / grid.stride
    r0 = fr.floor().clamp(0, grid.rows - 1).long()
    q0 = fc.floor().clamp(0, grid.cols - 1).long()
    wr = (fr - r0).clamp(0, 1)[:, None]
    wc = (fc - q0).clamp(0, 1)[:, None]

    def at(r: Tensor, c: Tensor) -> Tensor:
        return emb[view, r, c].to(torch.float32)

    top = torch.lerp(at(r0, q0), at(r0 + 1, q0), wr)
    bottom = torch.lerp(at(r0, q0 + 1), at(r0 + 1, q0 + 1), wr)
    return torch.lerp(top, bottom, wc)


def random_scale_targets(
    grids: list[TileGrid], levels: list[Tensor], view: Tensor, rows: Tensor, cols: Tensor,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """LERF's training targets: a random pair of adjacent levels and a random weight per ray.

    Args:
        grids: the :class:`TileGrid` per level (n levels).
        levels: per level ``[V, rows + 1, cols + 1, D]`` padded embeddings.
        view, rows, cols: ``[R]`` int64.
    Returns:
        the lerped embeddings ``[R, D]`` (not renormalized) and the normalized
        scale ``s = (b + w) / (n - 1)`` in [0, 1) ``[R]``.
    """
    n, R = len(grids), view.shape[0]
    b = torch.randint(0, n - 1, (R,), generator=generator)
    w = torch.rand(R, generator=generator)
    D = levels[0].shape[-1]
    lo = torch.empty(R, D)
    hi = torch.empty(R, D)
    for lv in range(n):
        for dst, sel in ((lo, b == lv), (hi, b + 1 == lv)):
            if sel.any():
                dst[sel] = bilinear_lookup(grids[lv], levels[lv], view[sel], rows[sel], cols[sel])
    return torch.lerp(lo, hi, w[:, None]), (b.to(torch.float32) + w) / (n - 1)


def dino_lookup(maps: Tensor, view: Tensor, rows: Tensor, cols: Tensor, height: int, width: int) -> Tensor:
    """Nearest (floor) lookup of DINO maps ``[V, h, w, E]`` at pixels of an ``height x width`` image: ``[R, E]``."""
    h, w = maps.shape[1], maps.shape[2]
    r = (rows.to(torch.float64) * h / height).long().clamp(0, h - 1)
    c = (cols.to(torch.float64) * w / width).long().clamp(0, w - 1)
    return maps[view, r, c].to(torch.float32)
