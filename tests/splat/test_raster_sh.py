"""The numba SH colour kernels against gsplat's PyTorch SH (values and gradients)."""

from __future__ import annotations

import pytest
import torch
from gsplat.cuda._torch_impl import _spherical_harmonics

from ccl_gs.splat._sh import sh_colors


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("per_camera", [False, True])
def test_sh_colors_match_gsplat_torch(degree, per_camera):
    g = torch.Generator().manual_seed(degree)
    N, C = 40, 3
    means = torch.randn(N, 3, generator=g).requires_grad_(True)
    campos = torch.randn(C, 3, generator=g)
    sh = (torch.randn((C, N, 16, 3) if per_camera else (N, 16, 3), generator=g) * 0.5).requires_grad_(True)
    visible = torch.rand(C, N, generator=g) > 0.2
    out = sh_colors(means, sh, campos, degree, visible)
    w = torch.randn(out.shape, generator=g)
    got = torch.autograd.grad((out * w).sum(), [means, sh], allow_unused=True, materialize_grads=True)

    dirs = means[None] - campos[:, None]
    coeffs = sh if per_camera else sh[None].expand(C, N, 16, 3)
    ref = torch.clamp_min(_spherical_harmonics(degree, dirs, coeffs) + 0.5, 0.0)
    ref = torch.where(visible[..., None], ref, torch.full_like(ref, 0.5))  # skipped pairs: SH term 0

    assert out.shape == (C, N, 3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    # gradients only flow through visible pairs in both
    vis_w = visible[..., None].float()
    want = torch.autograd.grad((ref * w * vis_w).sum(), [means, sh], allow_unused=True, materialize_grads=True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    if degree > 0:
        assert got[0].abs().max() > 0, "view direction must pass gradients to the means"


def test_sh_degree_out_of_range():
    with pytest.raises(ValueError, match="degree"):
        sh_colors(torch.zeros(1, 3), torch.zeros(1, 25, 3), torch.ones(1, 3), 4, torch.ones(1, 1, dtype=torch.bool))
