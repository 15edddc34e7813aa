"""The LERF model's losses and rendering rules on small cases."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ccl_gs.lerf.fields import LanguageFieldConfig
from ccl_gs.lerf.model import LerfModel, LerfModelConfig, NerfactoConfig, RayBatch

TINY = LerfModelConfig(
    nerf=NerfactoConfig(levels=4, max_res=32, log2_table=10, proposal_samples=[16], proposal_max_res=[16],
                        proposal_log2_table=8, nerf_samples=8),
    language=LanguageFieldConfig(grid_levels=[3], grid_min_res=[4], grid_max_res=[16], log2_table=10, clip_hidden=16,
                                 clip_layers=1, dino_hidden=16),
    lerf_samples=4,
)


def _rays(R=32):
    torch.manual_seed(0)
    return RayBatch(torch.zeros(R, 3), F.normalize(torch.randn(R, 3), dim=-1), torch.full((R,), 2.0))


def test_language_losses_match_the_formulas():
    torch.manual_seed(0)
    m = LerfModel(TINY, clip_dim=6, dino_dim=5)
    rays = _rays()
    out = m(rays, step=3)
    R = rays.origins.shape[0]
    tg = {"rgb": torch.rand(R, 3), "clip": F.normalize(torch.randn(R, 6), dim=-1) * 0.9, "scale": torch.rand(R),
          "dino": torch.randn(R, 5)}
    terms = m.losses(out, rays, tg)
    w, enc, t = out["lerf_weights"], out["lerf_enc"], out["lerf_t"]
    # the scale fed to the CLIP head: s * H * t / fy per sample
    scale = tg["scale"][:, None] * 2.0 * t
    clip_k = F.normalize(m.language.clip_net(torch.cat([enc, scale[..., None]], -1)), dim=-1)
    clip = F.normalize((w[..., None] * clip_k).sum(1), dim=-1)
    d = clip - tg["clip"]
    huber = torch.where(d.abs() < 1.25, 0.5 * d**2, 1.25 * (d.abs() - 0.5 * 1.25))
    assert torch.allclose(terms["clip"], (0.1 * huber).sum(-1).mean(), atol=1e-6)
    dino = (w[..., None] * m.language.dino_net(enc)).sum(1)
    assert torch.allclose(terms["dino"], ((dino - tg["dino"]) ** 2).sum(-1).mean(), atol=1e-5)
    assert torch.allclose(terms["rgb"], ((out["rgb"] - tg["rgb"]) ** 2).mean())


def test_language_never_reaches_the_geometry():
    torch.manual_seed(0)
    m = LerfModel(TINY, clip_dim=6, dino_dim=5)
    rays = _rays()
    out = m(rays, step=0)
    R = rays.origins.shape[0]
    terms = m.losses(out, rays, {"rgb": torch.rand(R, 3), "clip": torch.randn(R, 6), "scale": torch.rand(R),
                                 "dino": torch.randn(R, 5)})
    (terms["clip"] + terms["dino"]).backward()
    assert all(p.grad is None or not p.grad.any() for p in m.nerf.parameters())
    assert all(p.grad is None or not p.grad.any() for p in m.proposals.parameters())
    assert any(p.grad is not None and p.grad.any() for p in m.language.parameters())


def test_topk_weights_are_the_largest_and_not_renormalized():
    torch.manual_seed(0)
    m = LerfModel(TINY, clip_dim=6, dino_dim=5)
    out = m(_rays(), step=None)
    top = out["lerf_weights"]
    assert torch.allclose(top.sort(-1).values, out["weights"].sort(-1).values[:, -4:])
    assert not top.requires_grad
    assert (top.sum(-1) <= out["weights"].sum(-1) + 1e-6).all()


def test_white_background_and_last_sample():
    torch.manual_seed(0)
    m = LerfModel(TINY, clip_dim=6, dino_dim=5, white_background=True)
    with torch.no_grad():
        for p in m.nerf.density_net.parameters():
            p.fill_(0)
        m.nerf.density_net[-1].bias.fill_(-30.0)  # empty space
    out = m(_rays(), step=None, language=False)
    assert torch.allclose(out["rgb"], torch.ones_like(out["rgb"]), atol=1e-4)
