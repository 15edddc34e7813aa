"""PLY files: 3D Gaussians in the standard 3DGS layout, and plain coloured point clouds.

Gaussian layout (the one the reference 3DGS code writes and common viewers
open), one ``vertex`` element, binary little-endian, float32 properties in
this order::

    x y z  nx ny nz  f_dc_0 f_dc_1 f_dc_2  f_rest_0 ... f_rest_{3K-1}
    opacity  scale_0 scale_1 scale_2  rot_0 rot_1 rot_2 rot_3  <extras>

Values are raw (pre-activation): ``opacity`` is a logit, ``scale_*`` are log
scales, ``rot_*`` a quaternion ``(w, x, y, z)``, not necessarily normalized.
``f_rest`` is channel-major: coefficient ``k`` (of ``K`` higher-order SH
coefficients) of colour channel ``c`` is ``f_rest_{c * K + k}``.

Extra per-Gaussian attributes follow as further properties: an ``[N]`` array
``name`` becomes one property ``name``; an ``[N, d]`` array becomes
``name_0 ... name_{d-1}``. Integer arrays keep an integer PLY type (int64 is
stored as int32 when it fits, since PLY has no 64-bit integers; bool as
uint8); float64 stays double, other floats are float32.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ccl_gs.io.artifacts import atomic_path


class PlyError(ValueError):
    """A PLY file is missing, corrupt or lacks the expected properties; the message names the file."""


_SUPPORTED = {
    np.dtype(np.int8): "i1",
    np.dtype(np.uint8): "u1",
    np.dtype(np.int16): "i2",
    np.dtype(np.uint16): "u2",
    np.dtype(np.int32): "i4",
    np.dtype(np.uint32): "u4",
    np.dtype(np.float32): "f4",
    np.dtype(np.float64): "f8",
}
_STANDARD_SINGLE = {"x", "y", "z", "nx", "ny", "nz", "opacity"}
_STANDARD_PREFIX = re.compile(r"^(f_dc|f_rest|scale|rot)_\d+$")


def _np(a: Any) -> np.ndarray:
    """Numpy view of an array-like or a (possibly CUDA, possibly grad-tracking) torch tensor."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _ply_dtype(name: str, a: np.ndarray) -> tuple[np.ndarray, str]:
    """The array cast to a PLY-representable dtype, and that dtype's code."""
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    elif a.dtype in (np.int64, np.uint64):
        info = np.iinfo(np.int32 if a.dtype == np.int64 else np.uint32)
        if a.size and (a.min() < info.min or a.max() > info.max):
            raise ValueError(f"extra '{name}': values do not fit in 32-bit integers (PLY has no 64-bit ints)")
        a = a.astype(np.int32 if a.dtype == np.int64 else np.uint32)
    elif np.issubdtype(a.dtype, np.floating) and a.dtype != np.float64:
        a = a.astype(np.float32)
    if a.dtype not in _SUPPORTED:
        raise ValueError(f"extra '{name}': dtype {a.dtype} cannot be stored in a PLY file")
    return a, _SUPPORTED[a.dtype]


@dataclass
class GaussianPly:
    """The content of a Gaussian PLY file (numpy arrays, raw pre-activation values)."""

    means: np.ndarray
    """``[N, 3]`` float32 centres."""
    quats: np.ndarray
    """``[N, 4]`` float32 rotations (w, x, y, z), as stored."""
    log_scales: np.ndarray
    """``[N, 3]`` float32 log scales."""
    opacity_logits: np.ndarray
    """``[N]`` float32 opacity logits."""
    sh0: np.ndarray
    """``[N, 1, 3]`` float32 DC SH coefficients."""
    shN: np.ndarray | None
    """``[N, K, 3]`` float32 higher SH coefficients (K = (degree + 1)^2 - 1), or None for degree 0."""
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    """Extra attributes by name: ``[N]`` or ``[N, d]``, with their stored dtype."""
    normals: np.ndarray | None = None
    """``[N, 3]`` float32 normals, or None when the file's normals are all zero."""

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        """SH degree implied by ``shN`` (0 when None)."""
        K = 0 if self.shN is None else self.shN.shape[1]
        return int(round(np.sqrt(K + 1))) - 1

    def to_tensors(self, device: str = "cpu") -> dict[str, Any]:
        """The arrays as torch tensors on ``device`` (``extra`` nested as a dict)."""
        import torch

        out: dict[str, Any] = {}
        for k in ("means", "quats", "log_scales", "opacity_logits", "sh0", "shN", "normals"):
            v = getattr(self, k)
            out[k] = None if v is None else torch.from_numpy(np.ascontiguousarray(v)).to(device)
        out["extra"] = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in self.extra.items()}
        return out


