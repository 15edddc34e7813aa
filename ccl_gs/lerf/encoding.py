"""Building blocks of the NeRF fields: hash encoding, scene contraction, direction encoding.

* :class:`HashEncoding` - the multiresolution hash encoding of Instant-NGP
  in plain PyTorch (nerfstudio's pure-PyTorch encoding is the model): per
  level a table of ``T`` feature vectors, indexed by the XOR-hash of the 8
  cell corners (primes 1, 2654435761, 805459861) or, for coarse levels whose
  grid fits in the table, by the dense row-major corner index (as
  tiny-cuda-nn does); trilinear interpolation of the corner features.
* :func:`contract` - mip-NeRF 360's scene contraction (L2 ball of radius 2,
  used by the LERF field; or the L-inf box, used by nerfacto's fields).
* :func:`sh_directions` - real spherical harmonics of unit directions up to
  degree 3 (16 values; nerfacto's ``SH4`` direction encoding).
* :func:`trunc_exp` - ``exp`` whose gradient clamps the input at 15.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PRIMES = (1, 2654435761, 805459861)
"""Hash primes of Instant-NGP (x, y, z)."""


class HashEncoding(nn.Module):
    """Multiresolution hash encoding: positions ``[..., 3]`` in [0, 1] -> features ``[..., L * F]``.

    Args:
        levels: number of resolution levels ``L``.
        min_res: resolution of the coarsest level.
        max_res: resolution of the finest level; level ``l`` has resolution
            ``floor(min_res * growth ** l)`` with ``growth = exp((ln max - ln min) / (L - 1))``.
        log2_table: ``log2`` of the table size ``T`` per level.
        features: features per level ``F``.
        init_scale: tables start uniform in ``[-init_scale, init_scale]``.
        dense_coarse: index levels whose ``(res + 1) ** 3`` corners fit in the
            table densely (no hash collisions there), as tiny-cuda-nn does.
    """

    def __init__(
        self,
        levels: int = 16,
        min_res: int = 16,
        max_res: int = 1024,
        log2_table: int = 19,
        features: int = 2,
        init_scale: float = 1e-3,
        dense_coarse: bool = True,
    ) -> None:
        super().__init__()
        if levels < 1 or features < 1 or min_res < 1 or max_res < min_res:
            raise ValueError(f"bad hash encoding sizes: levels={levels} features={features} res={min_res}..{max_res}")
        self.levels, self.features, self.table_size = int(levels), int(features), 2 ** int(log2_table)
        growth = math.exp((math.log(max_res) - math.log(min_res)) / (levels - 1)) if levels > 1 else 1.0
        res = torch.tensor([math.floor(min_res * growth**lv) for lv in range(levels)], dtype=torch.int64)
        dense = ((res + 1) ** 3 <= self.table_size) & torch.tensor(bool(dense_coarse))
        self.register_buffer("resolutions", res, persistent=False)  # [L]
        self.register_buffer("dense", dense, persistent=False)  # [L] bool
        self.register_buffer("offsets", torch.arange(levels, dtype=torch.int64) * self.table_size, persistent=False)
        self.table = nn.Parameter((torch.rand(levels * self.table_size, features) * 2 - 1) * init_scale)
        primes32 = torch.tensor([p - 2**32 if p >= 2**31 else p for p in PRIMES], dtype=torch.int32)
        self.register_buffer("primes32", primes32, persistent=False)  # [3], the primes' low 32 bits
        self.register_buffer("offsets32", self.offsets.to(torch.int32), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.levels * self.features

    def corner_index(self, cell: Tensor) -> Tensor:
        """Table row of integer grid corners ``[..., L, 3]`` -> ``[..., L]`` (level offsets included).

        The slow, obvious form of the index :meth:`forward` computes per axis.
        """
        res1 = self.resolutions + 1  # [L]
        dense_idx = cell[..., 0] + cell[..., 1] * res1 + cell[..., 2] * res1 * res1
        hashed = (cell[..., 0] * PRIMES[0]) ^ (cell[..., 1] * PRIMES[1]) ^ (cell[..., 2] * PRIMES[2])
        return torch.where(self.dense, dense_idx, hashed) % self.table_size + self.offsets

    def forward(self, x: Tensor) -> Tensor:  # [..., 3] in [0, 1] -> [..., L * F]
        lead = x.shape[:-1]
        x = x.reshape(-1, 3)
        N, L = x.shape[0], self.levels
        scaled = x[:, None, :] * self.resolutions.to(x.dtype).view(1, -1, 1)  # [N, L, 3]
        base = torch.floor(scaled)
        frac = scaled - base  # [N, L, 3]
        lo = base.to(torch.int32)
        # Per axis the (low, high) corner coordinate and its trilinear weight: [N, L, 3, 2]. Indices are
        # int32 with wrap-around products: the table size is a power of two, so the low bits - all that
        # the index keeps - equal those of the exact (int64) hash.
        ax = torch.stack([lo, lo + 1], -1)
        wa = torch.stack([1 - frac, frac], -1)
        res1 = (self.resolutions + 1).to(torch.int32).view(1, -1, 1)
        dense_terms = ax * torch.stack([torch.ones_like(res1), res1, res1 * res1], 2)  # [N, L, 3, 2]
        hash_terms = ax * self.primes32.view(1, 1, 3, 1)
        dense_idx = (dense_terms[:, :, 0, :, None, None] + dense_terms[:, :, 1, None, :, None]
                     + dense_terms[:, :, 2, None, None, :])  # [N, L, 2, 2, 2]
        hashed = (hash_terms[:, :, 0, :, None, None] ^ hash_terms[:, :, 1, None, :, None]
                  ^ hash_terms[:, :, 2, None, None, :])
        idx = torch.where(self.dense.view(1, -1, 1, 1, 1), dense_idx, hashed) & (self.table_size - 1)
        idx = (idx + self.offsets32.view(1, -1, 1, 1, 1)).reshape(N * L, 8).long()
        w = (wa[:, :, 0, :, None, None] * wa[:, :, 1, None, :, None] * wa[:, :, 2, None, None, :]).reshape(N * L, 8)
        out = _weighted_gather(self.table, idx, w.detach())  # [N * L, F]
        return out.view(*lead, self.out_dim)


class _WeightedGather(torch.autograd.Function):
    """``out[m] = sum_c w[m, c] table[idx[m, c]]``; the backward scatters with ``index_add_`` (no sort)."""

    @staticmethod
    def forward(ctx, table, idx, w):  # type: ignore[override]
        rows = table.index_select(0, idx.reshape(-1)).view(*idx.shape, table.shape[1])  # [M, C, F]
        ctx.save_for_backward(idx, w)
        ctx.table_shape = table.shape
        return torch.bmm(w[:, None, :], rows)[:, 0]

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        idx, w = ctx.saved_tensors
        grad_rows = (w[..., None] * g[:, None, :]).reshape(-1, g.shape[1])
        grad = g.new_zeros(ctx.table_shape).index_add_(0, idx.reshape(-1), grad_rows)
        return grad, None, None


def _weighted_gather(table: Tensor, idx: Tensor, w: Tensor) -> Tensor:
    """Rows of ``table [T, F]`` at ``idx [M, C]`` weighted by ``w [M, C]`` and summed: ``[M, F]``."""
    return _WeightedGather.apply(table, idx, w)


def contract(x: Tensor, order: str = "l2") -> Tensor:
    """mip-NeRF 360 contraction ``[..., 3] -> [..., 3]``: identity inside the unit ball, ``(2 - 1/|x|) x/|x|`` outside.

    ``order="l2"`` uses the Euclidean norm (radius-2 ball; the LERF field),
    ``"inf"`` the max norm (the box ``[-2, 2]^3``; nerfacto's fields).
    """
    if order == "l2":
        mag = x.norm(dim=-1, keepdim=True)
    elif order == "inf":
        mag = x.abs().amax(dim=-1, keepdim=True)
    else:
        raise ValueError(f"contraction order must be 'l2' or 'inf', got {order!r}")
    safe = mag.clamp_min(1e-12)
    return torch.where(mag < 1, x, (2 - 1 / safe) * (x / safe))


def to_unit_cube(x: Tensor, order: str = "l2") -> Tensor:
    """World positions (scene-normalized) ``[..., 3]`` -> contracted and mapped to ``[0, 1]^3``: ``(contract(x) + 2) / 4``."""
    return (contract(x, order) + 2.0) / 4.0


def sh_directions(d: Tensor) -> Tensor:
    """Real spherical harmonics up to degree 3 of unit directions ``[..., 3]`` -> ``[..., 16]``."""
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    xx, yy, zz = x * x, y * y, z * z
    return torch.stack(
        [
            torch.full_like(x, 0.28209479177387814),
            -0.48860251190291987 * y,
            0.48860251190291987 * z,
            -0.48860251190291987 * x,
            1.0925484305920792 * x * y,
            -1.0925484305920792 * y * z,
            0.94617469575755997 * zz - 0.31539156525252005,
            -1.0925484305920792 * x * z,
            0.54627421529603959 * (xx - yy),
            0.59004358992664352 * y * (-3.0 * xx + yy),
            2.8906114426405538 * x * y * z,
            0.45704579946446572 * y * (1.0 - 5.0 * zz),
            0.3731763325901154 * z * (5.0 * zz - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * zz),
            1.4453057213202769 * z * (xx - yy),
            0.59004358992664352 * x * (-xx + 3.0 * yy),
        ],
        dim=-1,
    )


class _TruncExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(max=15))


def trunc_exp(x: Tensor) -> Tensor:
    """``exp(x)`` with the gradient computed at ``min(x, 15)`` (nerfacto's density activation)."""
    return _TruncExp.apply(x)


def mlp(in_dim: int, hidden: int, hidden_layers: int, out_dim: int, bias: bool = True) -> nn.Sequential:
    """``hidden_layers`` ReLU layers of width ``hidden``, then a linear output layer."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(hidden_layers):
        layers += [nn.Linear(d, hidden, bias=bias), nn.ReLU(inplace=True)]
        d = hidden
    layers.append(nn.Linear(d, out_dim, bias=bias))
    return nn.Sequential(*layers)
