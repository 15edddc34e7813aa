"""A trained language field and the questions it answers.

:class:`LanguageField` loads ``field.pt`` (stage 3) and answers text queries:

* per pixel of any view: render the 8-d features, decode the prototype
  index per level, look up its prototype embedding, and score it against the
  query embeddings with :func:`ccl_gs.query.relevancy` (the one relevancy
  implementation);
* per Gaussian: decode each Gaussian's own feature the same way - the basis
  of 3D selection and of the PLY export.

Because every pixel and Gaussian decodes to one of N prototypes, relevancy is
computed once per prototype (``[N, Q]``) and gathered, which keeps queries
cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from ccl_gs.field.model import DecoderConfig, FeatureDecoder
from ccl_gs.field.train import FIELD_VERSION, render_features
from ccl_gs.io.artifacts import ArtifactError
from ccl_gs.query import CANONICAL_PHRASES, DEFAULT_TEMPERATURE, relevancy


class QueryError(RuntimeError):
    """A query cannot be answered (no trained field, mismatched encoder, ...)."""


@dataclass
class QueryResult:
    """Relevancy of ``Q`` queries at ``L`` levels."""

    texts: list[str]
    values: Tensor
    """``[L, Q, ...]`` relevancy (pixels ``H, W`` or Gaussians ``N``)."""


class LanguageField:
    """Gaussians + decoder + codebook of a trained field; answers text queries."""

    def __init__(self, ckpt: dict[str, Any], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.params = {k: v.to(self.device) for k, v in ckpt["params"].items()}
        if "features" not in self.params:
            raise QueryError("the checkpoint has no language features: train the semantic field first")
        dec_cfg = DecoderConfig(**ckpt["decoder_config"])
        self.decoder = FeatureDecoder(dec_cfg, ckpt["n_prototypes"]).to(self.device)
        self.decoder.load_state_dict(ckpt["decoder"])
        self.decoder.eval()
        self.prototypes = [p.to(self.device) for p in ckpt["prototypes"]]
        self.encoder_spec: dict[str, Any] = dict(ckpt.get("encoder", {}))

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str = "cpu") -> "LanguageField":
        """Load ``<folder>/field.pt``; a missing file says to train first."""
        path = Path(folder) / "field.pt"
        if not path.is_file():
            raise QueryError(f"no trained language field at {path}: run the semantic field stage first")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise ArtifactError(f"corrupt field checkpoint {path}: {e}") from e
        if ckpt.get("format_version") != FIELD_VERSION or ckpt.get("kind") != "semantic_field":
            raise ArtifactError(f"{path} is not a semantic field checkpoint of version {FIELD_VERSION}")
        return cls(ckpt, device)

    @property
    def n_levels(self) -> int:
        return self.decoder.n_levels

    def check_encoder(self, encoder) -> None:
        """Refuse an encoder other than the one used in preprocessing."""
        want = self.encoder_spec.get("name")
        if want is not None and encoder.name != want:
            raise QueryError(
                f"query encoder '{encoder.name}' differs from the encoder used in preprocessing '{want}'"
            )

    def prototype_relevancy(
        self, query_emb: Tensor, kind: str = "canonical", canonical_emb: Tensor | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
    ) -> list[Tensor]:
        """Per level ``[N_l + 1, Q]`` relevancy of every prototype to the queries ``[Q, D]``.

        The last row (index :data:`NO_MASK` = -1 when gathering) is 0: a pixel or
        Gaussian that no mask of the level covers is relevant to nothing.
        """
        out = []
        for p in self.prototypes:
            r = relevancy(kind, p, query_emb.to(p), None if canonical_emb is None else canonical_emb.to(p), temperature)
            out.append(torch.cat([r, r.new_zeros(1, r.shape[1])]))
        return out

    @torch.no_grad()
    def pixel_prototypes(self, item: dict[str, Any]) -> Tensor:
        """Decoded prototype index per level for one view: ``[L, H, W]`` int64."""
        feats = render_features(self.params, item, self.device)
        return self.decoder.decode_indices(feats)

    @torch.no_grad()
    def gaussian_prototypes(self) -> Tensor:
        """Decoded prototype index per level of every Gaussian: ``[L, N]`` int64."""
        return self.decoder.decode_indices(self.params["features"])

    @torch.no_grad()
    def relevancy_maps(
        self, item: dict[str, Any], query_emb: Tensor, kind: str = "canonical",
        canonical_emb: Tensor | None = None, temperature: float = DEFAULT_TEMPERATURE,
    ) -> Tensor:
        """Relevancy of the queries in one view: ``[L, Q, H, W]``."""
        idx = self.pixel_prototypes(item)  # [L, H, W]
        table = self.prototype_relevancy(query_emb, kind, canonical_emb, temperature)
        return torch.stack([table[lv][idx[lv]].permute(2, 0, 1) for lv in range(self.n_levels)])

    @torch.no_grad()
    def cosine_maps(self, item: dict[str, Any], query_emb: Tensor) -> Tensor:
        """Cosine similarity of each pixel's decoded prototype with each query: ``[L, Q, H, W]``."""
        idx = self.pixel_prototypes(item)
        out = []
        for lv in range(self.n_levels):
            p = torch.nn.functional.normalize(self.prototypes[lv], dim=-1)
            table = p @ torch.nn.functional.normalize(query_emb.to(p), dim=-1).T  # [N_l, Q]
            table = torch.cat([table, table.new_full((1, table.shape[1]), -1.0)])  # "no mask": least similar
            out.append(table[idx[lv]].permute(2, 0, 1))
        return torch.stack(out)

    @torch.no_grad()
    def gaussian_relevancy(
        self, query_emb: Tensor, kind: str = "canonical", canonical_emb: Tensor | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
    ) -> Tensor:
        """Relevancy of every Gaussian to the queries: ``[L, Q, N]``."""
        idx = self.gaussian_prototypes()
        table = self.prototype_relevancy(query_emb, kind, canonical_emb, temperature)
        return torch.stack([table[lv][idx[lv]].T for lv in range(self.n_levels)])


