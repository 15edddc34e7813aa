"""nerfstudio captures (``transforms.json``, the format of LERF's scenes): reader and writer.

``transforms.json`` holds intrinsics globally or per frame (``fl_x fl_y cx cy
w h``, or instant-ngp's ``camera_angle_x``; ``camera_model`` ``OPENCV`` with
``k1 k2 p1 p2`` or ``PINHOLE``) and a list of ``frames`` with ``file_path`` and ``transform_matrix``, a
camera-to-world matrix in the OpenGL convention (camera looks along -z, y
up); flipping its y and z columns gives OpenCV axes.

``ns-process-data`` rotates COLMAP's world frame and records that rotation
as ``applied_transform`` (3x4, ``c2w_file = A @ c2w_colmap``); the point
cloud at ``ply_file_path`` is written in the same rotated frame. By default
poses and points stay in the file's frame; ``original_frame=True`` undoes
``applied_transform`` for both.

Frames are sorted by ``file_path`` (as nerfstudio does), so ``frame_00041``
is view 40 of a capture numbered from 1. ``train_filenames`` /
``test_filenames`` lists, when present, become the scene's own split.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ccl_gs.data.readers._common import GL_TO_CV, as_matrix, ensure_downscaled, image_size, read_json_file
from ccl_gs.data.scene import Camera, Scene, SceneError, register_reader
from ccl_gs.io.artifacts import write_json

TRANSFORMS_FILE = "transforms.json"
_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2", "camera_model")


def _detect(root: Path) -> bool:
    return (root / TRANSFORMS_FILE).is_file()


def _number(d: dict, key: str, path: Path, default: float | None = None) -> float:
    v = d.get(key, default)
    if v is None:
        raise SceneError(f"{path}: missing '{key}' (neither per frame nor global)")
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise SceneError(f"{path}: '{key}' is not a number: {v!r}") from None
    if not np.isfinite(v):
        raise SceneError(f"{path}: '{key}' is not finite")
    return v


def _camera(meta: dict, frame: dict, image_wh: tuple[int, int], path: Path) -> Camera:
    """Intrinsics of one frame (frame keys override global ones), scaled to the image on disk."""
    d = {k: meta[k] for k in _INTRINSIC_KEYS if k in meta}
    d.update({k: frame[k] for k in _INTRINSIC_KEYS if k in frame})
    model = str(d.get("camera_model", "OPENCV")).upper()
    if model not in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE"):
        raise SceneError(f"{path}: camera_model {model} is not supported (OPENCV, PINHOLE)")
    w, h = image_wh
    W = int(_number(d, "w", path, w))
    H = int(_number(d, "h", path, h))
    if "fl_x" not in d and "camera_angle_x" in meta:  # instant-ngp style: horizontal field of view
        fx = 0.5 * W / math.tan(0.5 * _number(meta, "camera_angle_x", path))
    else:
        fx = _number(d, "fl_x", path)
    fy = _number(d, "fl_y", path, fx)
    cx = _number(d, "cx", path, W / 2.0)
    cy = _number(d, "cy", path, H / 2.0)
    dist = tuple(_number(d, k, path, 0.0) for k in ("k1", "k2", "p1", "p2"))
    if model == "OPENCV" and (_number(d, "k3", path, 0.0) or _number(d, "k4", path, 0.0)):
        raise SceneError(f"{path}: non-zero k3/k4 are not supported (distortion is OpenCV k1, k2, p1, p2)")
    cam = Camera(W, H, fx, fy, cx, cy, "OPENCV" if model == "OPENCV" and any(dist) else "PINHOLE",
                 dist if model == "OPENCV" and any(dist) else (0.0, 0.0, 0.0, 0.0))
    return cam if (w, h) == (W, H) else cam.scaled(w, h)


def _image_path(root: Path, file_path: str, factor: int) -> Path:
    p = Path(file_path)
    if factor > 1:
        return root / f"images_{factor}" / p.name
    return root / p


@register_reader("nerfstudio", _detect)
def read_nerfstudio(
    root: Path,
    factor: int = 1,
    original_frame: bool = False,
    load_points: bool = True,
    transforms_file: str = TRANSFORMS_FILE,
) -> Scene:
    """Read a nerfstudio capture folder.

    Args:
        root: folder with ``transforms.json`` and the images it lists.
        factor: read ``images_{factor}/<name>`` instead of ``file_path`` (nerfstudio's
            downscaled copies; missing ones are made from ``file_path`` and kept); intrinsics
            are rescaled to the images on disk.
        original_frame: undo ``applied_transform`` (back to the COLMAP world frame).
        load_points: read the point cloud at ``ply_file_path`` when given.
        transforms_file: name of the JSON file inside ``root``.
    """
    root = Path(root)
    path = root / transforms_file
    meta = read_json_file(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise SceneError(f"{path}: expected an object with a non-empty 'frames' list")
    if factor < 1:
        raise SceneError(f"{root}: factor must be >= 1, got {factor}")

    frames = []
    for i, fr in enumerate(meta["frames"]):
        if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
            raise SceneError(f"{path}: frame {i} lacks 'file_path' or 'transform_matrix'")
        frames.append(fr)
    frames.sort(key=lambda fr: str(fr["file_path"]))

    A = np.eye(4)
    if original_frame and "applied_transform" in meta:
        A[:3] = as_matrix(meta["applied_transform"], (3, 4), path, "applied_transform")
    A_inv = np.linalg.inv(A)

    if factor > 1:
        ensure_downscaled([root / str(fr["file_path"]) for fr in frames],
                          [_image_path(root, str(fr["file_path"]), factor) for fr in frames], factor)
    paths, cameras, c2ws = [], [], []
    for fr in frames:
        img = _image_path(root, str(fr["file_path"]), factor)
        try:
            c2w = np.asarray(fr["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError):
            raise SceneError(f"{path}: transform_matrix of {fr['file_path']} is not numeric") from None
        if c2w.shape == (3, 4):
            c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
        if c2w.shape != (4, 4):
            raise SceneError(f"{path}: transform_matrix of {fr['file_path']} has shape {c2w.shape}, expected (4, 4)")
        if not np.isfinite(c2w).all():
            raise SceneError(f"{path}: non-finite transform_matrix for {fr['file_path']}")
        c2ws.append(A_inv @ c2w @ GL_TO_CV)
        paths.append(img)
        cameras.append(_camera(meta, fr, image_size(img), path))
    viewmats = np.linalg.inv(np.stack(c2ws))

    points = colors = None
    if load_points and meta.get("ply_file_path"):
        from ccl_gs.io.ply import PlyError, read_points_ply

        try:
            points, colors = read_points_ply(root / str(meta["ply_file_path"]))
        except PlyError as e:
            raise SceneError(f"{path}: ply_file_path: {e}") from None
        if original_frame:
            points = (points.astype(np.float64) @ A_inv[:3, :3].T + A_inv[:3, 3]).astype(np.float32)

    split = None
    if "train_filenames" in meta or "test_filenames" in meta:
        index = {os.path.normpath(str(fr["file_path"])): i for i, fr in enumerate(frames)}

        def ids(key: str) -> list[int]:
            out = []
            for name in meta.get(key, []):
                n = os.path.normpath(str(name))
                if n not in index:
                    raise SceneError(f"{path}: {key} lists '{name}', which is not a frame")
                out.append(index[n])
            return sorted(out)

        split = {"train": ids("train_filenames"), "test": ids("test_filenames")}
    return Scene(
        name=root.resolve().name,
        root=root,
        image_paths=paths,
        cameras=cameras,
        viewmats=viewmats,
        points=points,
        point_colors=colors,
        split=split,
        format="nerfstudio",
    )


def _intrinsics(cam: Camera) -> dict[str, Any]:
    d: dict[str, Any] = {
        "camera_model": cam.model,
        "fl_x": cam.fx,
        "fl_y": cam.fy,
        "cx": cam.cx,
        "cy": cam.cy,
        "w": cam.width,
        "h": cam.height,
    }
    if cam.model == "OPENCV":
        d.update(zip(("k1", "k2", "p1", "p2"), (float(v) for v in cam.distortion[:4])))
    return d


def write_transforms_json(path: str | Path, scene: Scene, ply_name: str = "sparse_pc.ply") -> None:
    """Write ``scene`` as a nerfstudio ``transforms.json`` (atomically).

    Intrinsics are global when every view shares one camera, otherwise per
    frame. ``file_path`` is relative to the JSON's folder. When the scene has
    points they are written to ``ply_name`` beside the JSON and referenced by
    ``ply_file_path``. No ``applied_transform`` is written: the poses are in
    the scene's own world frame.
    """
    path = Path(path)
    folder = path.parent
    shared = all(c == scene.cameras[0] for c in scene.cameras)
    meta: dict[str, Any] = dict(_intrinsics(scene.cameras[0])) if shared else {}
    c2ws = scene.camtoworlds
    frames = []
    for i, img in enumerate(scene.image_paths):
        rel = os.path.relpath(Path(img).resolve(), folder.resolve())
        fr: dict[str, Any] = {"file_path": Path(rel).as_posix(), "transform_matrix": (c2ws[i] @ GL_TO_CV).tolist()}
        if not shared:
            fr.update(_intrinsics(scene.cameras[i]))
        frames.append(fr)
    meta["frames"] = frames
    if scene.points is not None:
        from ccl_gs.io.ply import write_points_ply

        write_points_ply(folder / ply_name, scene.points, scene.point_colors)
        meta["ply_file_path"] = ply_name
    if scene.split is not None:
        meta["train_filenames"] = [frames[i]["file_path"] for i in scene.split.get("train", [])]
        meta["test_filenames"] = [frames[i]["file_path"] for i in scene.split.get("test", [])]
    write_json(path, meta)
