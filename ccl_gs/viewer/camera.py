"""Camera conversions between the browser's view and the project's render items, and the resolution policy.

The browser reports its camera as a rotation ``wxyz`` (camera to world), a
position, a vertical field of view and an aspect ratio, in OpenCV axes
(+z forward, +y down) - the same axes as the project's ``viewmat``
(world-to-camera) and ``K``. Pure numpy / torch functions, no server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class Pose:
    """A camera pose as the browser holds it: camera-to-world rotation and position, vertical field of view."""

    wxyz: np.ndarray  # [4] unit quaternion (w, x, y, z), camera to world
    position: np.ndarray  # [3] camera centre in world coordinates
    fov_y: float  # vertical field of view, radians


def viewmat_from_pose(wxyz: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation ``wxyz [4]`` and centre ``position [3]`` -> world-to-camera ``[4, 4]`` (float64)."""
    w, x, y, z = np.asarray(wxyz, np.float64)
    R = Rotation.from_quat([x, y, z, w]).as_matrix()  # camera -> world
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ np.asarray(position, np.float64)
    return out


def pose_from_view(viewmat: np.ndarray, K: np.ndarray, height: int) -> Pose:
    """The browser pose of a view: world-to-camera ``viewmat [4, 4]``, intrinsics ``K [3, 3]`` of an image ``height`` tall."""
    c2w = np.linalg.inv(np.asarray(viewmat, np.float64))
    x, y, z, w = Rotation.from_matrix(c2w[:3, :3]).as_quat()
    fov_y = 2.0 * math.atan(0.5 * height / float(K[1, 1]))
    return Pose(np.array([w, x, y, z]), c2w[:3, 3].copy(), fov_y)


def image_size(aspect: float, long_side: int) -> tuple[int, int]:
    """``(width, height)`` of an image of ``aspect`` (width / height) whose longer side is ``long_side``."""
    if aspect >= 1.0:
        return int(long_side), max(1, int(round(long_side / aspect)))
    return max(1, int(round(long_side * aspect))), int(long_side)


def intrinsics(fov_y: float, width: int, height: int) -> np.ndarray:
    """Pinhole ``K [3, 3]`` with square pixels, the principal point at the image centre and vertical FOV ``fov_y``."""
    f = 0.5 * height / math.tan(0.5 * fov_y)
    return np.array([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]])


def render_item(pose: Pose, aspect: float, long_side: int) -> dict[str, Any]:
    """A render item (as :class:`~ccl_gs.data.dataset.SceneDataset` gives, without an image) for a browser camera."""
    w, h = image_size(aspect, long_side)
    return {
        "viewmat": torch.from_numpy(viewmat_from_pose(pose.wxyz, pose.position)).float(),
        "K": torch.from_numpy(intrinsics(pose.fov_y, w, h)).float(),
        "width": w,
        "height": h,
        "index": -1,
        "image": None,
    }


def look_at_point(pose: Pose, distance: float) -> np.ndarray:
    """The point ``distance`` in front of the camera on its optical axis (where the browser orbits): ``[3]``."""
    w, x, y, z = pose.wxyz
    forward = Rotation.from_quat([x, y, z, w]).as_matrix()[:, 2]
    return pose.position + distance * forward


def scene_up(camtoworlds: np.ndarray) -> np.ndarray:
    """The mean "up" (-y in OpenCV axes) of camera-to-world poses ``[V, 4, 4]``, unit ``[3]``."""
    up = -np.asarray(camtoworlds, np.float64)[:, :3, 1].mean(0)
    n = np.linalg.norm(up)
    return up / n if n > 1e-9 else np.array([0.0, 0.0, 1.0])


def moving_resolution(last_side: int, last_seconds: float, target_seconds: float, lo: int, hi: int) -> int:
    """The long side to render at while the camera moves, so a frame takes about ``target_seconds``.

    Render time grows with the pixel count, i.e. with the square of the side:
    the next side is ``last_side * sqrt(target / last)``, clamped to
    ``[lo, hi]`` and rounded down to a multiple of 8 (at least ``lo``).
    """
    if last_seconds <= 0:
        return hi
    side = last_side * math.sqrt(target_seconds / last_seconds)
    side = int(min(max(side, lo), hi)) // 8 * 8
    return max(side, lo)