def encode_queries(encoder, texts: Sequence[str], with_canonicals: bool = True) -> tuple[Tensor, Tensor | None]:
    """Text embeddings of the queries ``[Q, D]`` and of LERF's canonical phrases ``[P, D]``."""
    q = encoder.encode_text(list(texts))
    c = encoder.encode_text(list(CANONICAL_PHRASES)) if with_canonicals else None
    return q, c


def normalized_relevancy(rel: Tensor) -> Tensor:
    """The LERF-OVS mask mapping of a relevancy map or set: min-max normalized, ``x * 2 - 1``, clipped to [0, 1].

    Args:
        rel: ``[...]`` relevancy of one query at one level.
    Returns:
        same shape, in [0, 1]; compare with a threshold (LERF-OVS uses 0.4).
    """
    lo, hi = rel.min(), rel.max()
    return ((rel - lo) / (hi - lo + 1e-9) * 2 - 1).clamp(0, 1)


def select_gaussians(rel: Tensor, threshold: float = 0.4, level: int | None = None) -> Tensor:
    """Gaussians relevant to one query, by the rule the LERF-OVS protocol applies to pixels.

    The raw canonical relevancy of an unrelated surface sits near 0.5 ("as
    likely as a canonical phrase"), so a fixed threshold on it selects
    background; instead the level with the highest peak is chosen and its
    relevancy over all Gaussians is min-max normalized and mapped as in
    :func:`normalized_relevancy`.

    Args:
        rel: ``[L, N]`` per-level relevancy of one query.
        threshold: keep Gaussians whose normalized relevancy exceeds it.
        level: use this level; None picks the level with the highest maximum.
    Returns:
        ``[N]`` bool.
    """
    if level is None:
        level = int(rel.max(dim=1).values.argmax())
    return normalized_relevancy(rel[level]) > threshold
