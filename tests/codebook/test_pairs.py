import pytest
import torch

from ccl_gs.codebook.pairs import PairSampler

# 3 views; labels with -1 (unlabeled), a label seen once per view, and a label seen twice in view 0.
VIEWS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
LABELS = torch.tensor([1, 2, 2, -1, 1, 2, 3, 1, -1, 3])


def _check(a, b, positive, same_view):
    assert a.shape == b.shape
    assert (a != b).all()
    assert (LABELS[a] >= 0).all() and (LABELS[b] >= 0).all()
    same_label = LABELS[a] == LABELS[b]
    assert bool(same_label.all()) if positive else not bool(same_label.any())
    sv = VIEWS[a] == VIEWS[b]
    assert bool(sv.all()) if same_view else not bool(sv.any())


@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("same_view", [True, False])
def test_pairs_obey_their_kind(positive, same_view):
    s = PairSampler(VIEWS, LABELS)
    g = torch.Generator().manual_seed(0)
    a, b = s.sample(500, positive, same_view, g)
    assert a.numel() > 0
    _check(a, b, positive, same_view)


def test_every_valid_partner_is_reachable_and_roughly_uniform():
    s = PairSampler(VIEWS, LABELS)
    g = torch.Generator().manual_seed(1)
    a, b = s.sample(6000, positive=False, same_view=False, generator=g)
    # Brute force: all valid (anchor, partner) negative-across pairs.
    valid = {
        (i, k)
        for i in range(10)
        for k in range(10)
        if LABELS[i] >= 0 and LABELS[k] >= 0 and LABELS[i] != LABELS[k] and VIEWS[i] != VIEWS[k]
    }
    seen = set(zip(a.tolist(), b.tolist()))
    assert seen == valid
    # Within-label positives across views for mask 0 (label 1, view 0): partners 4 and 7 equally likely.
    a, b = s.sample(4000, positive=True, same_view=False, generator=g)
    partners = b[a == 0]
    frac = float((partners == 4).float().mean())
    assert 0.4 < frac < 0.6


def test_same_view_positive_only_where_a_label_repeats_in_a_view():
    s = PairSampler(VIEWS, LABELS)
    assert s.n_anchors(positive=True, same_view=True) == 2  # masks 1 and 2
    a, b = s.sample(50, True, True, torch.Generator().manual_seed(0))
    assert set(a.tolist()) == {1, 2} and set(b.tolist()) == {1, 2}


def test_no_labels_gives_no_pairs():
    s = PairSampler(torch.tensor([0, 1]), torch.tensor([-1, -1]))
    a, b = s.sample(10, True, False, torch.Generator())
    assert a.numel() == 0 and b.numel() == 0
