import math

import pytest
import torch
import torch.nn.functional as F

from ccl_gs.codebook.losses import assign, codebook_loss, max_loss, pull_loss, push_loss


def _unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_assign_picks_nearest_by_cosine_not_norm():
    protos = torch.tensor([[10.0, 0.0], [0.0, 0.1]])  # norms must not matter
    feats = _unit([1.0, 0.2], [0.2, 1.0])
    j, cos = assign(feats, protos)
    assert j.tolist() == [0, 1]
    assert torch.allclose(cos, torch.tensor([1 / math.sqrt(1.04)] * 2), atol=1e-6)


def test_max_loss_zero_when_feature_equals_a_prototype():
    protos = _unit([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    assert float(max_loss(protos[1:2].clone(), protos)) == pytest.approx(0.0, abs=1e-7)


def test_max_loss_hand_computed():
    protos = _unit([1.0, 0.0], [0.0, 1.0])
    feats = _unit([1.0, 1.0], [1.0, 0.0])  # cos to nearest: 1/sqrt(2) and 1
    assert float(max_loss(feats, protos)) == pytest.approx((1 - 1 / math.sqrt(2)) / 2, abs=1e-6)


def test_pull_of_identical_prototypes_is_zero_and_of_orthogonal_is_one():
    t = _unit([0.3, -0.4, 0.5])
    assert float(pull_loss(t, t.clone() * 3.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(pull_loss(_unit([1.0, 0.0]), _unit([0.0, 1.0]))) == pytest.approx(1.0, abs=1e-6)


def test_push_below_margin_is_zero_above_is_cos_minus_margin():
    a = _unit([1.0, 0.0])
    below = _unit([0.6, 0.8])  # cos 0.6 < 0.7
    above = _unit([0.8, 0.6])  # cos 0.8 > 0.7
    assert float(push_loss(a, below, 0.7)) == 0.0
    assert float(push_loss(a, above, 0.7)) == pytest.approx(0.8 - 0.7, abs=1e-6)
    both = push_loss(torch.cat([a, a]), torch.cat([below, above]), 0.7)
    assert float(both) == pytest.approx(0.1 / 2, abs=1e-6)


def test_empty_pairs_give_zero():
    e = torch.zeros(0, 4)
    assert float(pull_loss(e, e)) == 0.0 and float(push_loss(e, e, 0.7)) == 0.0


def test_gradients_reach_only_the_chosen_prototypes():
    protos = torch.nn.Parameter(_unit([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]))
    feats = _unit([1.0, 0.3, 0.0], [0.2, 1.0, 0.1])  # choose 0 and 1
    pos_a, pos_b = feats[:1], feats[1:2]  # same label, prototypes 0 and 1 -> pull
    neg_a = _unit([0.1, 0.1, 1.0])  # prototype 2
    neg_b = _unit([1.0, 0.0, 0.9])  # prototype 0 or 2 -> cos(T2, T0) = 0 < m: no push gradient
    terms = codebook_loss(protos, feats, pos_a, pos_b, neg_a, neg_b)
    terms.total.backward()
    g = protos.grad.norm(dim=1)
    assert g[0] > 0 and g[1] > 0
    assert g[3] == 0  # never chosen
    assert float(terms.l_pull.detach()) == pytest.approx(1.0, abs=1e-6)  # T0 and T1 orthogonal


def test_push_gradient_separates_close_prototypes():
    protos = torch.nn.Parameter(_unit([1.0, 0.0], [0.9, 0.3]))  # cos ~0.95 > 0.7
    a, b = protos.detach()[:1].clone(), protos.detach()[1:].clone()
    e = torch.zeros(0, 2)
    terms = codebook_loss(protos, e, e, e, a, b, w_max=0.0, w_pull=0.0, w_push=1.0)
    assert float(terms.l_push.detach()) == pytest.approx(float(F.cosine_similarity(a, b)) - 0.7, abs=1e-6)
    terms.total.backward()
    with torch.no_grad():
        stepped = protos - 0.1 * protos.grad
    assert F.cosine_similarity(stepped[:1], stepped[1:]) < F.cosine_similarity(a, b)


def test_push_of_one_shared_prototype_is_constant_without_gradient():
    """Documented degenerate case: both masks pick the same prototype."""
    protos = torch.nn.Parameter(_unit([1.0, 0.0], [0.0, 1.0]))
    a, b = _unit([1.0, 0.1]), _unit([1.0, -0.1])  # both choose prototype 0
    e = torch.zeros(0, 2)
    terms = codebook_loss(protos, e, e, e, a, b, w_max=0.0, w_pull=0.0, w_push=1.0)
    assert float(terms.l_push.detach()) == pytest.approx(0.3, abs=1e-6)
    terms.total.backward()
    assert float(protos.grad.abs().sum()) == pytest.approx(0.0, abs=1e-7)


def test_gated_pull_skips_dissimilar_pairs_and_keeps_the_mean_over_all_pairs():
    a = torch.stack([_unit([1.0, 0.0, 0.0])[0], _unit([1.0, 0.0, 0.0])[0]])
    b = torch.stack([_unit([0.9, 0.1, 0.0])[0], _unit([0.0, 1.0, 0.0])[0]])  # cos ~0.99 and 0
    b.requires_grad_(True)
    near = 1.0 - float((a[0] * torch.nn.functional.normalize(b[0].detach(), dim=0)).sum())
    gated = pull_loss(a, b, gate=0.7)
    assert float(gated.detach()) == pytest.approx(near / 2, abs=1e-6)  # the far pair counts as 0 in the mean
    gated.backward()
    assert b.grad[1].abs().sum() == 0 and b.grad[0].abs().sum() > 0  # a tracker switch pulls nothing
    assert float(pull_loss(a, b.detach())) == pytest.approx((near + 1.0) / 2, abs=1e-6)  # the paper's pull


def test_ccl_gated_variant_is_ccl_with_the_gate_at_the_push_margin():
    from ccl_gs.codebook.config import CODEBOOK_VARIANTS

    g, c = CODEBOOK_VARIANTS["ccl_gated"], CODEBOOK_VARIANTS["ccl"]
    assert g.pull_gate == c.margin and c.pull_gate is None
    assert (g.w_pull, g.w_push, g.margin) == (c.w_pull, c.w_push, c.margin)
