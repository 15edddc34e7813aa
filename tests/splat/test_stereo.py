"""Stereo seeding: the plane sweep finds a textured surface, respects alpha, and falls back when nothing matches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ccl_gs.data.scene import Camera, Scene
from ccl_gs.splat.gaussians import InitConfig
from ccl_gs.splat.seeding import init_region, seed_points, sweep_range
from ccl_gs.splat.stereo import StereoConfig, StereoView, neighbour_views, stereo_points
from test_seeding import look_at  # noqa: E402 (tests/splat is on the path)

W = H = 64
F = 60.0


def texture(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A colourful non-repeating texture of the plane z = 0: ``[..., 3]`` in [0, 1]."""
    return np.stack([0.5 + 0.5 * np.sin(7.1 * x + 2.3 * np.sin(3.7 * y)),
                     0.5 + 0.5 * np.sin(5.3 * y + 1.9 * np.cos(4.1 * x)),
                     0.5 + 0.5 * np.sin(3.3 * (x + y) + np.sin(9.0 * x * y))], -1)


def plane_views(eyes: list[np.ndarray], alpha_disc: float | None = None) -> tuple[list[StereoView], np.ndarray]:
    """Exact renders of the textured plane z = 0 from cameras at ``eyes`` looking at the origin.

    With ``alpha_disc`` the views carry alpha, 1 inside the disc of that radius on the plane, 0 outside.
    """
    K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1.0]])
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    views, viewmats = [], []
    for eye in eyes:
        vm = look_at(eye, np.zeros(3), up=np.array([0.0, 1.0, 0.0]))  # level cameras: little roll between views
        c2w = np.linalg.inv(vm)
        d = np.stack([(u - W / 2) / F, (v - H / 2) / F, np.ones_like(u)], -1) @ c2w[:3, :3].T
        t = -eye[2] / d[..., 2]
        p = eye + t[..., None] * d
        img = texture(p[..., 0], p[..., 1]).astype(np.float32)
        alpha = None
        if alpha_disc is not None:
            alpha = torch.from_numpy((np.hypot(p[..., 0], p[..., 1]) < alpha_disc).astype(np.float32)[..., None])
        views.append(StereoView(torch.from_numpy(img), torch.from_numpy(vm).float(), torch.from_numpy(K).float(),
                                near=1.0, far=8.0, alpha=alpha))
        viewmats.append(vm)
    return views, np.stack(viewmats)


def eyes_above(n: int = 6, height: float = 3.0, radius: float = 1.0) -> list[np.ndarray]:
    a = 2 * np.pi * np.arange(n) / n
    return [np.array([radius * np.cos(t), radius * np.sin(t), height]) for t in a]


def test_sweep_lands_on_the_textured_plane():
    views, _ = plane_views(eyes_above())
    pts, cols, stats = stereo_points(views, 2000, torch.Generator().manual_seed(0), StereoConfig(depths=96))
    assert len(pts) == 2000 and stats["kept"] > 0.8 * stats["rays"]
    # 96 disparity steps between depths 1 and 8 are ~0.09 apart near depth 3.2: the winning step is within half of it
    z = pts[:, 2].abs()
    assert z.median() < 0.03 and (z < 0.05).float().mean() > 0.9
    # each point carries the colour of the plane where it landed
    expect = torch.from_numpy(texture(pts[:, 0].numpy(), pts[:, 1].numpy())).float()
    assert (cols - expect).abs().max(1).values.median() < 0.05


def test_sweep_survives_photo_noise():
    """Phone photos are noisy (noise of std 0.05 on [0, 1] colours, no reduction at this size)."""
    views, _ = plane_views(eyes_above())
    g = torch.Generator().manual_seed(5)
    for v in views:
        v.image = (v.image + 0.05 * torch.randn(v.image.shape, generator=g)).clamp(0, 1)
    pts, _, stats = stereo_points(views, 2000, torch.Generator().manual_seed(0), StereoConfig(depths=96))
    assert stats["kept"] > 0.8 * stats["rays"]
    assert (pts[:, 2].abs() < 0.05).float().mean() > 0.85


