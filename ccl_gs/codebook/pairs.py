"""Sampling pairs of masks for the pull and push losses.

Pairs are drawn among *labeled* masks (``y != -1``) of one pool (one level,
or both levels with a shared codebook). There are four kinds:

===============  =========================  ==================================
kind             anchor ``i``               partner ``k``
===============  =========================  ==================================
positive within  uniform over masks that    uniform over the other masks with
                 have such a partner        the same label in the same view
positive across  (idem)                     uniform over the masks with the
                                            same label in other views
negative within  (idem)                     uniform over masks of the same view
                                            with another label
negative across  (idem)                     uniform over masks of other views
                                            with another label
===============  =========================  ==================================

The first three are exact (index arithmetic on masks sorted by label and
view, fully vectorized). ``negative across`` draws a partner with another
label and rejects same-view draws (up to ``max_tries`` rounds); pairs still
unresolved are dropped, so it may return fewer than asked when almost all
other-label masks share the anchor's view.

Because pull and push are averaged over their own pairs, drawing half the
pairs positive and half negative (rather than drawing uniform pairs, whose
positives would be ~1/K rare) keeps both terms' estimates equally sharp.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _group_starts(sorted_keys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For sorted keys ``[L]``: per element, the start and size of its run, and its rank in the run."""
    n = sorted_keys.shape[0]
    if n == 0:
        e = torch.zeros(0, dtype=torch.long)
        return e, e, e
    new = torch.ones(n, dtype=torch.bool)
    new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    starts_of_runs = torch.nonzero(new).flatten()  # [R]
    run_id = torch.cumsum(new.long(), 0) - 1  # [L]
    sizes = torch.diff(torch.cat([starts_of_runs, torch.tensor([n])]))  # [R]
    start = starts_of_runs[run_id]
    return start, sizes[run_id], torch.arange(n) - start


def _randbelow(bounds: Tensor, generator: torch.Generator) -> Tensor:
    """Uniform integers in ``[0, bounds)`` elementwise (``bounds >= 1``). ``[P] -> [P]``."""
    u = torch.rand(bounds.shape, generator=generator, dtype=torch.float64)
    return torch.minimum((u * bounds).long(), bounds - 1)


class PairSampler:
    """Draws same-label and different-label mask pairs within and across views.

    Args:
        views: ``[M]`` int view (image) index of each mask in the pool.
        labels: ``[M]`` int cross-view track label, ``-1`` (any negative) = unlabeled.
    Indices returned by the ``sample_*`` methods index these ``[M]`` arrays.
    """

    def __init__(self, views: Tensor, labels: Tensor, max_tries: int = 16):
        views = views.long().cpu()
        labels = labels.long().cpu()
        self.max_tries = max_tries
        lab = torch.nonzero(labels >= 0).flatten()  # [L] pool indices of labeled masks
        self.n_labeled = int(lab.numel())
        v, y = views[lab], labels[lab]
        nv = int(views.max()) + 1 if views.numel() else 1
        # Order A: by (label, view).
        key_lv = y * nv + v
        order_a = torch.argsort(key_lv, stable=True)
        self._order_a = order_a  # sorted position -> labeled-mask index
        self._a_idx = lab[order_a]  # sorted position -> pool index
        pos_a = torch.empty_like(order_a)
        pos_a[order_a] = torch.arange(order_a.numel())
        lstart, lsize, _ = _group_starts(y[order_a])
        lvstart, lvsize, lvrank = _group_starts(key_lv[order_a])
        # Per labeled mask (in `lab` order).
        self._lab = lab
        self._pa = pos_a  # position in order A
        self._l_start, self._l_size = lstart[pos_a], lsize[pos_a]
        self._lv_start, self._lv_size = lvstart[pos_a], lvsize[pos_a]
        self._lv_off = self._lv_start - self._l_start  # offset of (label, view) run inside the label run
        # Order B: by (view, label).
        key_vl = v * (int(y.max()) + 1 if y.numel() else 1) + y
        order_b = torch.argsort(key_vl, stable=True)
        self._b_idx = lab[order_b]
        pos_b = torch.empty_like(order_b)
        pos_b[order_b] = torch.arange(order_b.numel())
        vstart, vsize, _ = _group_starts(v[order_b])
        vlstart, vlsize, _ = _group_starts(key_vl[order_b])
        self._v_start, self._v_size = vstart[pos_b], vsize[pos_b]
        self._vl_off = vlstart[pos_b] - self._v_start
        self._views = v
        # Eligibility of each labeled mask as an anchor, per pair kind.
        n_other_view_other_label = self.n_labeled - self._l_size - self._v_size + self._lv_size
        self._eligible = {
            ("pos", True): self._lv_size >= 2,
            ("pos", False): self._l_size - self._lv_size > 0,
            ("neg", True): self._v_size - self._lv_size > 0,
            ("neg", False): n_other_view_other_label > 0,
        }

    def n_anchors(self, positive: bool, same_view: bool) -> int:
        """How many labeled masks can anchor a pair of this kind."""
        return int(self._eligible[("pos" if positive else "neg", same_view)].sum())

    def sample(self, n: int, positive: bool, same_view: bool, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw up to ``n`` pairs of one kind.

        Returns:
            ``(a [P], b [P])`` int64 pool indices, ``P <= n`` (``P = 0`` when no
            mask qualifies as an anchor).
        """
        elig = torch.nonzero(self._eligible[("pos" if positive else "neg", same_view)]).flatten()
        if n <= 0 or elig.numel() == 0:
            e = torch.zeros(0, dtype=torch.long)
            return e, e
        anchor = elig[_randbelow(torch.full((n,), elig.numel()), generator)]  # [n] in `lab` order
        if positive and same_view:
            r = _randbelow(self._lv_size[anchor] - 1, generator)
            p = self._lv_start[anchor] + r
            p = p + (p >= self._pa[anchor]).long()  # skip the anchor itself
            partner = self._a_idx[p]
        elif positive:
            r = _randbelow(self._l_size[anchor] - self._lv_size[anchor], generator)
            r = r + (r >= self._lv_off[anchor]).long() * self._lv_size[anchor]  # skip the anchor's view
            partner = self._a_idx[self._l_start[anchor] + r]
        elif same_view:
            r = _randbelow(self._v_size[anchor] - self._lv_size[anchor], generator)
            r = r + (r >= self._vl_off[anchor]).long() * self._lv_size[anchor]  # skip the anchor's label
            partner = self._b_idx[self._v_start[anchor] + r]
        else:
            partner_pos = torch.full_like(anchor, -1)
            todo = torch.ones_like(anchor, dtype=torch.bool)
            n_other = self.n_labeled - self._l_size[anchor]  # other-label masks, any view
            for _ in range(self.max_tries):
                idx = torch.nonzero(todo).flatten()
                if idx.numel() == 0:
                    break
                a = anchor[idx]
                r = _randbelow(n_other[idx], generator)
                # Other-label masks in order A: positions [0, l_start) and [l_start + l_size, L).
                p = r + (r >= self._l_start[a]).long() * self._l_size[a]
                ok = self._views[self._order_a[p]] != self._views[a]
                partner_pos[idx[ok]] = p[ok]
                todo[idx[ok]] = False
            keep = partner_pos >= 0
            anchor, partner = anchor[keep], self._a_idx[partner_pos[keep]]
        return self._lab[anchor], partner
