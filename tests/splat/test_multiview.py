"""Multi-view consistency loss: lowest at the true depth of a textured plane, its gradient points there,
it ignores pixels no neighbour sees, and it plugs into the trainer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from ccl_gs.splat.multiview import MultiViewConfig, WarpConsistency
from ccl_gs.splat.stereo import StereoView
from test_stereo import eyes_above, plane_views  # noqa: E402 (tests/splat is on the path)


def items_of(views: list[StereoView]) -> list[dict]:
    """Training-set items (the fields the loss reads) of plane views."""
    return [{"image": v.image, "viewmat": v.viewmat, "K": v.K, **({} if v.alpha is None else {"alpha": v.alpha})}
            for v in views]


def plane_depth(view: StereoView) -> torch.Tensor:
    """``[H, W, 1]`` camera-space depth of the plane z = 0 at every pixel centre of ``view``."""
    H, W = view.image.shape[:2]
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    K = view.K.double().numpy()
    c2w = np.linalg.inv(view.viewmat.double().numpy())
    d = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ c2w[:3, :3].T
    z = -c2w[2, 3] / d[..., 2]  # rays have camera z = 1, so the ray parameter is the depth
    return torch.from_numpy(z).float()[..., None]


def loss_at(wc: WarpConsistency, depth: torch.Tensor) -> torch.Tensor:
    return wc.loss(0, depth, torch.Generator().manual_seed(0))


def test_loss_is_lowest_at_the_true_depth_and_its_gradient_points_there():
    views, _ = plane_views(eyes_above())
    wc = WarpConsistency(items_of(views), MultiViewConfig(weight=1.0, pixels=2000))
    true = plane_depth(views[0])
    at_truth = float(loss_at(wc, true))
    for s in (0.9, 0.97, 1.03, 1.1):
        assert float(loss_at(wc, true * s)) > at_truth + 0.01, s
    for s in (0.95, 1.05):
        depth = (true * s).requires_grad_(True)
        loss_at(wc, depth).backward()
        g = depth.grad
        assert g.abs().sum() > 0
        # Descending the gradient moves the sampled depths towards the plane.
        assert float((g * (depth.detach() - true)).sum()) > 0, s


def test_only_pixels_with_alpha_and_seen_by_neighbours_count():
    views, _ = plane_views(eyes_above(), alpha_disc=0.6)
    wc = WarpConsistency(items_of(views), MultiViewConfig(weight=1.0, pixels=500))
    cand = wc._candidates[0]
    alpha = views[0].alpha[..., 0]
    assert len(cand) == int((alpha >= 0.5).sum())
    assert bool((alpha[cand[:, 1].long(), cand[:, 0].long()] >= 0.5).all())
    # Where nothing was rendered (zero depth) there is no term: zero loss, still with a graph.
    depth = torch.zeros_like(plane_depth(views[0])).requires_grad_(True)
    loss = loss_at(wc, depth)
    assert float(loss.detach()) == 0.0 and loss.requires_grad


def test_config_refuses_bad_values():
    for kw in ({"weight": -1.0}, {"pixels": 0}, {"best_views": 5, "neighbours": 4}, {"start": 1.5}):
        with pytest.raises(ValueError, match="--multiview"):
            MultiViewConfig(**kw)


REPO = Path(__file__).resolve().parents[2]
LEGO = REPO.parent / "shared" / "data" / "nerf_synthetic_lego_small"


@pytest.mark.skipif(not LEGO.is_dir(), reason=f"shared lego data not found at {LEGO}")
def test_trainer_adds_the_loss_after_its_start(tmp_path):
    from test_random_background import lego_cfg

    from ccl_gs.splat.trainer import Trainer, load_datasets

    cfg = lego_cfg(tmp_path, iterations=6, multiview=MultiViewConfig(weight=1.0, start=0.5, pixels=256))
    scene, train, _ = load_datasets(cfg, torch.device("cpu"))
    with_mv = Trainer(cfg, train, scene)  # each trainer seeds torch's generator: run one after the other
    a = [with_mv.step()["loss"] for _ in range(6)]
    without = Trainer(dataclasses.replace(cfg, multiview=MultiViewConfig()), train, scene)
    b = [without.step()["loss"] for _ in range(6)]
    assert without.multiview is None and with_mv.multiview is not None
    losses = list(zip(a, b))
    # Same start and same views: identical until step 3, where the extra term adds to the same RGB loss.
    for a, b in losses[:3]:
        assert a == pytest.approx(b, rel=1e-5)
    assert losses[3][0] > losses[3][1] + 1e-4
    assert all(np.isfinite(a) for a, _ in losses)
