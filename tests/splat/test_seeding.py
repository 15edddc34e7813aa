"""Random initialization without sparse points: which volume, and the points inside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ccl_gs.data.scene import Camera, Scene
from ccl_gs.splat.gaussians import InitConfig, init_gaussians
from ccl_gs.splat.seeding import init_region, random_points, visible_radius


def look_at(eye: np.ndarray, target: np.ndarray, up=np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """World-to-camera ``[4, 4]`` (OpenCV axes) of a camera at ``eye`` looking at ``target``."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([x, y, z], 1)
    c2w[:3, 3] = eye
    return np.linalg.inv(c2w)


def scene_of(eyes: list[np.ndarray], target: np.ndarray, white: bool = False, bounds=None) -> Scene:
    cam = Camera(80, 60, 100.0, 100.0, 40.0, 30.0)
    V = len(eyes)
    return Scene(
        name="t", root=Path("."), image_paths=[Path(f"{i}.png") for i in range(V)], cameras=[cam] * V,
        viewmats=np.stack([look_at(e, target) for e in eyes]), white_background=white, bounds=bounds,
    )


def orbit(n: int = 12, radius: float = 4.0, height: float = 1.5, target=np.zeros(3), **kw) -> Scene:
    a = 2 * np.pi * np.arange(n) / n
    return scene_of([np.array([radius * np.cos(t), radius * np.sin(t), height]) for t in a], target, **kw)


def project(scene: Scene, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``[V, N, 2]`` and depths ``[V, N]`` of world points in every view."""
    hom = np.concatenate([pts, np.ones((len(pts), 1))], 1)
    cam = np.einsum("vij,nj->vni", scene.viewmats, hom)[..., :3]
    c = scene.cameras[0]
    uv = np.stack([c.fx * cam[..., 0] / cam[..., 2] + c.cx, c.fy * cam[..., 1] / cam[..., 2] + c.cy], -1)
    return uv, cam[..., 2]


def test_object_capture_fills_the_radius_every_camera_sees():
    scene = orbit(white=True)
    region = init_region(scene, InitConfig())
    d = np.sqrt(4.0**2 + 1.5**2)
    assert region.kind == "object" and region.background == 0.0
    np.testing.assert_allclose(region.center, 0.0, atol=1e-9)
    assert region.half == pytest.approx(d * 30 / 100)  # min(W / 2fx, H / 2fy) = 0.3
    pts, rgb = random_points(scene, region, 4000, torch.Generator().manual_seed(0))
    assert pts.shape == (4000, 3) and rgb.shape == (4000, 3) and 0 <= rgb.min() and rgb.max() <= 1
    assert pts.abs().max() <= region.half + 1e-5
    # the old rule (1.5 scene scales) put the cameras inside the cube; this one keeps them out
    assert (np.abs(scene.camera_centers) > region.half).any(1).all()
    uv, depth = project(scene, pts.numpy().astype(np.float64))
    inside = (depth > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < 80) & (uv[..., 1] >= 0) & (uv[..., 1] < 60)
    assert inside.mean() > 0.8  # nearly every start point is seen by (nearly) every camera


def test_background_share_lies_behind_the_object_inside_some_view():
    scene = orbit(bounds=np.tile([[0.5, 9.0]], (12, 1)))
    region = init_region(scene, InitConfig(n_random=1000))
    assert region.background == pytest.approx(0.3)
    np.testing.assert_allclose(region.far, 9.0)
    pts, _ = random_points(scene, region, 1000, torch.Generator().manual_seed(1))
    bg = pts[700:].numpy().astype(np.float64)
    assert np.abs(bg).max(1).min() > 0.0 and (np.abs(bg).max(1) > region.half).mean() > 0.9
    uv, depth = project(scene, bg)
    seen = (depth > 0) & (uv[..., 0] >= 0) & (uv[..., 0] <= 80) & (uv[..., 1] >= 0) & (uv[..., 1] <= 60)
    assert seen.any(0).all()  # each lies on a ray of some view
    dist = np.linalg.norm(scene.camera_centers[0])
    own = np.where(seen, depth, np.inf).min(0)  # depth in the nearest view that sees it
    assert own.max() <= 9.0 + 1e-6 and own.max() > dist + region.half

    explicit = init_region(scene, InitConfig(random_extent=2.0, background_fraction=0.0))
    assert explicit.half == pytest.approx(2 * region.half) and explicit.background == 0.0


def test_forward_facing_keeps_the_scene_scale_cube_bit_for_bit():
    eyes = [np.array([x, -3.0, 1.0]) for x in np.linspace(-0.3, 0.3, 6)]
    scene = scene_of(eyes, np.array([0.0, 1e6, 1.0]))  # parallel axes: no focus
    cfg = InitConfig(n_random=500)
    region = init_region(scene, cfg)
    assert region.kind == "forward" and region.half == pytest.approx(1.5 * scene.scene_scale)
    params = init_gaussians(None, None, 1, cfg, seed=3,
                            random_init=lambda g: random_points(scene, region, cfg.n_random, g))
    g = torch.Generator().manual_seed(3)
    c = torch.as_tensor(scene.camera_centers.mean(0), dtype=torch.float32)
    old = c + 1.5 * scene.scene_scale * (torch.rand(500, 3, generator=g) * 2 - 1)
    assert torch.equal(params["means"].detach(), old)


def test_visible_radius_is_the_median_over_views():
    scene = orbit(n=4, radius=2.0, height=0.0)
    r, dist = visible_radius(scene, np.zeros(3))
    np.testing.assert_allclose(dist, 2.0)
    assert r == pytest.approx(0.6)


@pytest.mark.parametrize("kw,match", [
    (dict(n_random=0), "n-random"), (dict(random_extent=0.0), "random-extent"),
    (dict(background_fraction=1.0), "background-fraction"), (dict(init_opacity=1.0), "init-opacity"),
])
def test_bad_init_options_name_the_flag(kw, match):
    with pytest.raises(ValueError, match=match):
        InitConfig(**kw)
