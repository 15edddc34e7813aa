"""LLFF scenes (``poses_bounds.npy`` + ``images/``, ``images_N/``): the NeRF forward-facing and 3D-OVS layout.

Each row of ``poses_bounds.npy`` is 17 numbers: a 3x5 matrix (row-major)
whose columns are ``[down, right, back, t, hwf]`` - the camera-to-world
rotation in LLFF's axis order, the camera position, and ``(H, W, focal)`` of
the full-resolution images - then the near and far depth bounds. In OpenCV
axes the camera-to-world matrix is ``[right, down, -back | t]``. The world
frame is the COLMAP frame the poses were computed in, so a
``sparse/0/points3D.{bin,txt}`` beside it lines up with the cameras and is
loaded as the sparse point cloud.

The i-th image of the chosen folder in sorted order is row i (the images of
the different ``images_N`` folders may be named differently). Intrinsics come
from the hwf column, scaled to the size of the images on disk, with the
principal point at the image centre.

Distortion (decision): LLFF's ``imgs2poses`` runs COLMAP with a
``SIMPLE_RADIAL`` camera, so ``sparse/0/cameras.bin`` may carry a small radial
term (the fern: ``k1 = 0.0198``, about 2 px at the corners at 1/16 scale),
yet NeRF, LangSplat and 3D-OVS all treat these images as pinhole, and the
3D-OVS ground-truth masks are drawn on the images as stored. The reader
therefore returns PINHOLE cameras by default, so rendered views stay
pixel-aligned with the stored images and masks. ``colmap_distortion=True``
takes ``k1`` (and ``k2``) from the COLMAP camera instead; the dataset then
undistorts the images.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ccl_gs.data.readers._common import check_finite_poses, ensure_downscaled, image_size, list_images
from ccl_gs.data.readers.colmap import find_model_file, read_cameras, read_points3d, to_camera
from ccl_gs.data.scene import Camera, Scene, SceneError, register_reader

POSES_FILE = "poses_bounds.npy"


def _detect(root: Path) -> bool:
    return (root / POSES_FILE).is_file()


def llff_to_opencv_c2w(poses: np.ndarray) -> np.ndarray:
    """LLFF ``[V, 3, 5]`` pose blocks (columns down, right, back, t, hwf) -> OpenCV camera-to-world ``[V, 4, 4]``."""
    V = poses.shape[0]
    c2w = np.zeros((V, 4, 4))
    c2w[:, :3, 0] = poses[:, :, 1]  # x: right
    c2w[:, :3, 1] = poses[:, :, 0]  # y: down
    c2w[:, :3, 2] = -poses[:, :, 2]  # z: forward = -back
    c2w[:, :3, 3] = poses[:, :, 3]
    c2w[:, 3, 3] = 1.0
    return c2w


def available_factors(root: Path) -> list[int]:
    """Downscale factors with an image folder: 1 for ``images/``, N for ``images_N/``, sorted."""
    out = [1] if (root / "images").is_dir() else []
    for p in root.iterdir():
        m = re.fullmatch(r"images_(\d+)", p.name)
        if m and p.is_dir():
            out.append(int(m.group(1)))
    return sorted(out)


@register_reader("llff", _detect)
def read_llff(
    root: Path,
    factor: int | None = None,
    images_dir: str | None = None,
    load_points: bool = True,
    colmap_distortion: bool = False,
) -> Scene:
    """Read an LLFF scene folder.

    Args:
        root: folder with ``poses_bounds.npy`` and ``images/`` and/or ``images_N/``.
        factor: picks ``images_{factor}`` (1 = ``images/``; a missing ``images_{factor}`` is made
            from ``images/`` and kept); default: ``images/``
            if present, else the smallest available factor.
        images_dir: explicit image folder relative to ``root`` (overrides ``factor``).
        load_points: read ``sparse/0/points3D.{bin,txt}`` when present.
        colmap_distortion: use the radial distortion of ``sparse/0/cameras.{bin,txt}``
            (see the module docstring); PINHOLE otherwise.
    """
    root = Path(root)
    pb_path = root / POSES_FILE
    try:
        pb = np.load(pb_path, allow_pickle=False)
    except FileNotFoundError:
        raise SceneError(f"missing file: {pb_path}") from None
    except (ValueError, OSError, EOFError) as e:
        raise SceneError(f"unreadable {pb_path}: {e}") from None
    if pb.ndim != 2 or pb.shape[1] != 17:
        raise SceneError(f"{pb_path}: expected an array of shape [V, 17], got {pb.shape}")
    pb = pb.astype(np.float64)

    if images_dir is None:
        if factor is None:
            factors = available_factors(root)
            if not factors:
                raise SceneError(f"{root}: no images/ or images_N/ folder beside {POSES_FILE}")
            factor = factors[0]
        if factor < 1:
            raise SceneError(f"{root}: factor must be >= 1, got {factor}")
        images_dir = "images" if factor == 1 else f"images_{factor}"
        if factor > 1 and (root / "images").is_dir():
            full = list_images(root / "images")
            ensure_downscaled(full, [root / images_dir / p.name for p in full], factor)
    folder = root / images_dir
    paths = list_images(folder)
    if len(paths) != len(pb):
        raise SceneError(f"{pb_path}: {len(pb)} poses but {len(paths)} images in {folder}")

    poses = pb[:, :15].reshape(-1, 3, 5)
    check_finite_poses(poses, pb_path, [p.name for p in paths])
    bounds = pb[:, 15:17].copy()
    c2w = llff_to_opencv_c2w(poses)
    viewmats = np.linalg.inv(c2w)

    distortion: tuple[float, ...] | None = None
    sparse = root / "sparse" / "0"
    if colmap_distortion:
        cam_path = find_model_file(sparse, "cameras")
        if cam_path is None:
            raise SceneError(f"{sparse}: colmap_distortion needs cameras.bin or cameras.txt")
        cams = list(read_cameras(cam_path).values())
        if len(cams) != 1:
            raise SceneError(f"{cam_path}: colmap_distortion needs exactly one camera, found {len(cams)}")
        distortion = to_camera(cams[0], cam_path).distortion

    cameras = []
    for i, path in enumerate(paths):
        H, W, f = (float(v) for v in poses[i, :, 4])
        if H <= 0 or W <= 0 or f <= 0:
            raise SceneError(f"{pb_path}: row {i} has invalid (H, W, focal) = ({H}, {W}, {f})")
        w, h = image_size(path)
        cam = Camera(w, h, f * w / W, f * h / H, w / 2.0, h / 2.0)
        if distortion is not None and any(distortion):
            cam = Camera(w, h, cam.fx, cam.fy, cam.cx, cam.cy, "OPENCV", distortion)
        cameras.append(cam)

    points = colors = None
    pts_path = find_model_file(sparse, "points3D")
    if load_points and pts_path is not None:
        points, colors = read_points3d(pts_path)
    return Scene(
        name=root.resolve().name,
        root=root,
        image_paths=paths,
        cameras=cameras,
        viewmats=viewmats,
        points=points,
        point_colors=colors,
        bounds=bounds,
        format="llff",
    )
