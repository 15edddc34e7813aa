"""The 3D-OVS losses against slow per-ray / per-pair references; selection compositing; the crop grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ccl_gs.weakseg.losses import fda_loss, feature_loss, js_divergence, minmax_relevancy, pairwise_js, rda_loss
from ccl_gs.weakseg.model import AffineDecoder, WeaksegHead, WeaksegModelConfig, render_channels
from ccl_gs.weakseg.targets import crop_boxes, pixel_mean, seen_square, window_starts


def _js_slow(p: list[float], q: list[float]) -> float:
    m = [(a + b) / 2 for a, b in zip(p, q)]
    kl = lambda x, y: sum(a * math.log(a / b) for a, b in zip(x, y) if a > 0)  # noqa: E731
    return 0.5 * (kl(p, m) + kl(q, m))


def _softmax(x: list[float]) -> list[float]:
    e = [math.exp(v - max(x)) for v in x]
    return [v / sum(e) for v in e]


def test_js_matches_the_definition_and_is_bounded():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g) * 3
    got = js_divergence(torch.log_softmax(a, -1), torch.log_softmax(b, -1))
    for r in range(5):
        assert got[r].item() == pytest.approx(_js_slow(_softmax(a[r].tolist()), _softmax(b[r].tolist())), abs=1e-6)
    assert (got >= -1e-7).all() and (got <= math.log(2) + 1e-6).all()
    pj = pairwise_js(torch.log_softmax(a, -1))
    for i in range(5):
        for j in range(5):
            assert pj[i, j].item() == pytest.approx(_js_slow(_softmax(a[i].tolist()), _softmax(a[j].tolist())), abs=1e-6)


def test_feature_and_rda_losses_against_per_ray_references():
    g = torch.Generator().manual_seed(1)
    R, D, C = 6, 8, 3
    feat = torch.randn(R, D, generator=g) * 2
    sel = torch.softmax(torch.randn(R, 3, generator=g), -1)
    clip = F.normalize(torch.randn(R, 3, D, generator=g), dim=-1)
    text = F.normalize(torch.randn(C, D, generator=g), dim=-1)
    rel = torch.rand(R, 3, C, generator=g)
    want_f, want_r, want_rn = 0.0, 0.0, 0.0
    for r in range(R):
        target = sum(sel[r, s] * clip[r, s] for s in range(3))
        want_f += -float(F.cosine_similarity(feat[r], target, dim=0)) / R
        q = _softmax([sum(float(sel[r, s] * rel[r, s, c]) for s in range(3)) for c in range(C)])
        want_r += _js_slow(_softmax([float(feat[r] @ text[c]) for c in range(C)]), q) / R
        fn = feat[r] / feat[r].norm()
        want_rn += _js_slow(_softmax([float(fn @ text[c]) for c in range(C)]), q) / R
    assert feature_loss(feat, sel, clip).item() == pytest.approx(want_f, abs=1e-6)
    assert rda_loss(feat, sel, rel, text).item() == pytest.approx(want_r, abs=1e-6)
    assert rda_loss(feat, sel, rel, text, normalize=True).item() == pytest.approx(want_rn, abs=1e-6)


def test_minmax_relevancy_is_per_scale_and_class():
    g = torch.Generator().manual_seed(2)
    clip = F.normalize(torch.randn(3, 4, 5, 8, generator=g), dim=-1)
    text = F.normalize(torch.randn(2, 8, generator=g), dim=-1)
    r = minmax_relevancy(clip, text)
    for s in range(3):
        for c in range(2):
            raw = clip[s] @ text[c]
            assert torch.allclose(r[s, ..., c], (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)


def test_fda_loss_against_a_per_pair_reference():
    g = torch.Generator().manual_seed(3)
    P, N, D, E, C, tau, shift = 2, 5, 6, 4, 3, 0.2, 0.7
    feats = torch.randn(P, N, D, generator=g)
    dino = torch.randn(P, N, E, generator=g)
    dino[:, 1] = dino[:, 0] + 0.05 * torch.randn(P, E, generator=g)  # some similar pairs
    text = F.normalize(torch.randn(C, D, generator=g), dim=-1)
    pos_s = neg_s = 0.0
    pos_n = neg_n = 0
    for k in range(P):
        probs = [_softmax([float(F.cosine_similarity(feats[k, i], text[c], dim=0)) / tau for c in range(C)]) for i in range(N)]
        for i in range(N):
            for j in range(N):
                d = float(F.cosine_similarity(dino[k, i], dino[k, j], dim=0)) - shift
                js = _js_slow(probs[i], probs[j])
                if d > 0:
                    pos_s, pos_n = pos_s + d * js, pos_n + 1
                elif d < 0:
                    neg_s, neg_n = neg_s + d * js, neg_n + 1
    pos, neg = fda_loss(feats, dino, text, tau, shift)
    assert pos.item() == pytest.approx(pos_s / pos_n, abs=1e-6)
    assert neg.item() == pytest.approx(neg_s / neg_n, abs=1e-6)
    assert neg.item() <= 0


def _gaussians(N: int, d: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {"means": torch.randn(N, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 3.0]),
            "quats": torch.randn(N, 4, generator=g), "scales": torch.full((N, 3), math.log(0.2)),
            "opacities": torch.randn(N, generator=g), "features": torch.randn(N, d, generator=g),
            "selection": torch.randn(N, 3, generator=g)}


@pytest.mark.parametrize("selection", ["sigmoid", "logits"])
def test_selection_and_features_composite_as_the_release(selection):
    """Feature = compositing the decoded per-Gaussian features; selection = softmax of the composited (sigmoids)."""
    from ccl_gs.splat.rasterize import rasterize

    g = torch.Generator().manual_seed(4)
    head = WeaksegHead(WeaksegModelConfig(feature_dim=5, hidden=[7], selection=selection), clip_dim=6)
    p = _gaussians(30, 5, g)
    vm, K = torch.eye(4)[None], torch.tensor([[[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]])
    feat, sel = render_channels(p, head, vm, K, 16, 16)
    act = torch.sigmoid(p["selection"]) if selection == "sigmoid" else p["selection"]
    per_gauss = torch.cat([head.embed(p["features"]), act], -1)  # decode first, then composite
    ref, _, _ = rasterize(p["means"], F.normalize(p["quats"], dim=-1), torch.exp(p["scales"]), torch.sigmoid(p["opacities"]),
                          per_gauss, vm, K, 16, 16)
    assert torch.allclose(feat, ref[..., :6], atol=1e-4)
    assert torch.allclose(sel, torch.softmax(ref[..., 6:], -1), atol=1e-5)
    assert torch.allclose(sel.sum(-1), torch.ones(1), atol=1e-5)
    if selection == "sigmoid":  # the release's selection can never be sharper than e / (e + 2)
        assert sel.max() <= math.e / (math.e + 2) + 1e-5
    fixed = WeaksegHead(WeaksegModelConfig(feature_dim=5, hidden=[7], fixed_scale=2), clip_dim=6)
    _, one = render_channels(p, fixed, vm, K, 16, 16)
    assert torch.equal(one[..., 2], torch.ones_like(one[..., 2]))


def test_affine_decoder_is_one_affine_map():
    g = torch.Generator().manual_seed(5)
    dec = AffineDecoder(4, [6, 6], 3)
    a, b = torch.randn(4, generator=g), torch.randn(4, generator=g)
    # the bias follows the opacity: decode(w1 a + w2 b, w1 + w2) = w1 decode(a) + w2 decode(b)
    assert torch.allclose(dec(0.3 * a + 0.5 * b, torch.tensor([0.8])), 0.3 * dec(a) + 0.5 * dec(b), atol=1e-5)


def test_crop_grid_follows_the_release():
    assert window_starts(20, 6, 1).tolist() == list(range(15))
    assert window_starts(21, 8, 2).tolist() == [0, 2, 4, 6, 8, 10, 12, 14]  # 13 // 2 + 1 + (13 % 2 > 0)
    boxes = crop_boxes(21, 30, 8, None)
    assert boxes[:, 2].max() == 21 and boxes[:, 3].max() == 30  # the last windows are clipped
    rng = np.random.default_rng(0)
    jit = crop_boxes(21, 30, 8, rng)
    base = crop_boxes(21, 30, 8, None)
    assert ((base[:, :2] - jit[:, :2]) >= 0).all() and ((base[:, :2] - jit[:, :2]) <= 2).all()
    assert ((jit[:, 2:] - base[:, 2:]) >= 0).all() and ((jit[:, 2:] - base[:, 2:]) <= 2).all()
    assert np.array_equal(jit, crop_boxes(21, 30, 8, np.random.default_rng(0)))  # seeded
    sq = seen_square(np.array([[0, 0, 4, 10]]))
    assert sq.tolist() == [[0, 3, 4, 7]]
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    m = pixel_mean(np.array([[0, 0, 2, 2], [1, 1, 3, 3]]), emb, 3, 3)
    assert m[1, 1].tolist() == [0.5, 0.5] and m[0, 0].tolist() == [1.0, 0.0] and m[2, 0].tolist() == [0.0, 0.0]
