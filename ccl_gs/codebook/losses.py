"""The three codebook losses of CCL-LGS as pure functions.

Notation: mask features ``F_i`` (unit norm, fixed), learnable prototypes
``T_j`` (normalized wherever they are used), ``j*_i = argmax_j cos(F_i, T_j)``.

* ``L_max  = mean_i (1 - cos(F_i, T_{j*_i}))``
* ``L_pull = mean_(i,k) (1 - cos(T_{j*_i}, T_{j*_k}))``        over pairs with ``y_i = y_k != -1``
* ``L_push = mean_(i,k) relu(cos(T_{j*_i}, T_{j*_k}) - m)``    over pairs with ``y_i != y_k``, both ``!= -1``

Gradients. The choice ``j*`` is an argmax computed without gradient; the
chosen prototypes are then gathered by index, so every term is an ordinary
differentiable function of the *chosen* rows of ``T`` and gradients reach
exactly those rows (the codebook half of VQ's update; no straight-through
estimator is needed because the features are fixed inputs, not outputs of a
network being trained). Unchosen prototypes get no gradient from a step.

A degenerate case worth knowing: when both masks of a pair choose the same
prototype, ``cos(T_j, T_j) = 1`` is constant, so the pull term is 0 and the
push term is the constant ``1 - m`` with **zero gradient**. Push therefore
separates *different* prototypes that sit closer than the margin; it cannot
split one prototype shared by two labels (``L_max`` and re-seeding can).

What pull does and does not do: it moves the two prototypes of a
same-label pair towards each other, both at once, so the boundary between
their cells (which mask picks which) barely moves, and ``L_max`` holds each
prototype near its own masks, so two prototypes never fully merge. On the
synthetic scenes of ``tests/codebook`` and ``bench/bench_codebook.py``, pull
raises the cosine between the prototypes one object picks in different views
by about 0.2, while the share of those views that pick the *same* index is
unchanged. The consistency it buys is in the target features
``T_{j*}``, not in the indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Unit-normalize the last dimension. ``[..., D] -> [..., D]``."""
    return F.normalize(x, dim=-1, eps=eps)


@torch.no_grad()
def assign(
    features: Tensor,  # [M, D] unit norm
    prototypes: Tensor,  # [N, D] (any norm)
    chunk: int = 65536,
) -> tuple[Tensor, Tensor]:
    """Nearest prototype by cosine similarity.

    Args:
        features: ``[M, D]`` unit-norm mask features.
        prototypes: ``[N, D]`` prototypes (normalized here).
    Returns:
        ``(j_star [M] int64, cos [M] float)``: the chosen prototype of each
        feature (ties go to the lowest index) and its cosine similarity.

    >>> f = torch.eye(3)[:2]; t = torch.eye(3)
    >>> assign(f, t)[0].tolist()
    [0, 1]
    """
    t = normalize(prototypes).to(features.dtype)
    js, cs = [], []
    for s in range(0, max(features.shape[0], 1), chunk):
        sim = features[s : s + chunk] @ t.T  # [m, N]
        c, j = sim.max(dim=1)
        js.append(j)
        cs.append(c)
    return torch.cat(js), torch.cat(cs)


def max_loss(
    features: Tensor,  # [B, D] unit norm
    prototypes: Tensor,  # [N, D]
    j_star: Tensor | None = None,  # [B]
) -> Tensor:
    """``L_max = mean(1 - cos(F_i, T_{j*_i}))``; a scalar, 0 for an empty batch.

    ``j_star`` (``[B]`` int64) may be passed when already computed.
    """
    if features.shape[0] == 0:
        return prototypes.sum() * 0.0
    if j_star is None:
        j_star, _ = assign(features, prototypes)
    t = normalize(prototypes[j_star])  # [B, D]
    return (1.0 - (features * t).sum(-1)).mean()


