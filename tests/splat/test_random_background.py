"""Random backgrounds for views with alpha: the dataset keeps alpha, the target is re-composited, and a
background-coloured floater that every training view hides is pushed out (it is not without them)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from ccl_gs.splat.gaussians import InitConfig, make_optimizers, rgb_to_sh0
from ccl_gs.splat.strategy import DensifyConfig
from ccl_gs.splat.trainer import RGBTrainConfig, Trainer, load_datasets

REPO = Path(__file__).resolve().parents[2]
LEGO = REPO.parent / "shared" / "data" / "nerf_synthetic_lego_small"

pytestmark = pytest.mark.skipif(not LEGO.is_dir(), reason=f"shared lego data not found at {LEGO}")


def lego_cfg(tmp_path: Path, **kw) -> RGBTrainConfig:
    base = RGBTrainConfig(
        data=LEGO,
        out=tmp_path / "run",
        factor=8,
        iterations=40,
        sh_degree=0,
        init=InitConfig(n_random=64),
        densify=DensifyConfig(refine_start_iter=10**6),
        save_renders=False,
        progress=False,
    )
    return dataclasses.replace(base, **kw)


def test_dataset_keeps_alpha_of_blender_views(tmp_path):
    _, train, _ = load_datasets(lego_cfg(tmp_path), torch.device("cpu"))
    item = train[0]
    alpha, image = item["alpha"], item["image"]
    assert alpha.shape == (*image.shape[:2], 1)
    assert 0.05 < float(alpha.mean()) < 0.95
    empty = alpha[..., 0] == 0
    torch.testing.assert_close(image[empty], torch.ones_like(image[empty]))  # composited on white


def test_target_is_recomposited_on_the_random_colour(tmp_path):
    scene, train, _ = load_datasets(lego_cfg(tmp_path), torch.device("cpu"))
    item = train[0]
    t = Trainer(lego_cfg(tmp_path), train, scene)
    target, bg = t.training_target(item)
    assert not torch.allclose(bg, t.background)
    a = item["alpha"][..., 0]
    torch.testing.assert_close(target[0][a == 0], bg.expand(int((a == 0).sum()), 3))
    torch.testing.assert_close(target[0][a == 1], item["image"][a == 1])
    t_off = Trainer(lego_cfg(tmp_path, random_background=False), train, scene)
    target_off, bg_off = t_off.training_target(item)
    assert torch.equal(target_off[0], item["image"]) and torch.equal(bg_off, t_off.background)


def _one_white_floater(t: Trainer, item: dict) -> None:
    """Replace the Gaussians by one opaque-ish white Gaussian in front of view ``item``'s top-left corner."""
    K, c2w = item["K"].double(), torch.linalg.inv(item["viewmat"].double())
    ray = torch.linalg.solve(K, torch.tensor([6.0, 6.0, 1.0], dtype=torch.float64))
    point = (c2w[:3, :3] @ (ray * 0.6) + c2w[:3, 3]).float()
    with torch.no_grad():
        p = {k: v[:1].clone() for k, v in t.params.items()}
        p["means"][0] = point
        p["scales"][0] = math.log(0.01)
        p["quats"][0] = torch.tensor([1.0, 0.0, 0.0, 0.0])
        p["opacities"][0] = 0.0
        p["sh0"][0] = rgb_to_sh0(torch.ones(1, 3))
        p["shN"].zero_()
    t.params = torch.nn.ParameterDict({k: torch.nn.Parameter(v) for k, v in p.items()})
    t.optimizers = make_optimizers(t.params, t.cfg.lr, t.scene_scale)
    t.strategy_state = t.strategy.initialize_state(scene_scale=t.scene_scale)


def _floater_trainer(tmp_path: Path, random_background: bool) -> tuple[Trainer, dict]:
    cfg = lego_cfg(tmp_path, random_background=random_background)
    scene, train, _ = load_datasets(cfg, torch.device("cpu"))
    t = Trainer(cfg, train, scene)
    item = train[0]
    assert float(item["alpha"][:12, :12].max()) == 0.0, "the corner of view 0 must be background"
    _one_white_floater(t, item)
    with torch.no_grad():
        _, alphas, _ = t.render(item)
    assert float(alphas[0, :12, :12].max()) > 0.3, "the floater must cover the corner"
    return t, item


@pytest.mark.parametrize("random_background", [True, False])
def test_white_floater_gets_a_gradient_only_on_random_backgrounds(tmp_path, random_background):
    t, item = _floater_trainer(tmp_path, random_background)
    grads = []
    for _ in range(4):
        target, bg = t.training_target(item)
        colors, _, _ = t.render(item, background=bg)
        loss = t.rgb_loss(colors[..., :3], target)
        (g,) = torch.autograd.grad(loss, t.params["opacities"])
        grads.append(float(g[0]))
    if random_background:
        assert min(grads) > 1e-4, f"the loss should push the floater's opacity down: {grads}"
    else:
        assert max(abs(x) for x in grads) < 1e-6, f"white on white should give no gradient: {grads}"


def test_white_floater_fades_when_trained_on_random_backgrounds(tmp_path):
    t, item = _floater_trainer(tmp_path, True)
    t._order = [0] * t.cfg.iterations
    for _ in range(t.cfg.iterations):
        t.step()
    opacity = float(torch.sigmoid(t.params["opacities"].detach()[0]))
    assert opacity < 0.3, f"a floater over the background should fade, opacity {opacity:.3f}"
