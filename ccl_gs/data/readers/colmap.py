"""COLMAP sparse models (``sparse/0/{cameras,images,points3D}.{bin,txt}``): reader and writers.

The binary and text formats are parsed by hand rather than through
``pycolmap``: they are small, stable and documented (COLMAP's
``src/colmap/scene/reconstruction_io.cc`` and the "Output format" page), a
parser is ~150 lines of ``struct``/``numpy``, and ``pycolmap`` is a large
compiled dependency whose Python API has changed between releases. Writing
the model back (for round-trip tests and the synthetic generator) is equally
small.

Conventions: COLMAP stores world-to-camera rotations as unit quaternions
``(qw, qx, qy, qz)`` and translations, with OpenCV camera axes, i.e. exactly
our ``viewmats``. Supported camera models map onto ours as::

    SIMPLE_PINHOLE (f, cx, cy)                    -> PINHOLE
    PINHOLE        (fx, fy, cx, cy)               -> PINHOLE
    SIMPLE_RADIAL  (f, cx, cy, k)                 -> OPENCV (k, 0, 0, 0)
    RADIAL         (f, cx, cy, k1, k2)            -> OPENCV (k1, k2, 0, 0)
    OPENCV         (fx, fy, cx, cy, k1, k2, p1, p2) -> OPENCV (k1, k2, p1, p2)

Any other model (fisheye, FULL_OPENCV, ...) is a :class:`SceneError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ccl_gs.data.readers._common import check_finite_poses, ensure_downscaled, image_size
from ccl_gs.data.scene import Camera, Scene, SceneError, register_reader
from ccl_gs.io.artifacts import atomic_write_bytes, atomic_write_text

# COLMAP camera model id -> (name, number of parameters).
CAMERA_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
CAMERA_MODEL_IDS: dict[str, int] = {name: i for i, (name, _) in CAMERA_MODELS.items()}
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")


@dataclass(frozen=True)
class ColmapCamera:
    """One entry of ``cameras.{bin,txt}``."""

    id: int
    model: str
    width: int
    height: int
    params: tuple[float, ...]


@dataclass(frozen=True)
class ColmapImage:
    """One entry of ``images.{bin,txt}`` (the 2D keypoints are not kept)."""

    id: int
    qvec: np.ndarray  # [4] (w, x, y, z), world-to-camera rotation
    tvec: np.ndarray  # [3] world-to-camera translation
    camera_id: int
    name: str

    def viewmat(self) -> np.ndarray:
        """World-to-camera ``[4, 4]`` float64."""
        m = np.eye(4)
        m[:3, :3] = qvec_to_rotmat(self.qvec)
        m[:3, 3] = self.tvec
        return m


# ----------------------------------------------------------------------------- rotations


def qvec_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Unit quaternion ``[4]`` (w, x, y, z) -> rotation ``[3, 3]``. The quaternion is normalized first."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """Rotation ``[3, 3]`` -> unit quaternion ``[4]`` (w, x, y, z) with ``w >= 0``.

    Uses the largest of the four diagonal combinations as pivot, which is
    numerically stable for every rotation (including 180 degree turns).
    """
    R = np.asarray(R, dtype=np.float64)
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    cands = np.array([tr, R[0, 0], R[1, 1], R[2, 2]])
    k = int(np.argmax(cands))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif k == 1:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif k == 2:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


# ----------------------------------------------------------------------------- binary parsing


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


# ----------------------------------------------------------------------------- text parsing


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


# ----------------------------------------------------------------------------- reader


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


# ----------------------------------------------------------------------------- writers


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
