"""The three fields of a LERF model.

* :class:`DensityField` - a proposal network: hash grid -> small MLP -> density
  (nerfacto's ``HashMLPDensityField``).
* :class:`NerfField` - the nerfacto field: hash grid -> MLP -> density and 15
  geometry features; SH-encoded view direction + those features -> MLP ->
  RGB. Both use the L-inf contraction; positions outside the box get zero
  density.
* :class:`LanguageField` - LERF's language field: its own hash grid(s) with 8
  features per level on L2-contracted, detached positions; the CLIP head
  takes ``[encoding, scale]`` and is L2-normalized per sample, the DINO head
  takes the encoding alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ccl_gs.lerf.encoding import HashEncoding, mlp, sh_directions, to_unit_cube, trunc_exp


@dataclass
class GridConfig:
    """One hash grid."""

    levels: int = 16
    min_res: int = 16
    max_res: int = 2048
    log2_table: int = 19
    features: int = 2

    def build(self) -> HashEncoding:
        return HashEncoding(self.levels, self.min_res, self.max_res, self.log2_table, self.features)


def _inside(unit: Tensor) -> Tensor:
    """``[..., 1]`` 1 where a contracted position lies in the unit cube, else 0."""
    return ((unit >= 0) & (unit <= 1)).all(-1, keepdim=True).to(unit.dtype)


class DensityField(nn.Module):
    """Proposal density: positions ``[..., 3]`` -> density ``[...]``."""

    def __init__(self, grid: GridConfig, hidden: int = 16) -> None:
        super().__init__()
        self.encoding = grid.build()
        self.net = mlp(self.encoding.out_dim, hidden, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        u = to_unit_cube(x, "inf")
        h = self.net(self.encoding(u.clamp(0, 1)))
        return (trunc_exp(h) * _inside(u))[..., 0]


class NerfField(nn.Module):
    """nerfacto's field: positions ``[..., 3]`` and unit directions ``[..., 3]`` -> density ``[...]``, RGB ``[..., 3]``."""

    def __init__(self, grid: GridConfig, hidden: int = 64, geo_features: int = 15, color_hidden: int = 64,
                 color_layers: int = 2) -> None:
        super().__init__()
        self.encoding = grid.build()
        self.geo_features = geo_features
        self.density_net = mlp(self.encoding.out_dim, hidden, 1, 1 + geo_features)
        self.color_net = mlp(16 + geo_features, color_hidden, color_layers, 3)

    def density(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Density ``[...]`` and geometry features ``[..., G]``."""
        u = to_unit_cube(x, "inf")
        h = self.density_net(self.encoding(u.clamp(0, 1)))
        sigma = trunc_exp(h[..., :1]) * _inside(u)
        return sigma[..., 0], h[..., 1:]

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        sigma, geo = self.density(x)
        rgb = torch.sigmoid(self.color_net(torch.cat([sh_directions(d), geo], -1)))
        return sigma, rgb


@dataclass
class LanguageFieldConfig:
    """LERF's language field (``lerf_field.py``); the published ``lerf`` preset by default."""

    grid_levels: list[int] = field(default_factory=lambda: [12, 12], metadata={"help": "Levels of each hash grid."})
    grid_min_res: list[int] = field(default_factory=lambda: [16, 128], metadata={"help": "Coarsest resolution of each grid."})
    grid_max_res: list[int] = field(default_factory=lambda: [128, 512], metadata={"help": "Finest resolution of each grid."})
    log2_table: int = field(default=19, metadata={"help": "log2 of the hash table size of each grid."})
    features: int = field(default=8, metadata={"help": "Features per level."})
    clip_hidden: int = field(default=256, metadata={"help": "Width of the CLIP head."})
    clip_layers: int = field(default=4, metadata={"help": "Hidden layers of the CLIP head."})
    dino_hidden: int = field(default=256, metadata={"help": "Width of the DINO head."})
    dino_layers: int = field(default=1, metadata={"help": "Hidden layers of the DINO head."})
    bias: bool = field(default=False, metadata={"help": "Linear layers with biases (tiny-cuda-nn's have none)."})


class LanguageField(nn.Module):
    """Positions ``[..., 3]`` (scene-normalized) -> encoding; encoding + scale -> unit CLIP ``[..., D]``; -> DINO ``[..., E]``."""

    def __init__(self, cfg: LanguageFieldConfig, clip_dim: int, dino_dim: int) -> None:
        super().__init__()
        if not (len(cfg.grid_levels) == len(cfg.grid_min_res) == len(cfg.grid_max_res)) or not cfg.grid_levels:
            raise ValueError("language field: grid_levels, grid_min_res and grid_max_res need one entry per grid")
        self.grids = nn.ModuleList(
            HashEncoding(lv, lo, hi, cfg.log2_table, cfg.features)
            for lv, lo, hi in zip(cfg.grid_levels, cfg.grid_min_res, cfg.grid_max_res)
        )
        self.enc_dim = sum(g.out_dim for g in self.grids)
        self.clip_net = mlp(self.enc_dim + 1, cfg.clip_hidden, cfg.clip_layers, clip_dim, bias=cfg.bias)
        self.dino_net = mlp(self.enc_dim, cfg.dino_hidden, cfg.dino_layers, dino_dim, bias=cfg.bias)
        self.clip_dim, self.dino_dim = clip_dim, dino_dim

    def encode(self, x: Tensor) -> Tensor:
        """Hash-grid features ``[..., enc_dim]`` of detached positions ``[..., 3]`` (L2 contraction)."""
        u = to_unit_cube(x.detach(), "l2").clamp(0, 1)
        return torch.cat([g(u) for g in self.grids], -1)

    def clip(self, enc: Tensor, scale: Tensor) -> Tensor:
        """Unit CLIP embedding ``[..., D]`` of encodings ``[..., enc_dim]`` at scales ``[...]``."""
        out = self.clip_net(torch.cat([enc, scale[..., None].to(enc)], -1))
        return F.normalize(out, dim=-1)

    def dino(self, enc: Tensor) -> Tensor:
        """DINO feature ``[..., E]`` (not normalized)."""
        return self.dino_net(enc)