def write_gaussians_ply(
    path: str | Path,
    means: Any,  # [N, 3]
    quats: Any,  # [N, 4] (w, x, y, z)
    log_scales: Any,  # [N, 3]
    opacity_logits: Any,  # [N]
    sh0: Any,  # [N, 1, 3]
    shN: Any | None = None,  # [N, K, 3]
    extra: Mapping[str, Any] | None = None,  # name -> [N] or [N, d]
    normals: Any | None = None,  # [N, 3]
) -> None:
    """Write Gaussians as a binary little-endian PLY in the 3DGS layout (see the module docstring).

    Args:
        path: output file; written atomically (temp file + rename).
        means: ``[N, 3]`` centres.
        quats: ``[N, 4]`` rotations (w, x, y, z), raw.
        log_scales: ``[N, 3]`` log scales.
        opacity_logits: ``[N]`` (or ``[N, 1]``) opacity logits.
        sh0: ``[N, 1, 3]`` (or ``[N, 3]``) DC SH coefficients.
        shN: ``[N, K, 3]`` higher SH coefficients, or None / ``K = 0`` for degree 0.
        extra: extra attributes, ``[N]`` or ``[N, d]`` arrays, float or int.
        normals: ``[N, 3]``, zeros when None.

    Arrays may be numpy arrays or torch tensors (any device).
    """
    from plyfile import PlyData, PlyElement

    means = _np(means).astype(np.float32).reshape(-1, 3)
    N = means.shape[0]

    def take(name: str, a: Any, shape: tuple[int, ...]) -> np.ndarray:
        a = _np(a).astype(np.float32)
        if a.size != N * int(np.prod(shape)):
            raise ValueError(f"{name}: expected shape [{N}, {', '.join(map(str, shape))}], got {tuple(a.shape)}")
        return a.reshape((N,) + shape)

    quats_a = take("quats", quats, (4,))
    scales_a = take("log_scales", log_scales, (3,))
    opac_a = take("opacity_logits", opacity_logits, ())
    dc = take("sh0", sh0, (3,))
    if shN is None:
        rest = np.zeros((N, 0), np.float32)
    else:
        s = _np(shN).astype(np.float32)
        if s.ndim != 3 or s.shape[0] != N or s.shape[2] != 3:
            raise ValueError(f"shN: expected shape [{N}, K, 3], got {tuple(s.shape)}")
        rest = s.transpose(0, 2, 1).reshape(N, 3 * s.shape[1])  # [N, 3 * K], channel-major
    nrm = np.zeros((N, 3), np.float32) if normals is None else take("normals", normals, (3,))

    columns: list[tuple[str, np.ndarray, str]] = []
    for i, n in enumerate(("x", "y", "z")):
        columns.append((n, means[:, i], "f4"))
    for i, n in enumerate(("nx", "ny", "nz")):
        columns.append((n, nrm[:, i], "f4"))
    columns += [(f"f_dc_{i}", dc[:, i], "f4") for i in range(3)]
    columns += [(f"f_rest_{i}", rest[:, i], "f4") for i in range(rest.shape[1])]
    columns.append(("opacity", opac_a, "f4"))
    columns += [(f"scale_{i}", scales_a[:, i], "f4") for i in range(3)]
    columns += [(f"rot_{i}", quats_a[:, i], "f4") for i in range(4)]

    names = {c[0] for c in columns}
    for name, value in (extra or {}).items():
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise ValueError(f"extra '{name}': names must be identifiers (letters, digits, underscores)")
        a, code = _ply_dtype(name, _np(value))
        if a.ndim == 1 and a.shape[0] == N:
            new = [(name, a, code)]
        elif a.ndim == 2 and a.shape[0] == N:
            new = [(f"{name}_{j}", a[:, j], code) for j in range(a.shape[1])]
        else:
            raise ValueError(f"extra '{name}': expected shape [{N}] or [{N}, d], got {a.shape}")
        for col_name, _, _ in new:
            if col_name in names or col_name in _STANDARD_SINGLE or _STANDARD_PREFIX.match(col_name):
                raise ValueError(f"extra '{name}': property '{col_name}' collides with a standard or earlier property")
            names.add(col_name)
        columns += new

    vertex = np.empty(N, dtype=[(n, "<" + code) for n, _, code in columns])
    for n, a, _ in columns:
        vertex[n] = a
    ply = PlyData([PlyElement.describe(vertex, "vertex")], text=False, byte_order="<")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            ply.write(f)


def _read_vertex(path: Path) -> np.ndarray:
    """The ``vertex`` element of a PLY file as a structured array; errors name the file."""
    from plyfile import PlyData

    if not path.is_file():
        raise PlyError(f"missing PLY file: {path}")
    try:
        with open(path, "rb") as f:
            # Memory-mapped read (the row-by-row fallback is ~100x slower), copied out before closing.
            ply = PlyData.read(f, mmap="c")
            if "vertex" not in ply:
                raise PlyError(f"PLY file {path} has no 'vertex' element")
            data = np.array(ply["vertex"].data)
    except PlyError:
        raise
    except Exception as e:  # plyfile raises PlyParseError, ValueError, struct/numpy errors on corrupt input
        raise PlyError(f"corrupt PLY file {path}: {type(e).__name__}: {e}".splitlines()[0]) from None
    return data


