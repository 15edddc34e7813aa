"""Relevancy of features to text queries: one implementation shared by render, eval and export.

Two forms are provided, registered by name in :data:`RELEVANCY`:

``"canonical"``
    LERF's relevancy, as LangSplat's evaluation computes it: for every
    canonical phrase c, the pairwise softmax ``softmax(t * [q.f, c.f])`` gives
    the probability of the query q against c; the relevancy is the smallest
    of these probabilities over the phrases (the hardest negative). The
    feature f is used as given (LangSplat's decoder already outputs unit
    vectors; it does not renormalize in the relevancy), unless
    ``normalize=True``.

``"softmax"``
    The CCL-LGS form: a softmax over the query set of the cosine similarity
    ``t * cos(f, q)``, so the relevancies of one pixel sum to 1 over queries.

Both are pure torch functions of ``features [..., D]`` and
``queries [Q, D]`` and return ``[..., Q]``.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

CANONICAL_PHRASES: tuple[str, ...] = ("object", "things", "stuff", "texture")
"""LERF's canonical (negative) phrases, in LERF / LangSplat order."""

DEFAULT_TEMPERATURE = 10.0
"""Softmax temperature of LERF, LangSplat and CCL-LGS."""


def canonical_relevancy(
    features: Tensor,  # [..., D]
    queries: Tensor,  # [Q, D]
    canonicals: Tensor,  # [P, D]
    temperature: float = DEFAULT_TEMPERATURE,
    normalize: bool = False,
) -> Tensor:  # [..., Q]
    """LERF relevancy: min over canonical phrases of the pairwise softmax probability of the query.

    For each canonical phrase ``c`` the probability
    ``softmax(temperature * [q.f, c.f])[0]`` is computed, and the smallest over
    phrases is kept, exactly as ``OpenCLIPNetwork.get_relevancy`` in
    LangSplat's evaluation (which gathers the pair with the smallest query
    probability).

    Args:
        features: ``[..., D]`` per-pixel (or per-Gaussian) embeddings, used as
            given unless ``normalize``.
        queries: ``[Q, D]`` query text embeddings (unit norm).
        canonicals: ``[P, D]`` canonical phrase embeddings (unit norm), see
            :data:`CANONICAL_PHRASES`.
        temperature: multiplies the dot products before the softmax.
        normalize: divide ``features`` by their norm first (off in LangSplat).

    Returns:
        ``[..., Q]`` relevancy in ``(0, 1)``; 0.5 means "as likely as the
        hardest canonical phrase".

    Example:
        >>> f = torch.tensor([[1.0, 0.0]])
        >>> q = torch.tensor([[1.0, 0.0]]); c = torch.tensor([[0.0, 1.0]])
        >>> round(float(canonical_relevancy(f, q, c)[0, 0]), 5)  # softmax(10*[1, 0])[0]
        0.99995
    """
    _check(features, queries)
    if canonicals.ndim != 2 or canonicals.shape[-1] != features.shape[-1]:
        raise ValueError(f"canonicals must be [P, {features.shape[-1]}], got {tuple(canonicals.shape)}")
    if canonicals.shape[0] == 0:
        raise ValueError("canonical_relevancy needs at least one canonical phrase")
    if normalize:
        features = F.normalize(features, dim=-1)
    q = queries.to(features.dtype)
    c = canonicals.to(features.dtype)
    q_sim = features @ q.T  # [..., Q]
    c_sim = features @ c.T  # [..., P]
    out = None
    for p in range(c.shape[0]):
        pair = torch.stack((q_sim, c_sim[..., p : p + 1].expand_as(q_sim)), dim=-1)  # [..., Q, 2]
        prob = torch.softmax(temperature * pair, dim=-1)[..., 0]  # [..., Q]
        out = prob if out is None else torch.minimum(out, prob)
    return out


def softmax_relevancy(
    features: Tensor,  # [..., D]
    queries: Tensor,  # [Q, D]
    temperature: float = DEFAULT_TEMPERATURE,
) -> Tensor:  # [..., Q]
    """CCL-LGS relevancy: softmax over the query set of ``temperature * cos(f, q)``.

    Args:
        features: ``[..., D]`` embeddings (any norm; cosine similarity is used).
        queries: ``[Q, D]`` query text embeddings (any norm).
        temperature: multiplies the cosine similarities before the softmax.

    Returns:
        ``[..., Q]`` relevancy; sums to 1 over the last axis.

    Example:
        >>> f = torch.tensor([[2.0, 0.0]]); q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> softmax_relevancy(f, q, temperature=1.0).sum(-1)
        tensor([1.])
    """
    _check(features, queries)
    cos = F.normalize(features, dim=-1) @ F.normalize(queries.to(features.dtype), dim=-1).T  # [..., Q]
    return torch.softmax(temperature * cos, dim=-1)


def _check(features: Tensor, queries: Tensor) -> None:
    if queries.ndim != 2:
        raise ValueError(f"queries must be [Q, D], got {tuple(queries.shape)}")
    if features.ndim < 1 or features.shape[-1] != queries.shape[-1]:
        raise ValueError(
            f"features [..., D] and queries [Q, D] disagree on D: {tuple(features.shape)} vs {tuple(queries.shape)}"
        )


class RelevancyFn(Protocol):
    """Uniform call used through :data:`RELEVANCY`."""

    def __call__(
        self,
        features: Tensor,  # [..., D]
        queries: Tensor,  # [Q, D]
        *,
        canonicals: Tensor | None,  # [P, D]
        temperature: float,
    ) -> Tensor:  # [..., Q]
        ...


def _canonical_entry(features: Tensor, queries: Tensor, *, canonicals: Tensor | None, temperature: float) -> Tensor:
    if canonicals is None:
        raise ValueError("relevancy 'canonical' needs the canonical phrase embeddings (CANONICAL_PHRASES)")
    return canonical_relevancy(features, queries, canonicals, temperature=temperature)


def _softmax_entry(features: Tensor, queries: Tensor, *, canonicals: Tensor | None, temperature: float) -> Tensor:
    del canonicals  # the softmax form compares the queries with each other only
    return softmax_relevancy(features, queries, temperature=temperature)


RELEVANCY: dict[str, RelevancyFn] = {
    "canonical": _canonical_entry,
    "softmax": _softmax_entry,
}
"""Relevancy forms by name; each is called as ``fn(features, queries, canonicals=..., temperature=...)``."""


def relevancy(
    kind: str,
    features: Tensor,  # [..., D]
    queries: Tensor,  # [Q, D]
    canonicals: Tensor | None = None,  # [P, D]
    temperature: float = DEFAULT_TEMPERATURE,
) -> Tensor:  # [..., Q]
    """Look up ``kind`` in :data:`RELEVANCY` and apply it; an unknown kind names the choices."""
    try:
        fn = RELEVANCY[kind]
    except KeyError:
        raise ValueError(f"unknown relevancy '{kind}', choose one of {sorted(RELEVANCY)}") from None
    return fn(features, queries, canonicals=canonicals, temperature=temperature)


__all__: list[str] = [
    "CANONICAL_PHRASES",
    "DEFAULT_TEMPERATURE",
    "RELEVANCY",
    "RelevancyFn",
    "canonical_relevancy",
    "relevancy",
    "softmax_relevancy",
]
