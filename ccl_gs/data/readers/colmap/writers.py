"""Writing a :class:`~ccl_gs.data.scene.Scene` as a COLMAP model, text (:func:`write_colmap_text`) or binary (:func:`write_colmap_binary`).

Used by the round-trip tests and the synthetic generator.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ccl_gs.data.readers.colmap.model import CAMERA_MODEL_IDS, rotmat_to_qvec
from ccl_gs.data.scene import Camera, Scene, SceneError
from ccl_gs.io.artifacts import atomic_write_bytes, atomic_write_text


def _colmap_cameras(scene: Scene) -> tuple[list[tuple[str, Camera]], list[int]]:
    """Deduplicated cameras as ``(model, camera)`` and, per view, the 1-based camera id."""
    unique: dict[Camera, int] = {}
    ids = []
    for cam in scene.cameras:
        if cam.model not in ("PINHOLE", "OPENCV"):
            raise SceneError(f"cannot write camera model {cam.model} to COLMAP")
        if cam not in unique:
            unique[cam] = len(unique) + 1
        ids.append(unique[cam])
    return [(c.model, c) for c in unique], ids


def _camera_params(cam: Camera) -> list[float]:
    p = [cam.fx, cam.fy, cam.cx, cam.cy]
    if cam.model == "OPENCV":
        p += list(cam.distortion[:4]) + [0.0] * (4 - len(cam.distortion[:4]))
    return [float(v) for v in p]


def _image_names(scene: Scene, image_names: list[str] | None) -> list[str]:
    names = image_names if image_names is not None else [p.name for p in scene.image_paths]
    if len(names) != len(scene):
        raise ValueError(f"{len(names)} image names for {len(scene)} views")
    return names


def _points_and_colors(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    if scene.points is None:
        return np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    pts = np.asarray(scene.points, np.float64).reshape(-1, 3)
    cols = scene.point_colors if scene.point_colors is not None else np.full((len(pts), 3), 128)
    return pts, np.asarray(cols).astype(np.uint8).reshape(-1, 3)


def write_colmap_text(folder: str | Path, scene: Scene, image_names: list[str] | None = None) -> None:
    """Write ``cameras.txt``, ``images.txt`` and ``points3D.txt`` of ``scene`` into ``folder``.

    Identical cameras are shared; image names default to the file names of
    ``scene.image_paths``; points get empty tracks and zero error. Floats are
    written with 17 significant digits so a round trip is exact. Each file is
    written atomically.
    """
    folder = Path(folder)
    cams, cam_ids = _colmap_cameras(scene)
    names = _image_names(scene, image_names)
    g = lambda v: f"{float(v):.17g}"  # noqa: E731

    lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    lines.append(f"# Number of cameras: {len(cams)}")
    for i, (model, cam) in enumerate(cams, 1):
        lines.append(" ".join([str(i), model, str(cam.width), str(cam.height)] + [g(p) for p in _camera_params(cam)]))
    atomic_write_text(folder / "cameras.txt", "\n".join(lines) + "\n")

    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        f"# Number of images: {len(scene)}",
    ]
    for i, (vm, cid, name) in enumerate(zip(scene.viewmats, cam_ids, names), 1):
        q, t = rotmat_to_qvec(vm[:3, :3]), vm[:3, 3]
        lines.append(" ".join([str(i)] + [g(v) for v in q] + [g(v) for v in t] + [str(cid), name]))
        lines.append("")
    atomic_write_text(folder / "images.txt", "\n".join(lines) + "\n")

    pts, cols = _points_and_colors(scene)
    lines = [
        "# 3D point list with one line of data per point:",
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
        f"# Number of points: {len(pts)}",
    ]
    for i, (p, c) in enumerate(zip(pts, cols), 1):
        lines.append(" ".join([str(i)] + [g(v) for v in p] + [str(int(v)) for v in c] + ["0"]))
    atomic_write_text(folder / "points3D.txt", "\n".join(lines) + "\n")


def write_colmap_binary(folder: str | Path, scene: Scene, image_names: list[str] | None = None) -> None:
    """Write ``cameras.bin``, ``images.bin`` and ``points3D.bin`` of ``scene`` into ``folder``.

    Same content rules as :func:`write_colmap_text`; each file is written atomically.
    """
    folder = Path(folder)
    cams, cam_ids = _colmap_cameras(scene)
    names = _image_names(scene, image_names)

    buf = bytearray(struct.pack("<Q", len(cams)))
    for i, (model, cam) in enumerate(cams, 1):
        params = _camera_params(cam)
        buf += struct.pack("<iiQQ", i, CAMERA_MODEL_IDS[model], cam.width, cam.height)
        buf += struct.pack(f"<{len(params)}d", *params)
    atomic_write_bytes(folder / "cameras.bin", bytes(buf))

    buf = bytearray(struct.pack("<Q", len(scene)))
    for i, (vm, cid, name) in enumerate(zip(scene.viewmats, cam_ids, names), 1):
        q, t = rotmat_to_qvec(vm[:3, :3]), vm[:3, 3]
        buf += struct.pack("<i7di", i, *q, *t, cid)
        buf += name.encode("utf-8") + b"\x00"
        buf += struct.pack("<Q", 0)
    atomic_write_bytes(folder / "images.bin", bytes(buf))

    pts, cols = _points_and_colors(scene)
    buf = bytearray(struct.pack("<Q", len(pts)))
    for i, (p, c) in enumerate(zip(pts, cols), 1):
        buf += struct.pack("<Q3d3BdQ", i, *p, *(int(v) for v in c), 0.0, 0)
    atomic_write_bytes(folder / "points3D.bin", bytes(buf))
