"""The heads of the methods: per-Gaussian features -> loss against a view's targets and language scores.

:class:`LanguageHead` and its three kinds, :class:`CodebookHead` (CCL-LGS),
:class:`RawHead` and :class:`AutoencoderHead` (the two :class:`EmbeddingHead`
baselines). See :mod:`ccl_gs.field.methods` for the methods.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ccl_gs.field.model import DecoderConfig, FeatureDecoder, semantic_loss
from ccl_gs.masks.types import LEVELS

ScoreFn = Callable[[Tensor], Tensor]
"""Embeddings ``[K, D]`` -> scores ``[K, Q]`` (a relevancy or a cosine against the queries)."""


def _mlp_trunk(cfg: DecoderConfig) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    d = cfg.feature_dim
    for _ in range(cfg.layers):
        layers += [nn.Linear(d, cfg.hidden), nn.ReLU(inplace=True)]
        d = cfg.hidden
    return nn.Sequential(*layers), d


class LanguageHead(nn.Module):
    """Per-Gaussian features ``[..., d_f]`` -> language at ``L`` levels."""

    method: ClassVar[str]
    fit_name: ClassVar[str]
    """Name of :meth:`fit`'s measure in the metrics (``label_accuracy`` or ``cosine``)."""
    feature_dim: int
    n_levels: int

    def loss(self, feats: Tensor, target: dict[str, Tensor]) -> Tensor:
        """Scalar loss of rendered features ``[H, W, d_f]`` against one view's targets."""
        raise NotImplementedError

    def fit(self, feats: Tensor, target: dict[str, Tensor]) -> tuple[float, int]:
        """``(sum, count)`` of the per-pixel fit measure of one view (accuracy or cosine)."""
        raise NotImplementedError

    def scores(self, feats: Tensor, fn: ScoreFn, fill: float) -> Tensor:
        """Scores of features ``[P, d_f]`` at every level: ``[L, P, Q]``.

        ``fn`` maps embeddings ``[K, D]`` to ``[K, Q]``; ``fill`` is the score
        of a feature the head decodes as "no mask" (codebook head only).
        """
        raise NotImplementedError

    def indices(self, feats: Tensor) -> Tensor | None:
        """Decoded prototype index per level ``[L, P]`` (codebook head), else None."""
        return None

    def ply_properties(self, feats: Tensor) -> dict[str, np.ndarray]:
        """Extra per-Gaussian PLY properties derived from the features ``[N, d_f]``."""
        idx = self.indices(feats)
        if idx is None:
            return {}
        return {f"proto_{LEVELS[lv] if lv < len(LEVELS) else lv}": idx[lv].cpu().numpy().astype(np.int32)
                for lv in range(idx.shape[0])}

    def get_state(self) -> dict[str, Any]:
        """Everything :meth:`from_state` needs (stored in ``field.pt``)."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "LanguageHead":
        raise NotImplementedError


class CodebookHead(LanguageHead):
    """CCL-LGS: decoder to codebook logits; the language of a pixel is its argmax prototype."""

    method = "codebook"
    fit_name = "label_accuracy"

    def __init__(self, cfg: DecoderConfig, prototypes: list[Tensor]):
        super().__init__()
        self.cfg = cfg
        self.decoder = FeatureDecoder(cfg, [int(p.shape[0]) for p in prototypes])
        for lv, p in enumerate(prototypes):  # buffers: they follow .to(device), they are not trained
            self.register_buffer(f"prototypes_{lv}", F.normalize(p.float(), dim=-1))
        self.feature_dim = cfg.feature_dim
        self.n_levels = len(prototypes)

    @property
    def prototypes(self) -> list[Tensor]:
        """Per level ``[N_l, D]`` unit prototypes."""
        return [getattr(self, f"prototypes_{lv}") for lv in range(self.n_levels)]

    def loss(self, feats: Tensor, target: dict[str, Tensor]) -> Tensor:
        return semantic_loss(self.decoder(feats), target["index"])

    @torch.no_grad()
    def fit(self, feats: Tensor, target: dict[str, Tensor]) -> tuple[float, int]:
        idx = self.decoder.decode_indices(feats)
        t = target["index"]
        return float((idx == t).sum()), int(t.numel())

    @torch.no_grad()
    def indices(self, feats: Tensor) -> Tensor:
        return self.decoder.decode_indices(feats)

    @torch.no_grad()
    def scores(self, feats: Tensor, fn: ScoreFn, fill: float) -> Tensor:
        idx = self.decoder.decode_indices(feats)  # [L, P], NO_MASK = -1 -> the fill row
        out = []
        for lv, p in enumerate(self.prototypes):
            table = fn(p)  # [N_l, Q]: one score per prototype, gathered per feature
            table = torch.cat([table, table.new_full((1, table.shape[1]), fill)])
            out.append(table[idx[lv]])
        return torch.stack(out)

    def get_state(self) -> dict[str, Any]:
        from ccl_gs.config import to_dict

        return {"decoder_config": to_dict(self.cfg), "decoder": self.decoder.state_dict(),
                "prototypes": [p.cpu() for p in self.prototypes]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "CodebookHead":
        head = cls(DecoderConfig(**state["decoder_config"]), state["prototypes"])
        head.decoder.load_state_dict(state["decoder"])
        return head


class EmbeddingHead(LanguageHead):
    """A head whose language is a ``D``-d embedding per feature, regressed on covered pixels only.

    Subclasses define :meth:`predict` (the training-space output of level
    ``lv``), :meth:`distance` (per-row loss between that and the target rows),
    :meth:`embed` (the unit ``D``-d embedding of level ``lv``) and
    :meth:`coverage_logit` (is a mask of level ``lv`` here?).

    Coverage: the embedding is regressed on covered pixels only (LangSplat's
    masked loss), and a coverage logit per level is trained on all pixels
    (binary cross-entropy: covered or not). Where it says "not covered" the
    feature scores ``fill``, as the codebook head's "no mask" logit does, so
    the methods differ in how they represent language, not in how they
    treat pixels no mask covers.
    """

    fit_name = "cosine"
    max_pixels: int = 4096

    def predict(self, feats: Tensor, lv: int) -> Tensor:
        raise NotImplementedError

    def distance(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def embed(self, feats: Tensor, lv: int) -> Tensor:
        raise NotImplementedError

    def coverage_logit(self, feats: Tensor, lv: int) -> Tensor:
        """``[P, d_f]`` -> ``[P]`` logit of "a mask of level ``lv`` covers this point"."""
        raise NotImplementedError

    def _coverage_loss(self, feats: Tensor, target: dict[str, Tensor], lv: int) -> Tensor:
        idx = target["index"][lv].reshape(-1)
        pix = torch.arange(idx.numel(), device=idx.device)
        if pix.numel() > self.max_pixels:
            pix = pix[torch.randperm(pix.numel(), device=pix.device)[: self.max_pixels]]
        logit = self.coverage_logit(feats.reshape(-1, feats.shape[-1])[pix], lv)
        return F.binary_cross_entropy_with_logits(logit, (idx[pix] >= 0).to(logit.dtype))

    def _covered(self, feats: Tensor, target: dict[str, Tensor], lv: int, limit: int | None, key: str = "table"):
        """Features of the covered pixels of level ``lv`` (at most ``limit``, random) and their target rows."""
        idx = target["index"][lv].reshape(-1)
        pix = torch.nonzero(idx >= 0).squeeze(1)
        if limit is not None and pix.numel() > limit:
            pix = pix[torch.randperm(pix.numel(), device=pix.device)[:limit]]
        return feats.reshape(-1, feats.shape[-1])[pix], target[key][idx[pix]]

    def loss(self, feats: Tensor, target: dict[str, Tensor]) -> Tensor:
        total = feats.sum() * 0.0  # a view no mask covers still gives a differentiable 0
        for lv in range(self.n_levels):
            total = total + self._coverage_loss(feats, target, lv)
            f, t = self._covered(feats, target, lv, self.max_pixels)
            if f.shape[0]:
                total = total + self.distance(self.predict(f, lv), t).mean()
        return total

    @torch.no_grad()
    def fit(self, feats: Tensor, target: dict[str, Tensor], chunk: int = 16384) -> tuple[float, int]:
        """Sum and count of ``cos(decoded embedding, mask feature)`` over covered pixels (both baselines alike)."""
        s, n = 0.0, 0
        for lv in range(self.n_levels):
            f, t = self._covered(feats, target, lv, None, key="features")
            for a in range(0, f.shape[0], chunk):
                s += float((self.embed(f[a : a + chunk], lv) * t[a : a + chunk]).sum())
            n += f.shape[0]
        return s, n

    @torch.no_grad()
    def scores(self, feats: Tensor, fn: ScoreFn, fill: float, chunk: int = 16384) -> Tensor:
        out = []
        for lv in range(self.n_levels):
            parts = []
            for s in range(0, max(feats.shape[0], 1), chunk):
                f = feats[s : s + chunk]
                sc = fn(self.embed(f, lv))  # [p, Q]
                covered = self.coverage_logit(f, lv) > 0
                parts.append(torch.where(covered[:, None], sc, sc.new_full((), fill)))
            out.append(torch.cat(parts))
        return torch.stack(out)


class RawHead(EmbeddingHead):
    """Raw-feature baseline: MLP from the ``d_f``-d feature to a ``D``-d embedding per level, ``1 - cos`` loss."""

    method = "raw"

    def __init__(self, cfg: DecoderConfig, dim: int, n_levels: int):
        super().__init__()
        self.cfg = cfg
        self.dim = int(dim)
        self.trunk, d = _mlp_trunk(cfg)
        self.heads = nn.ModuleList([nn.Linear(d, self.dim) for _ in range(n_levels)])
        self.cover = nn.ModuleList([nn.Linear(d, 1) for _ in range(n_levels)])
        self.feature_dim = cfg.feature_dim
        self.n_levels = n_levels

    def predict(self, feats: Tensor, lv: int) -> Tensor:
        return F.normalize(self.heads[lv](self.trunk(feats)), dim=-1)

    embed = predict

    def coverage_logit(self, feats: Tensor, lv: int) -> Tensor:
        return self.cover[lv](self.trunk(feats))[..., 0]

    def distance(self, pred: Tensor, target: Tensor) -> Tensor:
        return 1.0 - (pred * target).sum(-1)

    def get_state(self) -> dict[str, Any]:
        from ccl_gs.config import to_dict

        return {"decoder_config": to_dict(self.cfg), "dim": self.dim, "n_levels": self.n_levels,
                "weights": self.state_dict()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "RawHead":
        head = cls(DecoderConfig(**state["decoder_config"]), state["dim"], state["n_levels"])
        head.load_state_dict(state["weights"])
        return head


class AutoencoderHead(EmbeddingHead):
    """LangSplat-style baseline: the Gaussian feature *is* the latent (``d`` values per level), L1 loss.

    Per level the feature holds the ``d``-d latent and one coverage logit
    (``(d + 1) L`` values: 8 for 3-d latents and two levels).

    The autoencoder is frozen; it only encodes the targets (in the
    supervision) and decodes rendered latents to ``D`` dimensions.
    """

    method = "autoencoder"

    def __init__(self, autoencoder, n_levels: int):
        super().__init__()
        self.ae = autoencoder
        for p in self.ae.parameters():
            p.requires_grad_(False)
        self.latent = int(autoencoder.latent_dim)
        self.dim = int(autoencoder.feature_dim)
        self.n_levels = n_levels
        self.feature_dim = (self.latent + 1) * n_levels

    def predict(self, feats: Tensor, lv: int) -> Tensor:
        a = lv * (self.latent + 1)
        return feats[..., a : a + self.latent]

    def coverage_logit(self, feats: Tensor, lv: int) -> Tensor:
        return feats[..., (lv + 1) * (self.latent + 1) - 1]

    def distance(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs().sum(-1)

    def embed(self, feats: Tensor, lv: int) -> Tensor:
        return self.ae.decode(self.predict(feats, lv))

    def get_state(self) -> dict[str, Any]:
        from ccl_gs.config import to_dict

        return {"n_levels": self.n_levels, "feature_dim_in": self.dim, "ae_config": to_dict(self.ae.cfg),
                "ae": self.ae.state_dict()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "AutoencoderHead":
        from ccl_gs.autoencoder import AutoencoderConfig, LanguageAutoencoder
        from ccl_gs.config import from_dict

        ae = LanguageAutoencoder(from_dict(AutoencoderConfig, state["ae_config"]), state["feature_dim_in"])
        ae.load_state_dict(state["ae"])
        return cls(ae.eval(), state["n_levels"])
