"""The LERF model: nerfacto geometry with proposal sampling, and the language field on top.

One forward pass over a batch of rays (``kerrj/lerf`` ``lerf.py``):

1. proposal sampling: uniform-in-s bins -> proposal net -> importance
   resampling (annealed weights), once per proposal net; then the NeRF
   samples and their weights;
2. RGB by alpha compositing (background: the last sample's colour, or the
   scene's white background);
3. the ``k`` samples of largest weight per ray (weights detached, not
   renormalized) go through the language field at the physical scale
   ``s * H * t_mid / fy`` of the ray's pyramid scale ``s``; CLIP is
   normalized after the weighted sum, DINO is the plain weighted sum.

Losses: MSE on RGB, the interlevel and distortion losses, ``0.1 x`` Huber
(delta 1.25) on CLIP summed over dimensions, MSE on DINO summed over
dimensions (both ``nanmean`` over rays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ccl_gs.lerf.fields import DensityField, GridConfig, LanguageField, LanguageFieldConfig, NerfField
from ccl_gs.lerf.sampling import (
    RaySamples,
    distortion_loss,
    interlevel_loss,
    pdf_bins,
    render_weights,
    uniform_lindisp_bins,
)


@dataclass
class NerfactoConfig:
    """Geometry (nerfacto defaults at nerfstudio 1.0.3)."""

    levels: int = field(default=16, metadata={"help": "Hash levels of the NeRF field."})
    max_res: int = field(default=2048, metadata={"help": "Finest hash resolution of the NeRF field."})
    log2_table: int = field(default=19, metadata={"help": "log2 hash table size of the NeRF field."})
    hidden: int = field(default=64, metadata={"help": "Width of the density MLP (one hidden layer)."})
    color_hidden: int = field(default=64, metadata={"help": "Width of the colour MLP."})
    color_layers: int = field(default=2, metadata={"help": "Hidden layers of the colour MLP."})
    proposal_samples: list[int] = field(default_factory=lambda: [256, 96], metadata={"help": "Samples per proposal level."})
    proposal_max_res: list[int] = field(default_factory=lambda: [128, 256], metadata={"help": "Finest resolution of each proposal net."})
    proposal_levels: int = field(default=5, metadata={"help": "Hash levels of each proposal net."})
    proposal_log2_table: int = field(default=17, metadata={"help": "log2 hash table size of each proposal net."})
    proposal_hidden: int = field(default=16, metadata={"help": "Width of each proposal net's MLP."})
    nerf_samples: int = field(default=48, metadata={"help": "NeRF samples per ray."})
    near: float = field(default=0.05, metadata={"help": "Near plane (scene-normalized units)."})
    far: float = field(default=1000.0, metadata={"help": "Far plane (scene-normalized units)."})
    proposal_update_every: int = field(default=5, metadata={"help": "Proposal nets train every n-th step, ramped from 1."})
    proposal_warmup: int = field(default=5000, metadata={"help": "Steps over which that interval ramps from 1."})
    anneal_steps: int = field(default=1000, metadata={"help": "Steps of the proposal weight annealing (slope 10)."})
    interlevel_weight: float = field(default=1.0, metadata={"help": "Weight of the interlevel loss."})
    distortion_weight: float = field(default=0.002, metadata={"help": "Weight of the distortion loss."})


@dataclass
class LerfModelConfig:
    """The whole model."""

    nerf: NerfactoConfig = field(default_factory=NerfactoConfig)
    language: LanguageFieldConfig = field(default_factory=LanguageFieldConfig)
    lerf_samples: int = field(default=24, metadata={"help": "Top-weight samples per ray fed to the language field."})
    clip_weight: float = field(default=0.1, metadata={"help": "Weight of the CLIP Huber loss (inside the dimension sum)."})
    huber_delta: float = field(default=1.25, metadata={"help": "Huber delta of the CLIP loss."})
    dino_weight: float = field(default=1.0, metadata={"help": "Weight of the DINO MSE loss."})


@dataclass
class RayBatch:
    """Rays of one batch with what the language field needs (all in scene-normalized units)."""

    origins: Tensor  # [R, 3]
    directions: Tensor  # [R, 3] unit
    scale_factor: Tensor  # [R] H / fy of the ray's camera: the physical scale is s * scale_factor * t


def _bias(x: float, b: float) -> float:
    return b * x / ((b - 1) * x + 1)


class LerfModel(nn.Module):
    """Proposal nets + nerfacto field + language field."""

    def __init__(self, cfg: LerfModelConfig, clip_dim: int, dino_dim: int, white_background: bool = False) -> None:
        super().__init__()
        n = cfg.nerf
        if len(n.proposal_samples) != len(n.proposal_max_res) or not n.proposal_samples:
            raise ValueError("nerf.proposal_samples and nerf.proposal_max_res need one entry per proposal net")
        if cfg.lerf_samples > n.nerf_samples:
            raise ValueError(f"lerf_samples ({cfg.lerf_samples}) exceeds nerf.nerf_samples ({n.nerf_samples})")
        self.cfg = cfg
        self.white_background = bool(white_background)
        self.proposals = nn.ModuleList(
            DensityField(GridConfig(n.proposal_levels, 16, r, n.proposal_log2_table, 2), n.proposal_hidden)
            for r in n.proposal_max_res
        )
        self.nerf = NerfField(GridConfig(n.levels, 16, n.max_res, n.log2_table, 2), n.hidden, 15, n.color_hidden,
                              n.color_layers)
        self.language = LanguageField(cfg.language, clip_dim, dino_dim)

    # ------------------------------------------------------------ geometry
    def sample(self, origins: Tensor, directions: Tensor, step: int | None) -> tuple[RaySamples, list[tuple[Tensor, Tensor]]]:
        """Proposal sampling; returns the NeRF samples and each proposal level's ``(sdist, weights)``.

        ``step`` is the training step (None at evaluation): it sets jitter,
        annealing and whether the proposal nets get gradients this step.
        """
        n = self.cfg.nerf
        training = step is not None
        R = origins.shape[0]
        sdist = uniform_lindisp_bins(R, n.proposal_samples[0], jitter=training, device=origins.device)
        anneal = _bias(min(step / max(n.anneal_steps, 1), 1.0), 10.0) if training else 1.0
        every = 1
        if training and n.proposal_update_every > 1:
            every = int(round(1 + (n.proposal_update_every - 1) * min(step / max(n.proposal_warmup, 1), 1.0)))
        update = training and step % every == 0
        history: list[tuple[Tensor, Tensor]] = []
        for i, prop in enumerate(self.proposals):
            rs = RaySamples(origins, directions, sdist, n.near, n.far)
            pos, _ = rs.midpoints()
            with torch.set_grad_enabled(update and torch.is_grad_enabled()):
                w = render_weights(prop(pos), rs.tdist)
            history.append((sdist, w))
            nxt = n.proposal_samples[i + 1] if i + 1 < len(self.proposals) else n.nerf_samples
            sdist = pdf_bins(sdist, w.detach() ** anneal, nxt, jitter=training)
        return RaySamples(origins, directions, sdist, n.near, n.far), history

    def forward(self, rays: RayBatch, step: int | None = None, language: bool = True) -> dict[str, Any]:
        """Render a batch of rays.

        Returns a dict with ``rgb [R, 3]``, ``accumulation [R]``, ``depth [R]``
        and, for training, what the losses need; with ``language``, the
        top-k samples' ``lerf_enc [R, k, enc_dim]``, ``lerf_weights [R, k]``
        (detached) and ``lerf_t [R, k]`` (their distances).
        """
        samples, history = self.sample(rays.origins, rays.directions, step)
        pos, t_mid = samples.midpoints()
        dirs = rays.directions[:, None, :].expand_as(pos)
        sigma, rgb = self.nerf(pos, dirs)
        w = render_weights(sigma, samples.tdist)  # [R, S]
        acc = w.sum(-1)
        color = (w[..., None] * rgb).sum(1)
        bg = torch.ones_like(color) if self.white_background else rgb[:, -1, :]
        color = color + (1 - acc[..., None]).clamp_min(0) * bg
        out: dict[str, Any] = {
            "rgb": color,
            "accumulation": acc,
            "depth": (w * t_mid).sum(-1) / acc.clamp_min(1e-10),
            "weights": w,
            "sdist": samples.sdist,
            "history": history,
        }
        if language:
            k = self.cfg.lerf_samples
            top_w, top_i = torch.topk(w.detach(), k, dim=-1, sorted=False)  # [R, k]
            top_pos = pos.detach().gather(1, top_i[..., None].expand(-1, -1, 3))
            out["lerf_weights"] = top_w
            out["lerf_t"] = t_mid.detach().gather(1, top_i)
            out["lerf_enc"] = self.language.encode(top_pos)  # [R, k, enc_dim]
        return out

    # ------------------------------------------------------------ language
    def render_clip(self, enc: Tensor, weights: Tensor, scale: Tensor) -> Tensor:
        """Rendered unit CLIP embedding ``[R, D]`` from top-k encodings ``[R, k, E]``, weights ``[R, k]`` and per-sample scales ``[R, k]``."""
        clip = self.language.clip(enc, scale)  # [R, k, D]
        return F.normalize((weights[..., None] * clip).sum(1), dim=-1)

    def render_dino(self, enc: Tensor, weights: Tensor) -> Tensor:
        """Rendered DINO feature ``[R, E]`` (plain weighted sum)."""
        return (weights[..., None] * self.language.dino(enc)).sum(1)

    def losses(self, out: dict[str, Any], rays: RayBatch, targets: dict[str, Tensor]) -> dict[str, Tensor]:
        """Loss terms of one batch; ``targets``: ``rgb [R, 3]``, ``clip [R, D]``, ``scale [R]`` (pyramid s in [0, 1)), ``dino [R, E]``."""
        n = self.cfg.nerf
        terms = {"rgb": F.mse_loss(out["rgb"], targets["rgb"])}
        terms["interlevel"] = n.interlevel_weight * interlevel_loss((out["sdist"], out["weights"]), out["history"])
        terms["distortion"] = n.distortion_weight * distortion_loss(out["sdist"], out["weights"])
        if "lerf_enc" in out:
            w = out["lerf_weights"]
            scale = targets["scale"][:, None] * rays.scale_factor[:, None] * out["lerf_t"]  # [R, k]: s * H * t / fy
            clip = self.render_clip(out["lerf_enc"], w, scale)
            huber = F.huber_loss(clip, targets["clip"].to(clip), delta=self.cfg.huber_delta, reduction="none")
            terms["clip"] = (self.cfg.clip_weight * huber).sum(-1).nanmean()
            dino = self.render_dino(out["lerf_enc"], w)
            terms["dino"] = self.cfg.dino_weight * ((dino - targets["dino"].to(dino)) ** 2).sum(-1).nanmean()
        return terms