def pull_loss(
    t_a: Tensor,  # [P, D]
    t_b: Tensor,  # [P, D]
    gate: float | None = None,
) -> Tensor:
    """``mean(1 - cos(t_a, t_b))`` over same-label pairs; 0 when ``P = 0``.

    ``t_a``, ``t_b`` are the prototypes chosen by the two masks of each pair.
    With ``gate``, only pairs whose prototypes are already closer than it
    (``cos > gate``) are pulled (the others count as 0 in the mean): a
    same-label pair of dissimilar prototypes is then taken for a label error
    (a tracker identity switch) rather than merged. Not in the paper; see
    :class:`~ccl_gs.codebook.config.CodebookConfig` ``pull_gate``.
    """
    if t_a.shape[0] == 0:
        return t_a.sum() * 0.0
    cos = (normalize(t_a) * normalize(t_b)).sum(-1)
    loss = 1.0 - cos
    if gate is not None:
        loss = loss * (cos.detach() > gate)
    return loss.mean()


def push_loss(
    t_a: Tensor,  # [P, D]
    t_b: Tensor,  # [P, D]
    margin: float,
) -> Tensor:
    """``mean(relu(cos(t_a, t_b) - margin))`` over different-label pairs; 0 when ``P = 0``."""
    if t_a.shape[0] == 0:
        return t_a.sum() * 0.0
    return F.relu((normalize(t_a) * normalize(t_b)).sum(-1) - margin).mean()


@dataclass
class LossTerms:
    """The loss of one step and its parts (detached floats in :meth:`as_floats`)."""

    total: Tensor
    """Weighted sum, the scalar that is back-propagated."""
    l_max: Tensor
    l_pull: Tensor
    l_push: Tensor

    def as_floats(self) -> dict[str, float]:
        return {
            "loss": float(self.total.detach()),
            "l_max": float(self.l_max.detach()),
            "l_pull": float(self.l_pull.detach()),
            "l_push": float(self.l_push.detach()),
        }


def codebook_loss(
    prototypes: Tensor,  # [N, D] learnable
    features: Tensor,  # [B, D] unit norm
    pos_a: Tensor,  # [P+, D] features of the first masks of same-label pairs
    pos_b: Tensor,  # [P+, D]
    neg_a: Tensor,  # [P-, D] features of the first masks of different-label pairs
    neg_b: Tensor,  # [P-, D]
    margin: float = 0.7,
    w_max: float = 1.0,
    w_pull: float = 0.25,
    w_push: float = 0.25,
    pull_gate: float | None = None,
) -> LossTerms:
    """The CCL objective on one batch of masks and pairs of masks.

    Each mask feature is assigned its nearest prototype (no gradient through the
    choice); pull/push act on the chosen prototypes of the pair's two masks.

    Args:
        prototypes: ``[N, D]`` learnable prototypes (normalized inside).
        features: ``[B, D]`` unit-norm features for ``L_max``.
        pos_a, pos_b: ``[P+, D]`` features of the two masks of each same-label pair.
        neg_a, neg_b: ``[P-, D]`` features of the two masks of each different-label pair.
        pull_gate: see :func:`pull_loss` (None = the paper's pull on every same-label pair).
    Returns:
        :class:`LossTerms` (``total = w_max L_max + w_pull L_pull + w_push L_push``).
    """
    # One nearest-prototype search for all masks of the step (no gradient through it).
    sizes = [features.shape[0], pos_a.shape[0], pos_b.shape[0], neg_a.shape[0], neg_b.shape[0]]
    j_all, _ = assign(torch.cat([features, pos_a, pos_b, neg_a, neg_b]), prototypes)
    j_f, j_pa, j_pb, j_na, j_nb = torch.split(j_all, sizes)
    l_max = max_loss(features, prototypes, j_f)
    # The terms are computed even at weight 0 so that ablations log comparable numbers.
    l_pull = pull_loss(prototypes[j_pa], prototypes[j_pb], pull_gate)
    l_push = push_loss(prototypes[j_na], prototypes[j_nb], margin)
    total = w_max * l_max + w_pull * l_pull + w_push * l_push
    return LossTerms(total=total, l_max=l_max, l_pull=l_pull, l_push=l_push)
