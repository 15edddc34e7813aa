"""SceneDataset: splits, shapes, resizing, alpha compositing, undistortion."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ccl_gs.data import Camera, Scene, load_scene
from ccl_gs.data.dataset import DataConfig, SceneDataset, Undistorter, target_size

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FERN = DATA / "llff_fern"
LEGO = DATA / "nerf_synthetic_lego_small"


def tiny_scene(root: Path, n: int = 10, rgba: bool = False, camera: Camera | None = None, white: bool = False) -> Scene:
    rng = np.random.default_rng(0)
    cam = camera or Camera(20, 10, 15.0, 15.0, 10.0, 5.0)
    paths = []
    for i in range(n):
        p = root / f"v{i:02d}.png"
        ch = 4 if rgba else 3
        Image.fromarray(rng.integers(0, 255, (cam.height, cam.width, ch), dtype=np.uint8)).save(p)
        paths.append(p)
    vms = np.repeat(np.eye(4)[None], n, 0)
    vms[:, 2, 3] = np.arange(n) + 1.0
    return Scene("tiny", root, paths, [cam] * n, vms, white_background=white)


def test_splits_follow_the_every_eighth_rule(tmp_path):
    scene = tiny_scene(tmp_path, n=17)
    train, test = SceneDataset(scene, "train"), SceneDataset(scene, "test")
    assert test.indices == [0, 8, 16] and len(train) == 14 and not set(train.indices) & set(test.indices)
    assert len(SceneDataset(scene, "all")) == 17
    assert SceneDataset(scene, "test", test_every=5).indices == [0, 5, 10, 15]
    assert len(SceneDataset(scene, "test", test_every=0)) == 0
    assert SceneDataset(scene, "test", test_every=0).stacked()["images"].shape[0] == 0
    with pytest.raises(ValueError, match="split"):
        SceneDataset(scene, "val")


def test_items_and_stack_shapes(tmp_path):
    scene = tiny_scene(tmp_path, n=9)
    ds = SceneDataset(scene, "train")
    item = ds[2]
    assert item["image"].shape == (10, 20, 3) and item["image"].dtype == torch.float32
    assert item["viewmat"].shape == (4, 4) and item["viewmat"].dtype == torch.float32
    assert item["K"].shape == (3, 3) and item["K"].dtype == torch.float32
    assert item["index"] == 3 and (item["width"], item["height"]) == (20, 10)
    assert float(item["viewmat"][2, 3]) == 4.0  # the view's own pose
    expected = np.asarray(Image.open(scene.image_paths[3]), np.float32) / 255.0
    np.testing.assert_allclose(item["image"].numpy(), expected, atol=1e-6)
    b = ds.stacked()
    assert b["images"].shape == (7, 10, 20, 3) and b["viewmats"].shape == (7, 4, 4) and b["Ks"].shape == (7, 3, 3)
    assert b["indices"].tolist() == ds.indices and (b["width"], b["height"]) == (20, 10)


def test_resize_by_factor_or_width_scales_K(tmp_path):
    scene = tiny_scene(tmp_path, n=2)
    half = SceneDataset(scene, "all", downscale=2.0)[0]
    assert half["image"].shape == (5, 10, 3)
    np.testing.assert_allclose(half["K"].numpy(), [[7.5, 0, 5], [0, 7.5, 2.5], [0, 0, 1]])
    w = SceneDataset(scene, "all", width=40)[1]
    assert w["image"].shape == (20, 40, 3) and float(w["K"][0, 0]) == 30.0
    assert target_size(Camera(252, 189, 1, 1, 1, 1), downscale=2) == (126, 94)


def test_alpha_is_composited_on_the_scene_background(tmp_path):
    cam = Camera(4, 2, 3.0, 3.0, 2.0, 1.0)
    rgba = np.zeros((2, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[0, :, 3] = 255  # top row opaque red, bottom row transparent
    rgba[1, 0, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    for white, bg in ((True, 1.0), (False, 0.0)):
        scene = Scene("a", tmp_path, [tmp_path / "a.png"], [cam], np.eye(4)[None], white_background=white)
        img = SceneDataset(scene, "all")[0]["image"].numpy()
        np.testing.assert_allclose(img[0, 0], [1, 0, 0])
        np.testing.assert_allclose(img[1, 3], [bg, bg, bg])
        a = 128 / 255
        np.testing.assert_allclose(img[1, 0], [a + bg * (1 - a), bg * (1 - a), bg * (1 - a)], atol=1e-6)


def distort(x: np.ndarray, y: np.ndarray, k1: float, k2: float, p1: float, p2: float):
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2
    return x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y


@pytest.mark.parametrize("crop", [True, False])
def test_undistortion_geometry(crop):
    # An image whose value is its own (pixel-centre) coordinate: after undistortion each pixel must
    # hold the distorted position of its ray under the new pinhole K.
    cam = Camera(64, 48, 50.0, 52.0, 33.0, 23.5, "OPENCV", (0.08, -0.02, 0.003, -0.002))
    u, v = np.meshgrid(np.arange(64) + 0.5, np.arange(48) + 0.5)
    ramp = np.stack([u, v, np.zeros_like(u)], -1).astype(np.float32)
    out, new = Undistorter(crop=crop)(ramp, cam)
    assert new.model == "PINHOLE" and not new.has_distortion
    assert out.shape == (new.height, new.width, 3)
    if not crop:
        assert (new.fx, new.fy, new.cx, new.cy, new.width) == (cam.fx, cam.fy, cam.cx, cam.cy, cam.width)
    uo, vo = np.meshgrid(np.arange(new.width) + 0.5, np.arange(new.height) + 0.5)
    xd, yd = distort((uo - new.cx) / new.fx, (vo - new.cy) / new.fy, *cam.distortion)
    ud, vd = cam.fx * xd + cam.cx, cam.fy * yd + cam.cy
    inside = (ud > 0.5) & (ud < 63.5) & (vd > 0.5) & (vd < 47.5)
    assert inside.mean() > 0.9 if not crop else inside.all()
    np.testing.assert_allclose(out[..., 0][inside], ud[inside], atol=0.02)
    np.testing.assert_allclose(out[..., 1][inside], vd[inside], atol=0.02)


def test_dataset_undistorts_to_pinhole(tmp_path):
    cam = Camera(40, 30, 30.0, 30.0, 20.0, 15.0, "OPENCV", (0.1, 0.0, 0.0, 0.0))
    scene = tiny_scene(tmp_path, n=3, camera=cam)
    ds = SceneDataset(scene, "all", downscale=2.0)
    expected = Undistorter()(np.zeros((15, 20, 3), np.float32), cam.scaled(20, 15))[1]
    assert all(c == expected for c in ds.cameras) and expected.model == "PINHOLE"
    item = ds[0]
    assert item["image"].shape == (expected.height, expected.width, 3)
    np.testing.assert_allclose(item["K"].numpy(), expected.K(), rtol=1e-6)
    assert item["K"][0, 1] == 0 and item["K"][2, 2] == 1


@pytest.mark.skipif(not (FERN.is_dir() and LEGO.is_dir()), reason=f"shared scenes not found under {DATA}")
def test_real_scenes_through_config():
    cfg = DataConfig(root=FERN, factor=16)
    fern = cfg.load_scene()
    test = cfg.dataset(fern, "test")
    assert test.indices == [0, 8, 16] and test[0]["image"].shape == (189, 252, 3)
    lego = load_scene(LEGO)
    ds = SceneDataset(lego, "test", width=80)
    b = ds.stacked()
    assert b["images"].shape == (10, 80, 80, 3) and b["indices"].tolist() == list(range(25, 35))
    assert torch.allclose(b["images"][:, 0, 0], torch.ones(10, 3))  # transparent corner on white
    assert float(b["Ks"][0, 0, 0]) == pytest.approx(1111.11 / 10, abs=1e-3)
