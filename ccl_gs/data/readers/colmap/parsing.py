"""Parsing the model files, binary and text: :func:`read_cameras`, :func:`read_images`, :func:`read_points3d`.

Every malformed, truncated or missing file is a :class:`~ccl_gs.data.scene.SceneError` naming it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ccl_gs.data.readers.colmap.model import CAMERA_MODEL_IDS, CAMERA_MODELS, ColmapCamera, ColmapImage
from ccl_gs.data.scene import SceneError


class _Bin:
    """Bounds-checked little-endian reader over a file's bytes; a short read names the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.buf = path.read_bytes()
        except FileNotFoundError:
            raise SceneError(f"missing file: {path}") from None
        except OSError as e:
            raise SceneError(f"unreadable file {path}: {e}") from None
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        fmt = "<" + fmt
        n = struct.calcsize(fmt)
        if self.pos + n > len(self.buf):
            raise SceneError(f"truncated COLMAP file {self.path} (at byte {self.pos} of {len(self.buf)})")
        out = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise SceneError(f"truncated COLMAP file {self.path} (at byte {self.pos} of {len(self.buf)})")
        self.pos += n

    def cstring(self) -> str:
        end = self.buf.find(b"\x00", self.pos)
        if end < 0:
            raise SceneError(f"truncated COLMAP file {self.path} (unterminated image name)")
        s = self.buf[self.pos : end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return s

    def count(self, item_bytes: int) -> int:
        """Read a uint64 count and check that ``count * item_bytes`` more bytes can exist."""
        (n,) = self.unpack("Q")
        if n * item_bytes > len(self.buf) - self.pos:
            raise SceneError(f"truncated COLMAP file {self.path} (claims {n} entries)")
        return n


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    f = _Bin(path)
    out: dict[int, ColmapCamera] = {}
    for _ in range(f.count(48)):
        cam_id, model_id, w, h = f.unpack("iiQQ")
        if model_id not in CAMERA_MODELS:
            raise SceneError(f"{path}: unknown COLMAP camera model id {model_id} (camera {cam_id})")
        name, n = CAMERA_MODELS[model_id]
        out[cam_id] = ColmapCamera(cam_id, name, int(w), int(h), tuple(float(p) for p in f.unpack("d" * n)))
    return out


def _read_images_bin(path: Path) -> dict[int, ColmapImage]:
    f = _Bin(path)
    out: dict[int, ColmapImage] = {}
    for _ in range(f.count(73)):
        img_id, qw, qx, qy, qz, tx, ty, tz, cam_id = f.unpack("idddddddi")
        name = f.cstring()
        (n2d,) = f.unpack("Q")
        f.skip(24 * n2d)  # x, y (double), point3D_id (int64)
        out[img_id] = ColmapImage(img_id, np.array([qw, qx, qy, qz]), np.array([tx, ty, tz]), cam_id, name)
    return out


def _read_points_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    f = _Bin(path)
    n = f.count(51)
    xyz = np.empty((n, 3), np.float64)
    rgb = np.empty((n, 3), np.uint8)
    for i in range(n):
        _pid, x, y, z, r, g, b, _err, track = f.unpack("QdddBBBdQ")
        xyz[i] = (x, y, z)
        rgb[i] = (r, g, b)
        f.skip(8 * track)  # image_id (int32), point2D_idx (int32)
    return xyz.astype(np.float32), rgb


def _text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SceneError(f"missing file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SceneError(f"unreadable file {path}: {e}") from None


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    out: dict[int, ColmapCamera] = {}
    for ln, line in enumerate(_text_lines(path), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        e = line.split()
        try:
            cam_id, model, w, h = int(e[0]), e[1], int(e[2]), int(e[3])
            params = tuple(float(p) for p in e[4:])
        except (IndexError, ValueError):
            raise SceneError(f"{path}:{ln}: malformed camera line") from None
        if model not in CAMERA_MODEL_IDS:
            raise SceneError(f"{path}:{ln}: unknown COLMAP camera model '{model}'")
        if len(params) != CAMERA_MODELS[CAMERA_MODEL_IDS[model]][1]:
            raise SceneError(f"{path}:{ln}: camera model {model} expects {CAMERA_MODELS[CAMERA_MODEL_IDS[model]][1]} params")
        out[cam_id] = ColmapCamera(cam_id, model, w, h, params)
    return out


def _read_images_txt(path: Path) -> dict[int, ColmapImage]:
    out: dict[int, ColmapImage] = {}
    lines = _text_lines(path)
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        e = line.split(maxsplit=9)
        try:
            img_id = int(e[0])
            q = np.array([float(v) for v in e[1:5]])
            t = np.array([float(v) for v in e[5:8]])
            cam_id, name = int(e[8]), e[9]
        except (IndexError, ValueError):
            raise SceneError(f"{path}:{i}: malformed image line") from None
        out[img_id] = ColmapImage(img_id, q, t, cam_id, name)
        i += 1  # the following line lists the image's 2D points (possibly empty)
    return out


def _read_points_txt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    xyz, rgb = [], []
    for ln, line in enumerate(_text_lines(path), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        e = line.split()
        try:
            xyz.append([float(v) for v in e[1:4]])
            rgb.append([int(v) for v in e[4:7]])
        except ValueError:
            raise SceneError(f"{path}:{ln}: malformed point line") from None
        if len(xyz[-1]) != 3 or len(rgb[-1]) != 3:
            raise SceneError(f"{path}:{ln}: malformed point line")
    return np.array(xyz, np.float32).reshape(-1, 3), np.array(rgb, np.uint8).reshape(-1, 3)


def read_cameras(path: Path) -> dict[int, ColmapCamera]:
    """Read ``cameras.bin`` or ``cameras.txt`` (by suffix) into ``{camera_id: ColmapCamera}``."""
    path = Path(path)
    return _read_cameras_bin(path) if path.suffix == ".bin" else _read_cameras_txt(path)


def read_images(path: Path) -> dict[int, ColmapImage]:
    """Read ``images.bin`` or ``images.txt`` (by suffix) into ``{image_id: ColmapImage}``."""
    path = Path(path)
    return _read_images_bin(path) if path.suffix == ".bin" else _read_images_txt(path)


def read_points3d(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``points3D.bin`` or ``points3D.txt``: positions ``[P, 3]`` float32 and colours ``[P, 3]`` uint8."""
    path = Path(path)
    return _read_points_bin(path) if path.suffix == ".bin" else _read_points_txt(path)
