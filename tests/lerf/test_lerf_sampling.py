"""Samplers, weights and the proposal losses on small cases."""

from __future__ import annotations

import torch

from ccl_gs.lerf.sampling import (
    camera_rays,
    distortion_loss,
    interlevel_loss,
    pdf_bins,
    render_weights,
    s_to_t,
    uniform_lindisp_bins,
)


def test_s_space_endpoints_and_monotone():
    s = torch.linspace(0, 1, 11)[None]
    t = s_to_t(s, 0.05, 1000.0)
    assert torch.allclose(t[0, 0], torch.tensor(0.05)) and torch.allclose(t[0, -1], torch.tensor(1000.0), rtol=1e-3)
    assert (t[0, 1:] > t[0, :-1]).all()


def test_render_weights_single_opaque_sample():
    t = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    w = render_weights(torch.tensor([[0.0, 1e4, 5.0]]), t)
    assert torch.allclose(w, torch.tensor([[0.0, 1.0, 0.0]]), atol=1e-6)


def test_distortion_loss_matches_quadratic_form():
    torch.manual_seed(0)
    s = torch.sort(torch.rand(3, 9), -1).values
    w = torch.rand(3, 8)
    mid = 0.5 * (s[:, 1:] + s[:, :-1])
    brute = (w[:, :, None] * w[:, None, :] * (mid[:, :, None] - mid[:, None, :]).abs()).sum((1, 2))
    brute = brute + (w**2 * (s[:, 1:] - s[:, :-1])).sum(-1) / 3
    assert torch.allclose(distortion_loss(s, w), brute.mean(), atol=1e-6)


def test_interlevel_loss_zero_when_proposal_bounds_final():
    s = torch.linspace(0, 1, 5)[None]
    w = torch.tensor([[0.1, 0.5, 0.3, 0.1]])
    assert float(interlevel_loss((s, w), [(s, w)])) < 1e-9
    # a proposal that misses the mass is penalized
    low = torch.tensor([[0.5, 0.0, 0.0, 0.5]])
    assert float(interlevel_loss((s, w), [(s, low)])) > 0.1
    # a coarse proposal with one bin holding everything bounds any final histogram
    coarse = torch.tensor([[0.0, 1.0]])
    assert float(interlevel_loss((s, w), [(coarse, torch.ones(1, 1))])) < 1e-9


def test_pdf_bins_concentrate_on_the_weight():
    s = torch.linspace(0, 1, 11)[None].repeat(2, 1)
    w = torch.zeros(2, 10)
    w[:, 6] = 1.0
    out = pdf_bins(s, w, 32, jitter=False, padding=0.0)
    assert out.shape == (2, 33) and (out[:, 1:] >= out[:, :-1]).all()
    assert ((out >= 0.6 - 1e-6) & (out <= 0.7 + 1e-6)).float().mean() > 0.9
    j = pdf_bins(s, w, 32, jitter=True)
    assert (j[:, 1:] >= j[:, :-1]).all()


def test_uniform_bins_and_rays():
    b = uniform_lindisp_bins(4, 8, jitter=True)
    assert b.shape == (4, 9) and (b[:, 1:] >= b[:, :-1]).all()
    c2w = torch.eye(4)
    K = torch.tensor([[10.0, 0, 5.0], [0, 10.0, 5.0], [0, 0, 1]])
    _, d = camera_rays(c2w, K, torch.tensor([4]), torch.tensor([4]))
    assert torch.allclose(d, torch.tensor([[-0.05, -0.05, 1.0]]) / torch.tensor([0.05**2 * 2 + 1]).sqrt(), atol=1e-6)
    # a uniform scale in the rotation block does not change the unit directions
    c2w_s = c2w.clone()
    c2w_s[:3, :3] *= 0.21
    _, d2 = camera_rays(c2w_s, K, torch.tensor([4]), torch.tensor([4]))
    assert torch.allclose(d, d2, atol=1e-6)
