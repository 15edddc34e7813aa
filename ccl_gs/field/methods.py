"""Stage-3 methods: how the per-Gaussian feature is supervised and turned into language.

A method is two pieces, registered by name in :data:`FIELD_METHODS`:

* a **supervision** (:class:`Supervision`): reads the method's stage-2
  artifact, gives each training view its targets and builds the head;
* a **head** (:class:`LanguageHead`, an ``nn.Module``): the loss of rendered
  features against those targets, and the language of any set of features
  (rendered pixels or the Gaussians' own) as scores against text queries.
  It is saved inside ``field.pt`` and restored by name at query time.

Methods (the stage-2 artifact ``--supervision`` points to picks one by its
manifest kind, see :data:`METHOD_OF_KIND`):

``codebook`` (CCL-LGS; artifact: a codebook)
    ``d_f``-d feature -> MLP -> per level ``N_l + 1`` logits (the last =
    "no mask"); cross-entropy against the prototype index maps; the language
    of a pixel is its argmax prototype.
``raw`` (baseline; artifact: the preprocess folder itself)
    ``d_f``-d feature -> MLP -> per level a ``D``-d embedding, regressed with
    ``1 - cos`` onto the CLIP feature of the mask covering the pixel (no
    codebook, no compression other than the MLP).
``autoencoder`` (LangSplat-style baseline; artifact: a language autoencoder)
    a 3-d feature per level (plus a coverage logit: ``4 L`` values), regressed
    with L1 onto the autoencoder latent of the covering mask's feature and
    decoded by the autoencoder's decoder at query time.

Pixels that no mask covers: the codebook head learns them as "no mask" (and
they score ``fill``); the two baselines regress their embedding on covered
pixels only, as LangSplat does, and learn coverage with one more logit per
level, so that uncovered pixels score ``fill`` in every method. The fit measure in the metrics is the label accuracy (codebook) or
the mean cosine of the decoded embedding with the covering mask's feature
(both baselines, so the two are comparable).

``--decoder.*`` shapes the codebook and raw heads; the autoencoder head has
no decoder of its own (its feature is the latent and coverage, ``4 L`` values).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ccl_gs.field.model import NO_MASK, DecoderConfig, FeatureDecoder, semantic_loss
from ccl_gs.io.artifacts import ArtifactError, Manifest, load_npz
from ccl_gs.masks.types import LEVELS

ScoreFn = Callable[[Tensor], Tensor]
"""Embeddings ``[K, D]`` -> scores ``[K, Q]`` (a relevancy or a cosine against the queries)."""


def resize_index(index: Tensor, height: int, width: int) -> Tensor:
    """Nearest-neighbour resize of index maps ``[L, h, w]`` -> ``[L, H, W]`` int64."""
    index = index.long()
    if index.shape[-2:] == (height, width):
        return index
    return F.interpolate(index[None].float(), size=(height, width), mode="nearest")[0].long()


def _mlp_trunk(cfg: DecoderConfig) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    d = cfg.feature_dim
    for _ in range(cfg.layers):
        layers += [nn.Linear(d, cfg.hidden), nn.ReLU(inplace=True)]
        d = cfg.hidden
    return nn.Sequential(*layers), d


# ------------------------------------------------------------------ heads
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


# ------------------------------------------------------------ supervisions
class Supervision:
    """A method's stage-2 artifact as training targets."""

    method: ClassVar[str]
    manifest: Manifest
    encoder_spec: dict[str, Any]
    stems: list[str]

    def target(self, stem: str, height: int, width: int, device: torch.device) -> dict[str, Tensor]:
        """Targets of one view at the render size (``index [L, H, W]`` int64, -1 = no mask, and more)."""
        raise NotImplementedError

    def make_head(self, decoder: DecoderConfig) -> LanguageHead:
        raise NotImplementedError


def _require(maps: dict, stem: str, what: str) -> Any:
    if stem not in maps:
        raise ArtifactError(f"{what} has no entry for image '{stem}'")
    return maps[stem]


class CodebookSupervision(Supervision):
    """Prototype index maps and the codebook of a codebook artifact (``python -m ccl_gs.codebook``)."""

    method = "codebook"

    def __init__(self, folder: Path):
        from ccl_gs.codebook.train import load_codebook

        res = load_codebook(folder)  # validates kind, version and completeness
        self.manifest = res.manifest
        self.encoder_spec = dict(res.manifest.extra.get("encoder", {}))
        self.prototypes = [p.float() for p in res.prototypes]
        self.maps = {f.stem: load_npz(f, keys=("proto_maps",))["proto_maps"]
                     for f in sorted(Path(folder).glob("*.npz")) if f.name != "codebook.npz"}
        self.stems = sorted(self.maps)

    def target(self, stem, height, width, device):
        m = torch.as_tensor(_require(self.maps, stem, "the codebook artifact").astype(np.int64))
        return {"index": resize_index(m, height, width).to(device)}

    def make_head(self, decoder: DecoderConfig) -> CodebookHead:
        return CodebookHead(decoder, self.prototypes)