def read_gaussians_ply(path: str | Path) -> GaussianPly:
    """Read a Gaussian PLY (3DGS layout, see the module docstring) back into a :class:`GaussianPly`.

    Properties outside the standard layout are returned in ``extra``:
    ``name_0 ... name_{d-1}`` (consecutive from 0) regroup into one ``[N, d]``
    array ``name``; any other property is an ``[N]`` array. A missing,
    truncated or malformed file, or one lacking a standard property, raises
    :class:`PlyError` naming it.
    """
    path = Path(path)
    v = _read_vertex(path)
    props = list(v.dtype.names or ())
    required = ["x", "y", "z", "opacity"] + [f"f_dc_{i}" for i in range(3)]
    required += [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    missing = [p for p in required if p not in props]
    if missing:
        raise PlyError(f"PLY file {path} is not a Gaussian PLY: missing properties {missing}")

    def cols(names: list[str]) -> np.ndarray:
        return np.stack([np.asarray(v[n], np.float32) for n in names], axis=1) if names else None  # type: ignore[return-value]

    N = len(v)
    rest_names = sorted((p for p in props if p.startswith("f_rest_")), key=lambda s: int(s.rsplit("_", 1)[1]))
    if len(rest_names) % 3 != 0:
        raise PlyError(f"PLY file {path}: {len(rest_names)} f_rest properties is not a multiple of 3")
    K = len(rest_names) // 3
    shN = None if K == 0 else cols(rest_names).reshape(N, 3, K).transpose(0, 2, 1).copy()
    normals = cols(["nx", "ny", "nz"]) if all(n in props for n in ("nx", "ny", "nz")) else None
    if normals is not None and not normals.any():
        normals = None

    standard = set(required) | {"nx", "ny", "nz"} | set(rest_names)
    extra_names = [p for p in props if p not in standard]
    groups: dict[str, dict[int, str]] = {}
    for p in extra_names:
        m = re.fullmatch(r"(.+)_(\d+)", p)
        if m:
            groups.setdefault(m.group(1), {})[int(m.group(2))] = p
    extra: dict[str, np.ndarray] = {}
    grouped: set[str] = set()
    for base, idx in groups.items():
        if sorted(idx) == list(range(len(idx))) and base not in extra_names:
            extra[base] = np.stack([np.asarray(v[idx[j]]) for j in range(len(idx))], axis=1)
            grouped.update(idx.values())
    for p in extra_names:
        if p not in grouped:
            extra[p] = np.asarray(v[p]).copy()
    extra = {k: np.ascontiguousarray(a.astype(a.dtype.newbyteorder("="))) for k, a in extra.items()}

    return GaussianPly(
        means=cols(["x", "y", "z"]),
        quats=cols([f"rot_{i}" for i in range(4)]),
        log_scales=cols([f"scale_{i}" for i in range(3)]),
        opacity_logits=np.asarray(v["opacity"], np.float32).copy(),
        sh0=cols([f"f_dc_{i}" for i in range(3)]).reshape(N, 1, 3),
        shN=shN,
        extra=extra,
        normals=normals,
    )


def write_points_ply(path: str | Path, points: Any, colors: Any | None = None) -> None:
    """Write a coloured point cloud (``x y z`` float32, ``red green blue`` uint8), binary, atomically.

    Args:
        points: ``[P, 3]`` positions.
        colors: ``[P, 3]`` uint8 colours, or None for none.
    """
    from plyfile import PlyData, PlyElement

    pts = _np(points).astype(np.float32).reshape(-1, 3)
    dtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        dtype += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    v = np.empty(len(pts), dtype=dtype)
    v["x"], v["y"], v["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    if colors is not None:
        c = _np(colors).astype(np.uint8).reshape(-1, 3)
        if len(c) != len(pts):
            raise ValueError(f"{len(c)} colours for {len(pts)} points")
        v["red"], v["green"], v["blue"] = c[:, 0], c[:, 1], c[:, 2]
    ply = PlyData([PlyElement.describe(v, "vertex")], text=False, byte_order="<")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            ply.write(f)


def read_points_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a point cloud PLY: positions ``[P, 3]`` float32 and colours ``[P, 3]`` uint8 (or None).

    Float colours in [0, 1] are scaled to 0..255. Errors raise :class:`PlyError` naming the file.
    """
    path = Path(path)
    v = _read_vertex(path)
    props = v.dtype.names or ()
    if not all(n in props for n in ("x", "y", "z")):
        raise PlyError(f"PLY file {path} has no x, y, z vertex properties")
    pts = np.stack([np.asarray(v[n], np.float32) for n in ("x", "y", "z")], axis=1)
    colors = None
    if all(n in props for n in ("red", "green", "blue")):
        c = np.stack([np.asarray(v[n]) for n in ("red", "green", "blue")], axis=1)
        if np.issubdtype(c.dtype, np.floating):
            c = np.clip(np.round(c * 255.0), 0, 255)
        colors = c.astype(np.uint8)
    return pts, colors
