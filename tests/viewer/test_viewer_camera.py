"""Browser camera <-> render item conversions and the moving-resolution rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ccl_gs.viewer.camera import (
    Pose,
    image_size,
    intrinsics,
    look_at_point,
    moving_resolution,
    pose_from_view,
    render_item,
    scene_up,
    viewmat_from_pose,
)


def _random_viewmat(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    c2w[:3, 3] = rng.normal(size=3)
    return np.linalg.inv(c2w)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pose_round_trip(seed):
    vm = _random_viewmat(seed)
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    pose = pose_from_view(vm, K, 48)
    np.testing.assert_allclose(viewmat_from_pose(pose.wxyz, pose.position), vm, atol=1e-9)
    assert pose.fov_y == pytest.approx(2 * math.atan(24 / 50.0))
    assert np.linalg.norm(pose.wxyz) == pytest.approx(1.0)


def test_render_item_reproduces_a_training_camera():
    """A training view's pose at its own aspect and size gives back its viewmat and K (centred principal point)."""
    vm = _random_viewmat(3)
    W, H = 80, 60
    K = intrinsics(0.9, W, H)
    item = render_item(pose_from_view(vm, K, H), W / H, W)
    assert (item["width"], item["height"]) == (W, H)
    np.testing.assert_allclose(item["viewmat"].double().numpy(), vm, atol=1e-5)
    np.testing.assert_allclose(item["K"].double().numpy(), K, rtol=1e-6)
    # a point on the optical axis projects to the image centre
    p = np.linalg.inv(vm) @ np.array([0, 0, 2.0, 1])
    cam = vm @ p
    uv = (K @ cam[:3])[:2] / cam[2]
    np.testing.assert_allclose(uv, [W / 2, H / 2], atol=1e-9)


def test_image_size_keeps_aspect_and_long_side():
    assert image_size(2.0, 512) == (512, 256)
    assert image_size(0.5, 512) == (256, 512)
    assert image_size(1.0, 64) == (64, 64)
    assert image_size(1000.0, 64) == (64, 1)


def test_look_at_point_lies_on_the_optical_axis():
    vm = _random_viewmat(4)
    pose = pose_from_view(vm, intrinsics(1.0, 10, 10), 10)
    p = look_at_point(pose, 3.0)
    cam = vm[:3, :3] @ p + vm[:3, 3]
    np.testing.assert_allclose(cam, [0, 0, 3.0], atol=1e-9)


def test_scene_up_is_minus_camera_y():
    c2w = np.tile(np.eye(4), (3, 1, 1))  # OpenCV cameras with +y down: up is -y
    np.testing.assert_allclose(scene_up(c2w), [0, -1, 0])


def test_moving_resolution_targets_the_frame_time():
    # 4x too slow -> half the side; clamped to [lo, hi]; multiples of 8
    assert moving_resolution(512, 0.4, 0.1, 64, 512) == 256
    assert moving_resolution(256, 0.025, 0.1, 64, 512) == 512
    assert moving_resolution(128, 100.0, 0.1, 64, 512) == 64
    assert moving_resolution(100, 0.1, 0.1, 64, 512) == 96
    assert moving_resolution(300, 0.0, 0.1, 64, 512) == 512  # no measurement yet: full size
    assert all(moving_resolution(s, 0.3, 0.1, 64, 512) % 8 == 0 for s in range(64, 513, 7))


def test_pose_is_a_plain_value():
    p = Pose(np.array([1.0, 0, 0, 0]), np.zeros(3), 1.0)
    item = render_item(p, 1.5, 96)
    assert (item["width"], item["height"]) == (96, 64) and item["index"] == -1
    np.testing.assert_allclose(item["viewmat"].numpy(), np.eye(4))
