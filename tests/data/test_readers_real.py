"""Readers on the shared real scenes: LLFF fern and NeRF-synthetic lego (subset)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccl_gs.data import load_scene
from ccl_gs.data.scene import detect_format

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FERN = DATA / "llff_fern"
LEGO = DATA / "nerf_synthetic_lego_small"

needs_fern = pytest.mark.skipif(not FERN.is_dir(), reason=f"shared fern scene not found at {FERN}")
needs_lego = pytest.mark.skipif(not LEGO.is_dir(), reason=f"shared lego scene not found at {LEGO}")


def project(scene, view: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``[P, 2]`` and depths ``[P]`` of world points in one view."""
    vm = scene.viewmats[view]
    cam_pts = points @ vm[:3, :3].T + vm[:3, 3]
    uvw = cam_pts @ scene.cameras[view].K().T
    return uvw[:, :2] / uvw[:, 2:], cam_pts[:, 2]


@needs_fern
def test_fern_auto_detects_llff_not_colmap():
    # The fern carries cameras.bin + points3D.bin but no images.bin: only llff may claim it.
    assert detect_format(FERN) == "llff"


@needs_fern
@pytest.mark.parametrize("factor,width,height", [(16, 252, 189), (8, 504, 378)])
def test_fern_intrinsics_points_and_views(factor, width, height):
    scene = load_scene(FERN, factor=factor)
    assert scene.format == "llff" and len(scene) == 20
    names = [p.name for p in scene.image_paths]
    assert names == sorted(names) and scene.image_paths[0].parent.name == f"images_{factor}"
    f_expected = 3260.5263328805895 * width / 4032
    for cam in scene.cameras:
        assert (cam.width, cam.height) == (width, height)
        assert cam.model == "PINHOLE" and not cam.has_distortion
        assert cam.fx == pytest.approx(f_expected, rel=1e-6) and cam.fy == pytest.approx(f_expected, rel=1e-6)
        assert (cam.cx, cam.cy) == (width / 2, height / 2)
    if factor == 16:
        assert scene.cameras[0].fx == pytest.approx(203.78, abs=0.01)
    assert scene.points.shape == (10091, 3) and scene.point_colors.shape == (10091, 3)
    assert scene.bounds.shape == (20, 2)
    np.testing.assert_allclose([scene.bounds[:, 0].min(), scene.bounds[:, 1].max()], [16.985, 80.002], atol=1e-3)
    # The pose convention: nearly all sparse points land inside every image, in front of the camera.
    for v in range(len(scene)):
        uv, depth = project(scene, v, scene.points.astype(np.float64))
        inside = (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
        assert inside.mean() >= 0.95, f"view {v}: only {inside.mean():.3f} of the points project inside"


@needs_fern
def test_fern_point_colours_match_pixels():
    scene = load_scene(FERN, factor=16)
    v = 5
    img = np.asarray(Image.open(scene.image_paths[v]).convert("RGB"), np.float64)
    uv, depth = project(scene, v, scene.points.astype(np.float64))
    ok = (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < 252) & (uv[:, 1] >= 0) & (uv[:, 1] < 189)
    px = img[uv[ok, 1].astype(int), uv[ok, 0].astype(int)]
    # Brightness of the sampled pixels follows the points' colours (a shuffled pairing gives ~0).
    corr = np.corrcoef(px.mean(1), scene.point_colors[ok].mean(1))[0, 1]
    shuffled = np.corrcoef(px.mean(1), scene.point_colors[ok][np.random.default_rng(0).permutation(ok.sum())].mean(1))[0, 1]
    assert corr > 0.45 and abs(shuffled) < 0.1, (corr, shuffled)


@needs_fern
def test_fern_colmap_distortion_option():
    scene = load_scene(FERN, factor=16, colmap_distortion=True)
    cam = scene.cameras[0]
    assert cam.model == "OPENCV" and cam.distortion[0] == pytest.approx(0.01975, abs=1e-5)
    assert cam.distortion[1:] == (0.0, 0.0, 0.0)


@needs_lego
def test_lego_blender_split_intrinsics_and_poses():
    assert detect_format(LEGO) == "blender"
    scene = load_scene(LEGO)
    assert scene.format == "blender" and scene.white_background
    assert len(scene) == 35
    train, test = scene.views("train"), scene.views("test")
    assert len(train) == 25 and len(test) == 10 and not set(train) & set(test)
    assert scene.image_paths[test[0]].as_posix().endswith("test/r_0.png")
    for cam in scene.cameras:
        assert (cam.width, cam.height) == (800, 800)
        assert cam.fx == pytest.approx(1111.11, abs=0.01) and (cam.cx, cam.cy) == (400.0, 400.0)
    centres = scene.camera_centers
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 4.0311, atol=2e-3)
    # OpenCV +z (the viewing direction) points at the origin from every camera.
    forward = scene.camtoworlds[:, :3, 2]
    to_origin = -centres / np.linalg.norm(centres, axis=1, keepdims=True)
    assert (np.sum(forward * to_origin, axis=1) > 0.999).all()
    # OpenCV +y (image down) points roughly against world +z (Blender's up) for these upright views.
    assert (scene.camtoworlds[:, 2, 1] < 0).all()
    # Overriding test_every replaces the format's split with the every-n-th rule.
    assert scene.views("test", test_every=7) == [0, 7, 14, 21, 28]
