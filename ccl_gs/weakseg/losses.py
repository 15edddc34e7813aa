"""The 3D-OVS losses (``train_seg.py`` / ``models/losses.py`` of the release), as pure functions.

Notation: ``R`` rays (pixels), ``S = 3`` scales, ``D`` CLIP dimensions, ``C``
classes, ``E`` DINO dimensions. ``F`` is the rendered CLIP-space feature
(not normalized), ``w`` the rendered scale selection (rows sum to 1),
``t`` the unit text embeddings of the scene's classes.

* :func:`feature_loss` - ``-mean_r cos(F_r, normalize(sum_s w_rs f_rs))``.
* :func:`rda_loss` - relevancy-distribution alignment: ``mean_r JS(P_r || Q_r)``
  with ``P = softmax_c(F . t_c)`` (the release's unnormalized feature; the fix
  ``normalize=True`` uses the cosine) and ``Q = softmax_c(sum_s w_rs R_rsc)``,
  ``R`` the min-max normalized relevancy (:func:`minmax_relevancy`).
* :func:`fda_loss` - feature-distribution alignment: within each patch, all
  pairs ``(i, j)`` (``i = j`` included) of ``p = softmax_c(cos(F, t) / tau)``,
  ``JS(p_i || p_j)`` weighted by ``D = cos(dino_i, dino_j) - shift``, split into
  its positive and negative parts, each averaged over its own count of
  nonzero weights (the release's rebalancing); returns ``(L_pos, L_neg)``.

JS is in nats, symmetric, in ``[0, ln 2]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def js_divergence(logp: Tensor, logq: Tensor) -> Tensor:
    """Jensen-Shannon divergence of distributions given as log-probabilities ``[..., C]``: ``[...]``.

    ``JS = (KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2``, computed in log space.
    """
    logm = torch.logsumexp(torch.stack([logp, logq]), 0) - torch.log(torch.tensor(2.0, dtype=logp.dtype, device=logp.device))
    kl_p = (logp.exp() * (logp - logm)).sum(-1)
    kl_q = (logq.exp() * (logq - logm)).sum(-1)
    return 0.5 * (kl_p + kl_q)


def select_targets(targets: Tensor, selection: Tensor) -> Tensor:
    """The selection-weighted sum over scales: ``targets [R, S, K]``, ``selection [R, S]`` -> ``[R, K]``."""
    return (selection[..., None] * targets.float()).sum(-2)


def feature_loss(feature: Tensor, selection: Tensor, clip: Tensor) -> Tensor:
    """Feature distillation (weight 1 in the release).

    Args:
        feature: ``[R, D]`` rendered feature (any norm).
        selection: ``[R, S]`` rendered scale selection.
        clip: ``[R, S, D]`` unit per-pixel CLIP targets per scale.
    Returns:
        scalar ``-mean_r cos(F_r, g_r)``, ``g_r = normalize(sum_s w_rs f_rs)``.
    """
    g = F.normalize(select_targets(clip, selection), dim=-1)
    return -F.cosine_similarity(feature, g, dim=-1).mean()


def minmax_relevancy(clip: Tensor, text: Tensor) -> Tensor:
    """The RDA target relevancy of one view: cosine of each pixel's scale feature with each class text,
    min-max normalized over the view's pixels separately per (scale, class).

    Args:
        clip: ``[S, h, w, D]`` unit CLIP maps of one view.
        text: ``[C, D]`` unit text embeddings.
    Returns:
        ``[S, h, w, C]`` in [0, 1].
    """
    r = clip.float() @ text.float().T  # [S, h, w, C]
    flat = r.flatten(1, 2)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(r)


def rda_loss(feature: Tensor, selection: Tensor, relevancy: Tensor, text: Tensor, normalize: bool = False) -> Tensor:
    """Relevancy-distribution alignment.

    Args:
        feature: ``[R, D]`` rendered feature.
        selection: ``[R, S]``.
        relevancy: ``[R, S, C]`` min-max normalized relevancy (:func:`minmax_relevancy`).
        text: ``[C, D]`` unit text embeddings.
        normalize: False = the release (``F . t``, the feature's norm acts as an
            inverse temperature); True = the cosine (the fix).
    Returns:
        scalar ``mean_r JS(P_r || Q_r)``.
    """
    f = F.normalize(feature, dim=-1) if normalize else feature
    logp = torch.log_softmax(f @ text.T, -1)
    logq = torch.log_softmax(select_targets(relevancy, selection), -1)
    return js_divergence(logp, logq).mean()


def class_log_probs(feature: Tensor, text: Tensor, temperature: float) -> Tensor:
    """``log_softmax_c(cos(F, t_c) / tau)``: ``[..., D]`` -> ``[..., C]``."""
    return torch.log_softmax(F.normalize(feature, dim=-1) @ text.T / temperature, -1)


def pairwise_js(logp: Tensor) -> Tensor:
    """JS divergence of every pair of rows: ``[N, C]`` log-probabilities -> ``[N, N]``.

    ``JS_ij = (H(m_ij) - (H(p_i) + H(p_j)) / 2`` with ``H`` the entropy; the
    ``[N, N, C]`` mixture is formed once.
    """
    p = logp.exp()
    neg_ent = (p * logp).sum(-1)  # [N], -H(p_i)
    m = 0.5 * (p[:, None] + p[None])  # [N, N, C]
    m_log_m = (m * torch.log(m.clamp_min(1e-30))).sum(-1)  # [N, N], -H(m)
    return 0.5 * (neg_ent[:, None] + neg_ent[None]) - m_log_m


def dino_weights(dino: Tensor, shift: float) -> Tensor:
    """``cos(dino_i, dino_j) - shift`` of every pair in a patch: ``[N, E]`` -> ``[N, N]`` (no gradient)."""
    with torch.no_grad():
        d = F.normalize(dino.float(), dim=-1)
        return d @ d.T - shift


def fda_loss(features: Tensor, dino: Tensor, text: Tensor, temperature: float = 0.2,
             shift: float = 0.7) -> tuple[Tensor, Tensor]:
    """Feature-distribution alignment over patches (pairs within a patch only).

    Args:
        features: ``[P, N, D]`` rendered features of ``P`` patches of ``N`` cells.
        dino: ``[P, N, E]`` DINO features of the same cells.
        text: ``[C, D]`` unit text embeddings.
    Returns:
        ``(L_pos, L_neg)``: ``sum D+ JS / #(D+ != 0)`` and ``sum D- JS / #(D- != 0)``
        over all patches (``L_neg <= 0``; the release multiplies them by
        ``dino_pos_weight`` and ``dino_neg_weight``). An empty set gives 0
        (the release divides by zero there; with real DINO ``D+`` is never
        empty, ``i = j`` pairs have weight ``1 - shift``).
    """
    pos_sum = features.new_zeros(())
    neg_sum = features.new_zeros(())
    pos_n = neg_n = 0
    for k in range(features.shape[0]):
        js = pairwise_js(class_log_probs(features[k], text, temperature))  # [N, N]
        d = dino_weights(dino[k], shift)
        dp, dn = d.clamp_min(0), d.clamp_max(0)
        pos_sum = pos_sum + (dp * js).sum()
        neg_sum = neg_sum + (dn * js).sum()
        pos_n += int(torch.count_nonzero(dp))
        neg_n += int(torch.count_nonzero(dn))
    return pos_sum / max(pos_n, 1), neg_sum / max(neg_n, 1)
