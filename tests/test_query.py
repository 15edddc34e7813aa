import math

import pytest
import torch
import torch.nn.functional as F

from ccl_gs.query import (
    CANONICAL_PHRASES,
    RELEVANCY,
    canonical_relevancy,
    relevancy,
    softmax_relevancy,
)


def _unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def test_canonical_phrases_are_lerfs():
    assert CANONICAL_PHRASES == ("object", "things", "stuff", "texture")


def test_canonical_relevancy_hand_computed():
    f = torch.tensor([[1.0, 0.0, 0.0]])
    q = torch.tensor([[0.6, 0.8, 0.0]])  # q.f = 0.6
    c = torch.tensor([[0.0, 1.0, 0.0], [0.8, 0.0, 0.6]])  # c.f = 0.0 and 0.8
    out = canonical_relevancy(f, q, c, temperature=10.0)
    p0 = 1 / (1 + math.exp(-10 * (0.6 - 0.0)))
    p1 = 1 / (1 + math.exp(-10 * (0.6 - 0.8)))
    assert out.shape == (1, 1)
    assert out[0, 0].item() == pytest.approx(min(p0, p1), rel=1e-6)
    assert out[0, 0].item() == pytest.approx(p1, rel=1e-6)  # the hardest phrase wins


def _langsplat_reference(embed, pos, neg):
    """Straight transcription of the published rule: stack [pos, neg] sims, softmax(10 x), gather argmin."""
    out = []
    p = torch.cat([pos, neg], 0)
    sims = embed @ p.T
    for k in range(pos.shape[0]):
        pv = sims[:, k : k + 1].repeat(1, neg.shape[0])
        nv = sims[:, pos.shape[0] :]
        sm = torch.softmax(10 * torch.stack((pv, nv), dim=-1), dim=-1)
        best = sm[..., 0].argmin(dim=1)
        out.append(sm[torch.arange(embed.shape[0]), best, 0])
    return torch.stack(out, -1)


def test_canonical_relevancy_matches_published_rule_and_keeps_feature_norm():
    f = _unit(50, 16, seed=1) * 0.7  # not unit: used as given
    q, c = _unit(3, 16, seed=2), _unit(4, 16, seed=3)
    ref = _langsplat_reference(f, q, c)
    torch.testing.assert_close(canonical_relevancy(f, q, c), ref, rtol=1e-5, atol=1e-6)
    normalized = canonical_relevancy(f, q, c, normalize=True)
    torch.testing.assert_close(normalized, _langsplat_reference(F.normalize(f, dim=-1), q, c), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(normalized, ref)


def test_relevancy_keeps_leading_shape():
    f = _unit(2, 5, 7, 8)
    q, c = _unit(3, 8, seed=4), _unit(4, 8, seed=5)
    assert canonical_relevancy(f, q, c).shape == (2, 5, 7, 3)
    assert softmax_relevancy(f, q).shape == (2, 5, 7, 3)


def test_softmax_relevancy_hand_computed_and_scale_invariant():
    f = torch.tensor([[3.0, 0.0]])
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # cos = 1, 0
    out = softmax_relevancy(f, q, temperature=10.0)
    e = math.exp(10.0)
    assert out[0].tolist() == pytest.approx([e / (e + 1), 1 / (e + 1)], rel=1e-6)
    g = _unit(20, 6)
    qq = _unit(4, 6, seed=9)
    torch.testing.assert_close(softmax_relevancy(g * 5, qq), softmax_relevancy(g, qq))
    torch.testing.assert_close(softmax_relevancy(g, qq).sum(-1), torch.ones(20))


def test_registry_dispatch_and_errors():
    assert set(RELEVANCY) == {"canonical", "softmax"}
    f, q, c = _unit(10, 8), _unit(2, 8, seed=1), _unit(4, 8, seed=2)
    torch.testing.assert_close(relevancy("canonical", f, q, c), canonical_relevancy(f, q, c))
    torch.testing.assert_close(relevancy("softmax", f, q, temperature=3.0), softmax_relevancy(f, q, 3.0))
    with pytest.raises(ValueError, match="unknown relevancy 'nope'"):
        relevancy("nope", f, q)
    with pytest.raises(ValueError, match="canonical phrase"):
        relevancy("canonical", f, q)
    with pytest.raises(ValueError, match="disagree on D"):
        softmax_relevancy(f, _unit(2, 4))
