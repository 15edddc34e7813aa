"""The semantic head of the Gaussian field: a low-dimensional feature per
Gaussian, rasterized to pixels and decoded by a small MLP into codebook
logits.

CCL-LGS gives each Gaussian a ``d_f = 8`` feature. We keep **one** 8-d
feature per Gaussian and decode it with one MLP head per level (sp, wp):
both levels partition the same surface points, so the feature encodes
"which part of which object" and each head reads its own granularity off
it. This halves the rasterized channels compared with one feature per level.

Each head has one logit more than its codebook: the last one means "no mask
at this level" and is the target of pixels the index maps leave at -1 (the
sp level, made of subparts and parts, leaves the floor and walls uncovered).
Without it the field would decode such pixels into whatever prototype is
nearest and a query would light them up; with it, they decode to
:data:`NO_MASK` and carry no relevancy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class DecoderConfig:
    """Shape of the feature decoder."""

    feature_dim: int = field(default=8, metadata={"help": "d_f, the per-Gaussian language feature size."})
    hidden: int = field(default=64, metadata={"help": "Hidden width of the decoder MLP."})
    layers: int = field(default=2, metadata={"help": "Hidden layers of the decoder MLP."})


NO_MASK = -1
"""Decoded index of a pixel / Gaussian that no mask of the level covers."""


class FeatureDecoder(nn.Module):
    """``[..., d_f]`` features -> per level ``[..., N_l + 1]`` logits (the last = no mask)."""

    def __init__(self, cfg: DecoderConfig, n_prototypes: list[int]):
        super().__init__()
        self.cfg = cfg
        self.n_prototypes = list(n_prototypes)
        layers: list[nn.Module] = []
        d = cfg.feature_dim
        for _ in range(cfg.layers):
            layers += [nn.Linear(d, cfg.hidden), nn.ReLU(inplace=True)]
            d = cfg.hidden
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleList([nn.Linear(d, n + 1) for n in self.n_prototypes])

    @property
    def n_levels(self) -> int:
        return len(self.heads)

    def forward(self, features: Tensor) -> list[Tensor]:
        """Args: ``features [..., d_f]``. Returns: per level ``[..., N_l + 1]`` logits."""
        h = self.trunk(features)
        return [head(h) for head in self.heads]

    @torch.no_grad()
    def decode_indices(self, features: Tensor, chunk: int = 1 << 16) -> Tensor:
        """Argmax prototype per level: ``[..., d_f]`` -> ``[L, ...]`` int64, :data:`NO_MASK` for "no mask"."""
        flat = features.reshape(-1, features.shape[-1])
        outs = []
        for s in range(0, flat.shape[0], chunk):
            lvls = []
            for lv, lg in enumerate(self(flat[s : s + chunk])):
                i = lg.argmax(-1)
                lvls.append(torch.where(i == self.n_prototypes[lv], torch.full_like(i, NO_MASK), i))
            outs.append(torch.stack(lvls))
        idx = torch.cat(outs, 1) if outs else flat.new_zeros(self.n_levels, 0, dtype=torch.long)
        return idx.reshape(self.n_levels, *features.shape[:-1])


def semantic_loss(logits: list[Tensor], targets: Tensor) -> Tensor:
    """Cross-entropy per level against prototype index maps, summed over levels.

    Args:
        logits: per level ``[H, W, N_l + 1]``.
        targets: ``[L, H, W]`` int64, -1 = no mask (trained towards the last, "no mask", logit).
    Returns:
        scalar.
    """
    total = logits[0].new_zeros(())
    for lv, lg in enumerate(logits):
        n = lg.shape[-1] - 1
        t = targets[lv].reshape(-1)
        t = torch.where(t < 0, torch.full_like(t, n), t)
        total = total + nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), t)
    return total