def test_alpha_limits_the_seeds_to_the_object():
    views, _ = plane_views(eyes_above(), alpha_disc=0.4)
    pts, _, stats = stereo_points(views, 1000, torch.Generator().manual_seed(1))
    assert stats["rays"] > 0 and len(pts) > 500
    assert np.hypot(pts[:, 0].numpy(), pts[:, 1].numpy()).max() < 0.45


def test_inconsistent_views_match_nothing_and_fall_back_to_random(monkeypatch):
    views, viewmats = plane_views(eyes_above())
    g = torch.Generator().manual_seed(2)
    for v in views:  # independent noise in every view: no depth is photo-consistent
        v.image = torch.rand(v.image.shape, generator=g)
    pts, _, stats = stereo_points(views, 500, torch.Generator().manual_seed(3))
    assert stats["kept"] < 0.02 * stats["rays"]

    cam = Camera(W, H, F, F, W / 2, H / 2)
    scene = Scene(name="t", root=Path("."), image_paths=[Path(f"{i}.png") for i in range(6)], cameras=[cam] * 6,
                  viewmats=viewmats, bounds=np.tile([[1.0, 8.0]], (6, 1)))
    items = [{"image": v.image, "viewmat": v.viewmat, "K": v.K, "index": i} for i, v in enumerate(views)]
    region = init_region(scene, InitConfig())
    p, c, note = seed_points(scene, items, region, InitConfig(n_random=500), torch.Generator().manual_seed(4))
    assert len(p) == 500 and "matched only" in note and "random init" in note


def test_sweep_range_uses_bounds_then_camera_distance():
    views, viewmats = plane_views(eyes_above())
    cam = Camera(W, H, F, F, W / 2, H / 2)
    mk = lambda bounds: Scene(name="t", root=Path("."), image_paths=[Path(f"{i}.png") for i in range(6)],  # noqa: E731
                              cameras=[cam] * 6, viewmats=viewmats, bounds=bounds)
    with_bounds = mk(np.tile([[2.0, 9.0]], (6, 1)))
    near, far = sweep_range(with_bounds, init_region(with_bounds, InitConfig()), 0)
    assert near == pytest.approx(1.6) and far == pytest.approx(9.0)
    bare = mk(None)
    region = init_region(bare, InitConfig())
    near, far = sweep_range(bare, region, 0)
    dist = float(np.linalg.norm(bare.camera_centers[0] - region.center))
    assert region.kind == "object" and near == pytest.approx(0.2 * dist) and far == pytest.approx(region.far[0])


def test_neighbours_are_the_nearest_other_cameras():
    _, viewmats = plane_views(eyes_above(8))
    nb = neighbour_views(torch.from_numpy(viewmats).float(), 2)
    assert nb.shape == (8, 2)
    for i in range(8):
        assert sorted(nb[i].tolist()) == sorted([(i - 1) % 8, (i + 1) % 8])


def test_bad_seeding_name_is_refused():
    with pytest.raises(ValueError, match="init.seeding"):
        InitConfig(seeding="sfm")


def test_orbit_without_points_trains_better_from_stereo_seeds(tmp_path):
    """A generated 360 orbit of a room without sparse points (the capture LERF's own scenes are):
    random starting points leave floaters in front of the lenses; photo-consistent ones do not."""
    from ccl_gs.data.synthetic import generate
    from ccl_gs.data.synthetic.generator import SyntheticConfig
    from ccl_gs.data.synthetic.writers import OutputConfig
    from ccl_gs.splat.trainer import RGBTrainConfig, run

    (root,) = generate(SyntheticConfig(seed=0, views=16, size=64, path="orbit", supersample=1),
                       OutputConfig(out=tmp_path / "data", layout="3dovs", points=0, simulate=False))
    psnr = {}
    for seeding in ("stereo", "random"):
        cfg = RGBTrainConfig(data=root, out=tmp_path / seeding, format="llff", factor=1, iterations=200,
                             init=InitConfig(seeding=seeding, n_random=5000), progress=False)
        psnr[seeding] = run(cfg)["psnr"]
    # measured: stereo 19.7 dB, random 17.1 dB held out
    assert psnr["stereo"] > psnr["random"] + 1.5 and psnr["stereo"] > 19.0, psnr