class MaskFeatureSupervision(Supervision):
    """Per pixel, the (transformed) feature of the mask covering it, from a preprocess artifact.

    Targets: ``index [L, H, W]`` (row of the view's table, -1 = no mask),
    ``table [M, D']`` (the view's mask features through :meth:`transform`: the
    training targets) and ``features [M, D]`` (the unit features themselves).
    """

    def __init__(self, preprocessed):
        self.pre = preprocessed
        self.encoder_spec = dict(preprocessed.encoder)
        self.stems = list(preprocessed.stems)
        self._cache: dict[str, tuple[Tensor, Tensor]] = {}

    def transform(self, features: Tensor) -> Tensor:
        return features

    def target(self, stem, height, width, device):
        if stem not in self._cache:
            if stem not in self.stems:
                raise ArtifactError(f"preprocess artifact {self.pre.folder} has no image '{stem}'")
            z = self.pre.read_image(self.stems.index(stem))
            feats = F.normalize(torch.from_numpy(z["features"].astype(np.float32)), dim=-1)
            with torch.no_grad():
                table = self.transform(feats)
            self._cache[stem] = (torch.from_numpy(z["index_maps"].astype(np.int32)), table, feats)
        index, table, feats = self._cache[stem]
        return {"index": resize_index(index, height, width).to(device), "table": table.to(device),
                "features": feats.to(device)}


class RawSupervision(MaskFeatureSupervision):
    """The raw-feature baseline reads the preprocess artifact directly."""

    method = "raw"

    def __init__(self, folder: Path):
        from ccl_gs.codebook.data import load_preprocessed

        pre = load_preprocessed(folder)
        super().__init__(pre)
        self.manifest = pre.manifest

    def make_head(self, decoder: DecoderConfig) -> RawHead:
        return RawHead(decoder, self.pre.dim, len(LEVELS))


class AutoencoderSupervision(MaskFeatureSupervision):
    """The autoencoder baseline: latents of the mask features, from an autoencoder artifact and its preprocess."""

    method = "autoencoder"

    def __init__(self, folder: Path):
        from ccl_gs.autoencoder import load_autoencoder
        from ccl_gs.codebook.data import load_preprocessed

        man = Manifest.load(folder, kind="autoencoder")
        if not man.extra.get("preprocessed"):
            raise ArtifactError(f"{Path(folder) / 'manifest.json'} does not record its preprocess folder")
        pre_dir = Path(man.extra["preprocessed"])
        if not (pre_dir / "manifest.json").is_file():
            raise ArtifactError(f"autoencoder {folder} was fitted to {pre_dir}, which no longer exists")
        pre = load_preprocessed(pre_dir)
        self.art = load_autoencoder(folder, pre)  # refuses a stale autoencoder
        super().__init__(pre)
        self.manifest = self.art.manifest

    def transform(self, features: Tensor) -> Tensor:
        return self.art.model.encode(features)

    def make_head(self, decoder: DecoderConfig) -> AutoencoderHead:
        import copy

        return AutoencoderHead(copy.deepcopy(self.art.model), len(LEVELS))


@dataclass(frozen=True)
class FieldMethod:
    """A registered stage-3 method."""

    name: str
    artifact_kind: str
    """Manifest kind of the stage-2 artifact it is trained from."""
    supervision: Callable[[Path], Supervision]
    head: type[LanguageHead]


FIELD_METHODS: dict[str, FieldMethod] = {
    "codebook": FieldMethod("codebook", "codebook", CodebookSupervision, CodebookHead),
    "raw": FieldMethod("raw", "preprocess", RawSupervision, RawHead),
    "autoencoder": FieldMethod("autoencoder", "autoencoder", AutoencoderSupervision, AutoencoderHead),
}
"""Stage-3 methods by name."""

METHOD_OF_KIND: dict[str, str] = {m.artifact_kind: m.name for m in FIELD_METHODS.values()}
"""Stage-2 artifact kind -> the method trained from it."""


def method_of(folder: Path) -> FieldMethod:
    """The method a stage-2 artifact folder supervises (by its manifest kind)."""
    man = Manifest.load(folder)
    if man.kind not in METHOD_OF_KIND:
        raise ArtifactError(
            f"{Path(folder) / 'manifest.json'} is a '{man.kind}' artifact; --supervision takes a codebook, "
            "an autoencoder or a preprocess folder"
        )
    return FIELD_METHODS[METHOD_OF_KIND[man.kind]]


__all__ = [
    "FIELD_METHODS", "METHOD_OF_KIND", "NO_MASK", "AutoencoderHead", "CodebookHead", "EmbeddingHead",
    "FieldMethod", "LanguageHead", "RawHead", "Supervision", "method_of", "resize_index",
]
