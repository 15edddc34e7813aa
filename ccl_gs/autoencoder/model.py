"""A LangSplat-style language autoencoder: ``D``-d CLIP features <-> a tiny latent.

LangSplat compresses every mask's CLIP feature to a 3-d latent with an MLP
autoencoder trained on the scene's own features, distils the latents into
3-d per-Gaussian features, and decodes rendered latents back to ``D``
dimensions at query time. Here the latent lives on the unit sphere (the
encoder output is normalized, as in LangSplat), and so does the decoder
output, which is what relevancy compares with text embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class AutoencoderConfig:
    """Shape and training of the language autoencoder (LangSplat's defaults where they apply)."""

    encoder_dims: list[int] = field(
        default_factory=lambda: [256, 128, 64, 32, 3],
        metadata={"help": "Encoder layer widths; the last is the latent size (LangSplat: 3)."},
    )
    decoder_dims: list[int] = field(
        default_factory=lambda: [16, 32, 64, 128, 256, 256],
        metadata={"help": "Decoder hidden widths; a last layer maps to the feature size D."},
    )
    iterations: int = field(default=3000, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=256, metadata={"help": "Mask features per step."})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate."})
    cos_weight: float = field(default=1e-3, metadata={"help": "Weight of 1 - cos next to the L2 loss (LangSplat: 1e-3)."})
    seed: int = field(default=0, metadata={"help": "Seed of init and batch sampling."})

    def __post_init__(self) -> None:
        if not self.encoder_dims or not self.decoder_dims:
            raise ValueError("--encoder-dims and --decoder-dims need at least one width each")
        if min(self.encoder_dims + self.decoder_dims) < 1:
            raise ValueError("layer widths must be >= 1")
        if self.iterations < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("--iterations must be >= 0, --batch-size >= 1 and --lr > 0")

    @property
    def latent_dim(self) -> int:
        return int(self.encoder_dims[-1])


def _mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers ``dims[0] -> ... -> dims[-1]`` with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        if i:
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Linear(dims[i], dims[i + 1]))
    return nn.Sequential(*layers)


class LanguageAutoencoder(nn.Module):
    """``[..., D]`` unit features -> ``[..., d]`` unit latents -> ``[..., D]`` unit features."""

    def __init__(self, cfg: AutoencoderConfig, feature_dim: int):
        super().__init__()
        self.cfg = cfg
        self.feature_dim = int(feature_dim)
        self.latent_dim = cfg.latent_dim
        self.encoder = _mlp([self.feature_dim, *cfg.encoder_dims])
        self.decoder = _mlp([self.latent_dim, *cfg.decoder_dims, self.feature_dim])

    def encode(self, x: Tensor) -> Tensor:
        """``[..., D] -> [..., d]`` unit-norm latents."""
        return F.normalize(self.encoder(x), dim=-1)

    def decode(self, z: Tensor) -> Tensor:
        """``[..., d] -> [..., D]`` unit-norm features (``z`` need not be unit norm: rendered latents are blends)."""
        return F.normalize(self.decoder(z), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def reconstruction_loss(recon: Tensor, target: Tensor, cos_weight: float) -> Tensor:
    """LangSplat's objective ``||x' - x||^2 + w (1 - cos(x', x))``, both ``[B, D]``, averaged over the batch."""
    l2 = ((recon - target) ** 2).sum(-1).mean()
    cos = (1.0 - F.cosine_similarity(recon, target, dim=-1)).mean()
    return l2 + cos_weight * cos
