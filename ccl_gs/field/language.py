"""A trained language field and the questions it answers.

:class:`LanguageField` loads ``field.pt`` (stage 3) and answers text queries:

* per pixel of any view: render the per-Gaussian features, let the field's
  method head (:mod:`ccl_gs.field.methods`) turn them into language, and
  score that against the query embeddings with :func:`ccl_gs.query.relevancy`
  (the one relevancy implementation);
* per Gaussian: the same on each Gaussian's own feature - the basis of 3D
  selection and of the PLY export.

With the codebook method every pixel and Gaussian decodes to one of N
prototypes, so relevancy is computed once per prototype (``[N, Q]``) and
gathered, which keeps queries cheap; the baselines decode a ``D``-d
embedding per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ccl_gs.field.methods import FIELD_METHODS
from ccl_gs.field.train import FIELD_VERSION, render_features
from ccl_gs.io.artifacts import ArtifactError
from ccl_gs.query import CANONICAL_PHRASES, DEFAULT_TEMPERATURE, relevancy
from ccl_gs.splat.trainer import rgb_config


class QueryError(RuntimeError):
    """A query cannot be answered (no trained field, mismatched encoder, ...)."""


@dataclass
class QueryResult:
    """Relevancy of ``Q`` queries at ``L`` levels."""

    texts: list[str]
    values: Tensor
    """``[L, Q, ...]`` relevancy (pixels ``H, W`` or Gaussians ``N``)."""


class LanguageField:
    """Gaussians + the method's language head of a trained field; answers text queries."""

    def __init__(self, ckpt: dict[str, Any], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.params = {k: v.to(self.device) for k, v in ckpt["params"].items()}
        if "features" not in self.params:
            raise QueryError("the checkpoint has no language features: train the semantic field first")
        self.method = str(ckpt["method"])
        self.raster = rgb_config(ckpt.get("rgb_config", {})).raster
        """How the RGB run rasterized its Gaussians (features render the same way)."""
        if self.method not in FIELD_METHODS:
            raise QueryError(f"field method '{self.method}' is unknown to this version; known: {sorted(FIELD_METHODS)}")
        try:
            head = FIELD_METHODS[self.method].head.from_state(ckpt["head"])
        except (KeyError, RuntimeError, TypeError) as e:
            msg = " ".join(str(e).split())
            raise ArtifactError(f"the '{self.method}' head in this field checkpoint does not load: {msg}") from e
        self.head = head.to(self.device).eval()
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
        return self.head.n_levels

    def check_encoder(self, encoder) -> None:
        """Refuse an encoder other than the one used in preprocessing."""
        want = self.encoder_spec.get("name")
        if want is not None and encoder.name != want:
            raise QueryError(
                f"query encoder '{encoder.name}' differs from the encoder used in preprocessing '{want}'"
            )

    def _scores(self, feats: Tensor, fn, fill: float) -> Tensor:
        """``[..., d_f]`` features -> ``[L, Q, ...]`` scores (see :meth:`LanguageHead.scores`)."""
        lead = feats.shape[:-1]
        out = self.head.scores(feats.reshape(-1, feats.shape[-1]), fn, fill)  # [L, P, Q]
        return out.permute(0, 2, 1).reshape(out.shape[0], out.shape[2], *lead)

    @staticmethod
    def _relevancy_fn(query_emb: Tensor, kind: str, canonical_emb: Tensor | None, temperature: float):
        def fn(e: Tensor) -> Tensor:
            return relevancy(kind, e, query_emb.to(e), None if canonical_emb is None else canonical_emb.to(e),
                             temperature)

        return fn

    @staticmethod
    def _cosine_fn(query_emb: Tensor):
        def fn(e: Tensor) -> Tensor:
            return F.normalize(e, dim=-1) @ F.normalize(query_emb.to(e), dim=-1).T

        return fn

    @torch.no_grad()
    def pixel_prototypes(self, item: dict[str, Any]) -> Tensor:
        """Decoded prototype index per level for one view: ``[L, H, W]`` int64 (codebook method only)."""
        feats = self.render_features(item)
        idx = self.head.indices(feats.reshape(-1, feats.shape[-1]))
        if idx is None:
            raise QueryError(f"a '{self.method}' field has no prototypes")
        return idx.reshape(idx.shape[0], *feats.shape[:-1])

    @torch.no_grad()
    def gaussian_prototypes(self) -> Tensor:
        """Decoded prototype index per level of every Gaussian: ``[L, N]`` int64 (codebook method only)."""
        idx = self.head.indices(self.params["features"])
        if idx is None:
            raise QueryError(f"a '{self.method}' field has no prototypes")
        return idx

    @torch.no_grad()
    def render_features(self, item: dict[str, Any]) -> Tensor:
        """The per-Gaussian features rasterized in one view: ``[H, W, d_f]``."""
        return render_features(self.params, item, self.device, raster=self.raster)

    @torch.no_grad()
    def relevancy_maps(
        self, item: dict[str, Any], query_emb: Tensor, kind: str = "canonical",
        canonical_emb: Tensor | None = None, temperature: float = DEFAULT_TEMPERATURE,
        feats: Tensor | None = None,
    ) -> Tensor:
        """Relevancy of the queries in one view: ``[L, Q, H, W]`` (codebook method: "no mask" pixels 0).

        ``feats`` (``[H, W, d_f]``, from :meth:`render_features`) skips the rasterization.
        """
        feats = self.render_features(item) if feats is None else feats
        return self._scores(feats, self._relevancy_fn(query_emb, kind, canonical_emb, temperature), 0.0)

    @torch.no_grad()
    def cosine_maps(self, item: dict[str, Any], query_emb: Tensor, feats: Tensor | None = None) -> Tensor:
        """Cosine similarity of each pixel's language with each query: ``[L, Q, H, W]`` (codebook: "no mask" -1)."""
        feats = self.render_features(item) if feats is None else feats
        return self._scores(feats, self._cosine_fn(query_emb), -1.0)

    @torch.no_grad()
    def gaussian_relevancy(
        self, query_emb: Tensor, kind: str = "canonical", canonical_emb: Tensor | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
    ) -> Tensor:
        """Relevancy of every Gaussian to the queries: ``[L, Q, N]``."""
        fn = self._relevancy_fn(query_emb, kind, canonical_emb, temperature)
        return self._scores(self.params["features"], fn, 0.0)

    @torch.no_grad()
    def gaussian_cosine(self, query_emb: Tensor) -> Tensor:
        """Cosine of every Gaussian's decoded language with the queries: ``[L, Q, N]`` (codebook "no mask": -1)."""
        return self._scores(self.params["features"], self._cosine_fn(query_emb), -1.0)


SELECTION_RULES = ("argmax", "canonical")
"""Rules of the 3D-selection protocol (:func:`protocol_selection`)."""


def protocol_selection(cos: Tensor, rel: Tensor, rule: str = "argmax") -> Tensor:
    """The Gaussians each query selects under the published 3D-selection protocol: ``[Q, N]`` bool.

    Args:
        cos: ``[L, Q, N]`` cosine of each Gaussian's decoded language with each query.
        rel: ``[L, Q, N]`` canonical relevancy of each Gaussian.
        rule: ``"argmax"``, OpenGaussian's rule for methods with per-Gaussian language (its authors,
            yanmin-wu/OpenGaussian issue #9, on re-evaluating LangSplat: decode each Gaussian's feature,
            give it its most similar text of the scene's query list, render the Gaussians of each text;
            their own method takes the argmax leaf cluster the same way, ``render_lerf_by_text.py``).
            Here a Gaussian's score for a query is its best cosine over the levels. ``"canonical"``,
            Dr. Splat's (``render_activation.py``: LERF's canonical relevancy per Gaussian,
            ``> 0.5`` in its README), at the level whose per-Gaussian relevancy peaks highest.
    """
    if rule == "argmax":
        score = cos.max(0).values  # [Q, N]
        best = score.argmax(0)  # [N]
        return best[None] == torch.arange(score.shape[0], device=score.device)[:, None]
    if rule == "canonical":
        lv = rel.flatten(2).max(2).values.argmax(0)  # [Q] level of highest peak per query
        return torch.stack([rel[lv[q], q] > 0.5 for q in range(rel.shape[1])])
    raise ValueError(f"unknown 3D-selection rule '{rule}' (known: {', '.join(SELECTION_RULES)})")


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
