"""The 3D-OVS field on Gaussians: a small per-Gaussian feature decoded (affinely) to CLIP space, and a scale selection.

The release (TensoRF) computes a point's CLIP feature as a purely linear MLP
``27 -> 128 -> 128 -> 512`` of its 27-d appearance feature, i.e. an affine
map, and renders ``F = sum_i w_i (A a_i + b)``. Here every Gaussian carries
its own ``d``-d feature ``a_i`` (``--model.feature-dim``); because the map is
affine, rasterizing ``a`` and decoding once per pixel is exact:
``F = A (sum_i w_i a_i) + b * alpha`` with ``alpha = sum_i w_i``
(:meth:`AffineDecoder.forward`), so only ``d`` channels are rasterized.

Scale selection (``tensoRF.py: render_feature_map``): three logits ``s_i`` per
Gaussian; the release composites ``sigmoid(s_i)`` and softmaxes the sum over
the three scales (``selection = "sigmoid"``: values in ``[0, alpha]``, so the
selection is never sharper than ``e / (e + 2)``); ``"logits"`` composites the
raw logits instead (the fix: can become one-hot). ``fixed_scale = k`` replaces
the selection by scale ``k`` (the paper's "without selection" ablation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

N_SCALES = 3
SELECTIONS = ("sigmoid", "logits")


@dataclass
class WeaksegModelConfig:
    """Shape of the per-Gaussian language of the 3D-OVS field."""

    feature_dim: int = field(default=27, metadata={"help": "d, the per-Gaussian feature size (the release's appearance feature: 27)."})
    hidden: list[int] = field(default_factory=lambda: [128, 128], metadata={"help": "Widths of the linear decoder's hidden layers (no nonlinearity, as the release)."})
    selection: str = field(default="sigmoid", metadata={"help": "Scale selection: sigmoid (the release: softmax of composited sigmoids) | logits (softmax of composited logits)."})
    fixed_scale: int = field(default=-1, metadata={"help": "-1: learned selection; 0 / 1 / 2: always this scale (large, medium, small)."})
    init_std: float = field(default=0.1, metadata={"help": "Std of the initial features and selection logits (the release: 0.1 for the selection volume)."})

    def validate(self) -> None:
        if self.feature_dim < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(f"--model.feature-dim and --model.hidden must be >= 1, got {self.feature_dim}, {self.hidden}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"--model.selection must be one of {SELECTIONS}, got '{self.selection}'")
        if not -1 <= self.fixed_scale < N_SCALES:
            raise ValueError(f"--model.fixed-scale must be -1 or 0..{N_SCALES - 1}, got {self.fixed_scale}")


class AffineDecoder(nn.Module):
    """A stack of linear layers without nonlinearity: ``[..., d]`` (+ coverage ``[..., 1]``) -> ``[..., D]``."""

    def __init__(self, feature_dim: int, hidden: list[int], out_dim: int):
        super().__init__()
        dims = [feature_dim, *hidden, out_dim]
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, feature: Tensor, alpha: Tensor | float = 1.0) -> Tensor:
        """Decode composited features ``[..., d]`` with accumulated opacity ``alpha [..., 1]``: ``[..., D]``.

        Equals compositing the decoded per-Gaussian features (each bias is weighted by ``alpha``).
        """
        x = feature
        for layer in self.layers:
            x = F.linear(x, layer.weight) + layer.bias * alpha
        return x


class WeaksegHead(nn.Module):
    """The decoder and the selection rule; the per-Gaussian parameters live with the Gaussians.

    Per-Gaussian raw parameters: ``features [N, d]`` and ``selection [N, 3]``.
    """

    def __init__(self, cfg: WeaksegModelConfig, clip_dim: int):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.clip_dim = int(clip_dim)
        self.decoder = AffineDecoder(cfg.feature_dim, list(cfg.hidden), self.clip_dim)

    @property
    def channels(self) -> int:
        """Rasterized channels: ``d`` feature + 3 selection."""
        return self.cfg.feature_dim + N_SCALES

    def gaussian_channels(self, features: Tensor, selection: Tensor) -> Tensor:
        """What each Gaussian contributes: ``[N, d]``, ``[N, 3]`` -> ``[N, d + 3]`` (the selection activated)."""
        s = torch.sigmoid(selection) if self.cfg.selection == "sigmoid" else selection
        return torch.cat([features, s], -1)

    def split(self, rendered: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """Rendered channels ``[..., d + 3]`` and opacity ``[..., 1]`` -> feature ``[..., D]``, selection ``[..., 3]``."""
        d = self.cfg.feature_dim
        return self.decoder(rendered[..., :d], alpha), self.select(rendered[..., d:])

    def select(self, composited: Tensor) -> Tensor:
        """Composited selection values ``[..., 3]`` -> scale weights ``[..., 3]`` (rows sum to 1)."""
        if self.cfg.fixed_scale >= 0:
            return F.one_hot(torch.full(composited.shape[:-1], self.cfg.fixed_scale, dtype=torch.long,
                                        device=composited.device), N_SCALES).to(composited.dtype)
        return torch.softmax(composited, -1)

    def embed(self, features: Tensor) -> Tensor:
        """Each Gaussian's own CLIP-space feature (opacity 1): ``[N, d]`` -> ``[N, D]``."""
        return self.decoder(features, 1.0)

    def get_state(self) -> dict[str, Any]:
        from ccl_gs.config import to_dict

        return {"model_config": to_dict(self.cfg), "clip_dim": self.clip_dim, "weights": self.state_dict()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "WeaksegHead":
        from ccl_gs.config import from_dict

        head = cls(from_dict(WeaksegModelConfig, state["model_config"]), state["clip_dim"])
        head.load_state_dict(state["weights"])
        return head


def render_channels(params, head: WeaksegHead, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                    backend: str | None = None, raster=None) -> tuple[Tensor, Tensor]:
    """Rasterize the language channels of Gaussians (raw parameters) in ``C`` cameras.

    Args:
        params: ``means``, ``quats``, ``scales`` (log), ``opacities`` (logits), ``features [N, d]``, ``selection [N, 3]``.
        viewmats: ``[C, 4, 4]``; Ks: ``[C, 3, 3]``.
    Returns:
        feature ``[C, H, W, D]`` (CLIP space, not normalized) and selection ``[C, H, W, 3]``.
    """
    from ccl_gs.splat.rasterize import raster_kwargs, rasterize

    colors, alphas, _ = rasterize(
        params["means"], F.normalize(params["quats"], dim=-1), torch.exp(params["scales"]),
        torch.sigmoid(params["opacities"]), head.gaussian_channels(params["features"], params["selection"]),
        viewmats, Ks, int(width), int(height), backend=backend, **raster_kwargs(raster),
    )
    return head.split(colors, alphas)


def scaled_intrinsics(K: Tensor, sx: float, sy: float, col0: float = 0.0, row0: float = 0.0) -> Tensor:
    """Intrinsics of the image resampled by ``(sx, sy)`` and cropped at ``(row0, col0)`` of the new grid.

    Pixel centres at ``i + 0.5`` (gsplat's convention), so scaling ``K`` is exact. ``K [3, 3]`` -> ``[3, 3]``.
    """
    out = K.clone().to(torch.float32)
    out[0] *= sx
    out[1] *= sy
    out[0, 2] -= col0
    out[1, 2] -= row0
    return out
