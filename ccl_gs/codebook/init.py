"""Prototype initialization and dead-prototype re-seeding.

Init (``CodebookConfig.init``):

* ``"kmeans++"`` (default): k-means++ seeding with the cosine distance
  ``d = 1 - cos``: the first prototype is a uniformly drawn feature, each next
  one a feature drawn with probability proportional to ``d^2`` to its nearest
  prototype so far. Starting *on* the data leaves few prototypes that no
  feature ever chooses.
* ``"random_features"``: N distinct features drawn uniformly.
* ``"random"``: N random unit vectors (expect many dead prototypes in 512-d).

Re-seeding. A prototype that no mask chooses gets no gradient from any loss
and would stay useless. Every ``reseed_every`` steps the trainer assigns all
masks of the pool and counts uses; each dead prototype is moved onto the
feature that the codebook currently represents worst, greedily: take the
feature with the largest ``L_max = 1 - max_j cos(F, T_j)``, place a prototype
there, update every feature's ``L_max`` as if that prototype existed, repeat.
Features already represented exactly (``L_max <= min_loss``) are never used,
so with fewer distinct features than prototypes some stay dead.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ccl_gs.codebook.losses import normalize


def kmeans_pp_init(
    features: Tensor,  # [M, D] unit norm
    n: int,
    generator: torch.Generator,
) -> Tensor:
    """k-means++ seeding under the cosine distance.

    Returns:
        ``[n, D]`` unit-norm prototypes (rows of ``features``; when all
        remaining distances are 0, uniformly drawn rows, possibly repeated).
    """
    M, D = features.shape
    out = features.new_empty(n, D)
    first = int(torch.randint(M, (1,), generator=generator))
    out[0] = features[first]
    dist = (1.0 - features @ out[0]).clamp_min(0.0)  # [M]
    for j in range(1, n):
        w = (dist.double() ** 2).cpu()
        if float(w.sum()) <= 0.0:
            k = int(torch.randint(M, (1,), generator=generator))
        else:
            k = int(torch.multinomial(w, 1, generator=generator))
        out[j] = features[k]
        dist = torch.minimum(dist, (1.0 - features @ out[j]).clamp_min(0.0))
    return out


def init_prototypes(
    features: Tensor,  # [M, D] unit norm
    n: int,
    method: str,
    generator: torch.Generator,
) -> Tensor:
    """Initial prototypes ``[n, D]`` (unit norm) by ``method`` (see module doc)."""
    M, D = features.shape
    if method == "kmeans++":
        return kmeans_pp_init(features, n, generator)
    if method == "random_features":
        if M >= n:
            idx = torch.randperm(M, generator=generator)[:n]
        else:
            idx = torch.randint(M, (n,), generator=generator)
        return features[idx.to(features.device)].clone()
    if method == "random":
        return normalize(torch.randn(n, D, generator=generator).to(features))
    raise ValueError(f"unknown --init '{method}'; choose kmeans++, random_features or random")


@torch.no_grad()
def worst_represented(
    features: Tensor,  # [M, D] unit norm
    best_cos: Tensor,  # [M] current max_j cos(F, T_j)
    k: int,
    min_loss: float = 1e-4,
) -> Tensor:
    """Greedy farthest-first choice of ``<= k`` re-seed points.

    Returns:
        ``[k', D]`` features (``k' <= k``), each the feature with the largest
        ``L_max`` once the previously chosen ones are counted as prototypes.
    """
    loss = (1.0 - best_cos).clone()  # [M]
    chosen = []
    for _ in range(k):
        i = int(torch.argmax(loss))
        if float(loss[i]) <= min_loss:
            break
        chosen.append(features[i])
        loss = torch.minimum(loss, 1.0 - features @ features[i])
    if not chosen:
        return features.new_zeros(0, features.shape[1])
    return torch.stack(chosen)
