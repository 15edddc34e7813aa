"""Reading a COLMAP scene folder into a :class:`~ccl_gs.data.scene.Scene` (the ``"colmap"`` reader, :func:`read_colmap`).

See :mod:`ccl_gs.data.readers.colmap` for the supported camera models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ccl_gs.data.readers._common import check_finite_poses, ensure_downscaled, image_size
from ccl_gs.data.readers.colmap.model import SUPPORTED_MODELS, ColmapCamera
from ccl_gs.data.readers.colmap.parsing import read_cameras, read_images, read_points3d
from ccl_gs.data.scene import Camera, Scene, SceneError, register_reader


def to_camera(cam: ColmapCamera, source: Path) -> Camera:
    """Convert a COLMAP camera to our :class:`Camera`; unsupported models raise naming ``source``."""
    p = cam.params
    if cam.model == "SIMPLE_PINHOLE":
        return Camera(cam.width, cam.height, p[0], p[0], p[1], p[2])
    if cam.model == "PINHOLE":
        return Camera(cam.width, cam.height, p[0], p[1], p[2], p[3])
    if cam.model == "SIMPLE_RADIAL":
        return Camera(cam.width, cam.height, p[0], p[0], p[1], p[2], "OPENCV", (p[3], 0.0, 0.0, 0.0))
    if cam.model == "RADIAL":
        return Camera(cam.width, cam.height, p[0], p[0], p[1], p[2], "OPENCV", (p[3], p[4], 0.0, 0.0))
    if cam.model == "OPENCV":
        return Camera(cam.width, cam.height, p[0], p[1], p[2], p[3], "OPENCV", tuple(p[4:8]))
    raise SceneError(
        f"{source}: camera {cam.id} uses COLMAP model {cam.model}, which is not supported "
        f"(supported: {', '.join(SUPPORTED_MODELS)}); undistort the images with `colmap image_undistorter`"
    )


def find_model_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem.bin`` if present, else ``folder/stem.txt``, else None."""
    for suffix in (".bin", ".txt"):
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def find_sparse_dir(root: Path) -> Path | None:
    """The COLMAP model folder of a scene: ``sparse/0`` or ``sparse`` holding cameras and images."""
    for d in (root / "sparse" / "0", root / "sparse"):
        if find_model_file(d, "cameras") and find_model_file(d, "images"):
            return d
    return None


def _detect(root: Path) -> bool:
    return find_sparse_dir(root) is not None


@register_reader("colmap", _detect)
def read_colmap(
    root: Path,
    images_dir: str | None = None,
    factor: int = 1,
    sparse_dir: str | None = None,
    load_points: bool = True,
) -> Scene:
    """Read a COLMAP scene folder.

    Args:
        root: scene folder with ``sparse/0/`` (or ``sparse/``) and an image folder.
        images_dir: image folder relative to ``root`` (default ``images``, or
            ``images_{factor}``).
        factor: picks ``images_{factor}`` when ``images_dir`` is not given
            (1 = ``images``); missing downscaled images are made from ``images/`` and kept.
            Intrinsics are rescaled to each image's size on disk.
        sparse_dir: model folder relative to ``root`` (default: auto).
        load_points: read ``points3D`` when present.

    Views are sorted by image name. ``.bin`` files are preferred over ``.txt``.
    """
    root = Path(root)
    if sparse_dir is not None:
        model = root / sparse_dir
        if not (find_model_file(model, "cameras") and find_model_file(model, "images")):
            raise SceneError(f"{model}: no COLMAP model (cameras.bin/txt and images.bin/txt)")
    else:
        found = find_sparse_dir(root)
        if found is None:
            raise SceneError(f"{root}: no COLMAP model in sparse/0 or sparse (cameras.bin/txt and images.bin/txt)")
        model = found
    if factor < 1:
        raise SceneError(f"{root}: factor must be >= 1, got {factor}")
    img_folder = root / (images_dir or ("images" if factor == 1 else f"images_{factor}"))
    full_size = root / "images"
    make_small = images_dir is None and factor > 1 and full_size.is_dir()
    if not img_folder.is_dir() and not make_small:
        raise SceneError(f"image folder not found: {img_folder}")

    cam_path = find_model_file(model, "cameras")
    img_path = find_model_file(model, "images")
    assert cam_path is not None and img_path is not None
    cams = read_cameras(cam_path)
    imgs = sorted(read_images(img_path).values(), key=lambda im: im.name)
    if not imgs:
        raise SceneError(f"{img_path}: no registered images")

    if make_small:
        ensure_downscaled([full_size / im.name for im in imgs], [img_folder / im.name for im in imgs], factor)
    paths, cameras, viewmats = [], [], []
    converted: dict[int, Camera] = {}
    for im in imgs:
        if im.camera_id not in cams:
            raise SceneError(f"{img_path}: image '{im.name}' refers to camera {im.camera_id}, absent from {cam_path.name}")
        if im.camera_id not in converted:
            converted[im.camera_id] = to_camera(cams[im.camera_id], cam_path)
        cam = converted[im.camera_id]
        path = img_folder / im.name
        w, h = image_size(path)
        paths.append(path)
        cameras.append(cam if (w, h) == (cam.width, cam.height) else cam.scaled(w, h))
        viewmats.append(im.viewmat())
    viewmats_arr = np.stack(viewmats)
    check_finite_poses(viewmats_arr, img_path, [im.name for im in imgs])

    points = colors = None
    pts_path = find_model_file(model, "points3D")
    if load_points and pts_path is not None:
        points, colors = read_points3d(pts_path)
    return Scene(
        name=root.resolve().name,
        root=root,
        image_paths=paths,
        cameras=cameras,
        viewmats=viewmats_arr,
        points=points,
        point_colors=colors,
        format="colmap",
    )
