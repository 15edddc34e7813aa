"""Analytic primitives with vectorized ray intersection (NumPy, float64).

Every primitive is defined in its own local frame and placed in the world by
a rigid pose ``x_world = R @ x_local + t``. Rays are moved into the local
frame, where the canonical shape is intersected in closed form (quadratics;
the torus solves its quartic through companion-matrix eigenvalues, polished
by Newton steps). Since the pose is rigid, the ray parameter ``t`` is the
same in both frames, so hits of different primitives compare directly.

This is the synthetic benchmark's own renderer: it shares no code with the
Gaussian rasterizer it is used to grade.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

EPS = 1e-9
"""Smallest accepted ray parameter (rays start at the camera centre)."""


def rotation_z(angle: float) -> np.ndarray:
    """``[3, 3]`` rotation by ``angle`` radians about +z."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_x(angle: float) -> np.ndarray:
    """``[3, 3]`` rotation by ``angle`` radians about +x."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(angle: float) -> np.ndarray:
    """``[3, 3]`` rotation by ``angle`` radians about +y."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _mul(x: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``x @ M`` for ``x`` ``[N, 3]`` and ``M`` ``[3, 3]`` (column sums: much faster than matmul for tall x)."""
    return x[:, 0:1] * M[0] + x[:, 1:2] * M[1] + x[:, 2:3] * M[2]


def _smallest_positive_root(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both roots of ``a t^2 + b t + c = 0`` per ray (``inf`` where there is none).

    Args:
        a, b, c: ``[N]`` coefficients (``a > 0``).
    Returns:
        ``(t0, t1)`` each ``[N]``, ``t0 <= t1``; ``inf`` for no real root.
    """
    disc = b * b - 4.0 * a * c
    ok = disc >= 0.0
    sq = np.sqrt(np.where(ok, disc, 0.0))
    # Numerically stable pair of roots.
    q = -0.5 * (b + np.where(b >= 0.0, sq, -sq))
    with np.errstate(divide="ignore", invalid="ignore"):
        r0 = q / a
        r1 = np.where(q != 0.0, c / q, r0)
    t0 = np.where(ok, np.minimum(r0, r1), np.inf)
    t1 = np.where(ok, np.maximum(r0, r1), np.inf)
    return t0, t1


def _first_valid(*candidates: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Smallest ``t > EPS`` among ``(t, valid)`` candidate pairs; ``inf`` if none."""
    best = None
    for t, valid in candidates:
        tt = np.where(valid & (t > EPS) & np.isfinite(t), t, np.inf)
        best = tt if best is None else np.minimum(best, tt)
    assert best is not None
    return best


@dataclass
class Primitive(abc.ABC):
    """A solid shape in a local frame, placed by ``rotation`` and ``translation``."""

    rotation: np.ndarray = field(default_factory=lambda: np.eye(3), kw_only=True)
    """``[3, 3]`` local-to-world rotation."""
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3), kw_only=True)
    """``[3]`` position of the local origin in the world."""

    kind: str = field(init=False, default="")

    def to_local(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World rays ``[N, 3]``, ``[N, 3]`` -> local rays (same ``t``)."""
        R = self.rotation
        return _mul(origins - self.translation, R), _mul(dirs, R)

    def point_to_local(self, points: np.ndarray) -> np.ndarray:
        """World points ``[N, 3]`` -> local points ``[N, 3]``."""
        return _mul(points - self.translation, self.rotation)

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Ray parameter of the first hit per world ray.

        Args:
            origins: ``[N, 3]`` ray origins (world).
            dirs: ``[N, 3]`` ray directions (world, unit length).
        Returns:
            ``[N]`` float64, ``inf`` where the ray misses.
        """
        o, d = self.to_local(origins, dirs)
        return self._intersect_local(o, d)

    def normal(self, points: np.ndarray) -> np.ndarray:
        """World-space unit normals ``[N, 3]`` at world surface points ``[N, 3]``."""
        n = self._normal_local(self.point_to_local(points))
        n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
        return _mul(n, self.rotation.T)

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        """Centre ``[3]`` (world) and radius of a sphere enclosing the shape."""
        return self.translation.copy(), self._local_radius()

    def corners(self) -> np.ndarray:
        """``[8, 3]`` world corners of the local axis-aligned bounding box."""
        h = np.asarray(self._local_half_extent())
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
        return (signs * h) @ self.rotation.T + self.translation

    @abc.abstractmethod
    def _local_half_extent(self) -> tuple[float, float, float]: ...

    @abc.abstractmethod
    def _intersect_local(self, o: np.ndarray, d: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def _normal_local(self, p: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def _local_radius(self) -> float: ...


@dataclass
class Ellipsoid(Primitive):
    """Axis-aligned ellipsoid with semi-axes ``radii`` (a sphere when all equal)."""

    radii: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        self.kind = "sphere" if len(set(self.radii)) == 1 else "ellipsoid"

    def _intersect_local(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        s = 1.0 / np.asarray(self.radii)
        o, d = o * s, d * s
        a = (d * d).sum(-1)
        b = 2.0 * (o * d).sum(-1)
        c = (o * o).sum(-1) - 1.0
        t0, t1 = _smallest_positive_root(a, b, c)
        return _first_valid((t0, np.ones_like(t0, bool)), (t1, np.ones_like(t1, bool)))

    def _normal_local(self, p: np.ndarray) -> np.ndarray:
        return p / np.asarray(self.radii) ** 2

    def _local_radius(self) -> float:
        return float(max(self.radii))

    def _local_half_extent(self) -> tuple[float, float, float]:
        return tuple(self.radii)


def Sphere(radius: float, **pose) -> Ellipsoid:
    """A sphere of ``radius`` (an :class:`Ellipsoid` with equal semi-axes)."""
    return Ellipsoid(radii=(radius, radius, radius), **pose)


@dataclass
class Box(Primitive):
    """Axis-aligned box with half extents ``half``."""

    half: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        self.kind = "box"

    def _intersect_local(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        h = np.asarray(self.half)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
            t1 = (-h - o) * inv
            t2 = (h - o) * inv
        # A direction component of 0 gives +-inf (or nan for o exactly on a face); treat nan as "inside slab".
        lo = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
        hi = np.nan_to_num(np.maximum(t1, t2), nan=np.inf)
        tn = lo.max(-1)
        tf = hi.min(-1)
        hit = tn <= tf
        return _first_valid((tn, hit), (tf, hit & (tn <= EPS)))

    def _normal_local(self, p: np.ndarray) -> np.ndarray:
        h = np.asarray(self.half)
        r = np.abs(p) / h
        axis = r.argmax(-1)
        n = np.zeros_like(p)
        idx = np.arange(len(p))
        n[idx, axis] = np.sign(p[idx, axis])
        return n

    def _local_radius(self) -> float:
        return float(np.linalg.norm(self.half))

    def _local_half_extent(self) -> tuple[float, float, float]:
        return tuple(self.half)


@dataclass
class Cone(Primitive):
    """Closed frustum along local z: radius ``r_bottom`` at ``z = -half_height``, ``r_top`` at ``+half_height``.

    ``r_bottom == r_top`` is a capped cylinder.
    """

    r_bottom: float = 1.0
    r_top: float = 1.0
    half_height: float = 1.0

    def __post_init__(self) -> None:
        self.kind = "cylinder" if self.r_bottom == self.r_top else "cone"

    def _slope(self) -> tuple[float, float]:
        k = (self.r_top - self.r_bottom) / (2.0 * self.half_height)
        m = self.r_bottom + k * self.half_height
        return k, m

    def _intersect_local(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        k, m = self._slope()
        h = self.half_height
        a = d[:, 0] ** 2 + d[:, 1] ** 2 - (k * d[:, 2]) ** 2
        b = 2.0 * (o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1] - k * d[:, 2] * (k * o[:, 2] + m))
        c = o[:, 0] ** 2 + o[:, 1] ** 2 - (k * o[:, 2] + m) ** 2
        safe_a = np.where(np.abs(a) < 1e-15, 1e-15, a)
        disc = b * b - 4.0 * safe_a * c
        ok = disc >= 0
        sq = np.sqrt(np.where(ok, disc, 0.0))
        ts = [(-b - sq) / (2 * safe_a), (-b + sq) / (2 * safe_a)]
        cands = []
        for t in ts:
            z = o[:, 2] + t * d[:, 2]
            cands.append((t, ok & (np.abs(z) <= h)))
        with np.errstate(divide="ignore", invalid="ignore"):
            for zc, rc in ((-h, self.r_bottom), (h, self.r_top)):
                t = (zc - o[:, 2]) / d[:, 2]
                x = o[:, 0] + t * d[:, 0]
                y = o[:, 1] + t * d[:, 1]
                cands.append((t, np.isfinite(t) & (x * x + y * y <= rc * rc)))
        return _first_valid(*cands)

    def _normal_local(self, p: np.ndarray) -> np.ndarray:
        k, m = self._slope()
        h = self.half_height
        side = np.stack([p[:, 0], p[:, 1], -k * (k * p[:, 2] + m)], -1)
        side /= np.maximum(np.linalg.norm(side, axis=-1, keepdims=True), 1e-12)
        cap = np.zeros_like(p)
        cap[:, 2] = np.sign(p[:, 2])
        on_cap = np.abs(np.abs(p[:, 2]) - h) < 1e-7 * max(1.0, h)
        r = np.hypot(p[:, 0], p[:, 1])
        rz = k * p[:, 2] + m
        on_cap &= r < rz * (1 - 1e-9)  # rim points count as side
        return np.where(on_cap[:, None], cap, side)

    def _local_radius(self) -> float:
        return float(np.hypot(max(self.r_bottom, self.r_top), self.half_height))

    def _local_half_extent(self) -> tuple[float, float, float]:
        r = max(self.r_bottom, self.r_top)
        return (r, r, self.half_height)


def Cylinder(radius: float, half_height: float, **pose) -> Cone:
    """A capped cylinder along local z (a :class:`Cone` with equal radii)."""
    return Cone(r_bottom=radius, r_top=radius, half_height=half_height, **pose)


@dataclass
class Capsule(Primitive):
    """Segment ``z in [-half_length, half_length]`` swept by a sphere of ``radius``."""

    radius: float = 1.0
    half_length: float = 1.0

    def __post_init__(self) -> None:
        self.kind = "capsule"

    def _intersect_local(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        r, h = self.radius, self.half_length
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = 2.0 * (o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1])
        c = o[:, 0] ** 2 + o[:, 1] ** 2 - r * r
        t0, t1 = _smallest_positive_root(np.where(a < 1e-15, 1e-15, a), b, c)
        cands = []
        for t in (t0, t1):
            z = o[:, 2] + t * d[:, 2]
            cands.append((t, np.abs(z) <= h))
        for zc in (-h, h):
            oc = o - np.array([0.0, 0.0, zc])
            s0, s1 = _smallest_positive_root((d * d).sum(-1), 2.0 * (oc * d).sum(-1), (oc * oc).sum(-1) - r * r)
            cands += [(s0, np.isfinite(s0)), (s1, np.isfinite(s1))]
        return _first_valid(*cands)

    def _normal_local(self, p: np.ndarray) -> np.ndarray:
        z = np.clip(p[:, 2], -self.half_length, self.half_length)
        return p - np.stack([np.zeros_like(z), np.zeros_like(z), z], -1)

    def _local_radius(self) -> float:
        return self.radius + self.half_length

    def _local_half_extent(self) -> tuple[float, float, float]:
        return (self.radius, self.radius, self.radius + self.half_length)


@dataclass
class Torus(Primitive):
    """Torus around local z: ring radius ``major``, tube radius ``minor``."""

    major: float = 1.0
    minor: float = 0.25

    def __post_init__(self) -> None:
        self.kind = "torus"

    def _intersect_local(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        out = np.full(len(o), np.inf)
        # Only rays that meet the bounding sphere need the quartic.
        Rb = self.major + self.minor
        t0, t1 = _smallest_positive_root((d * d).sum(-1), 2.0 * (o * d).sum(-1), (o * o).sum(-1) - Rb * Rb)
        cand = np.isfinite(t0) & (t1 > EPS)
        if not cand.any():
            return out
        o, d = o[cand], d[cand]
        # Shift the origin to the bounding-sphere entry for a well-conditioned quartic.
        t_shift = np.maximum(t0[cand], 0.0)
        o = o + t_shift[:, None] * d
        R2, r2 = self.major**2, self.minor**2
        dd = (d * d).sum(-1)
        od = (o * d).sum(-1)
        oo = (o * o).sum(-1)
        K = oo + R2 - r2
        c4 = dd * dd
        c3 = 4.0 * dd * od
        c2 = 4.0 * od * od + 2.0 * dd * K - 4.0 * R2 * (d[:, 0] ** 2 + d[:, 1] ** 2)
        c1 = 4.0 * od * K - 8.0 * R2 * (o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1])
        c0 = K * K - 4.0 * R2 * (o[:, 0] ** 2 + o[:, 1] ** 2)
        n = len(o)
        comp = np.zeros((n, 4, 4))
        comp[:, 1, 0] = comp[:, 2, 1] = comp[:, 3, 2] = 1.0
        comp[:, 0, 0] = -c3 / c4
        comp[:, 0, 1] = -c2 / c4
        comp[:, 0, 2] = -c1 / c4
        comp[:, 0, 3] = -c0 / c4
        roots = np.linalg.eigvals(comp)  # [n, 4]
        scale = self.major + self.minor
        real = np.abs(roots.imag) < 1e-4 * scale + 1e-6 * np.abs(roots.real)
        t = np.where(real, roots.real, np.inf)
        t = np.where(t > -EPS, t, np.inf)
        t = np.sort(t, axis=-1)[:, 0]
        ok = np.isfinite(t)
        # Newton polish on the quartic.
        tt = np.where(ok, t, 0.0)
        for _ in range(3):
            f = (((c4 * tt + c3) * tt + c2) * tt + c1) * tt + c0
            df = ((4 * c4 * tt + 3 * c3) * tt + 2 * c2) * tt + c1
            step = np.where(np.abs(df) > 1e-12, f / np.where(df == 0, 1.0, df), 0.0)
            tt = tt - np.clip(step, -0.01 * scale, 0.01 * scale)
        t = np.where(ok, tt, np.inf) + t_shift
        out[cand] = np.where(t > EPS, t, np.inf)
        return out

    def _normal_local(self, p: np.ndarray) -> np.ndarray:
        rxy = np.maximum(np.hypot(p[:, 0], p[:, 1]), 1e-12)
        ring = np.stack([p[:, 0] / rxy * self.major, p[:, 1] / rxy * self.major, np.zeros(len(p))], -1)
        return p - ring

    def _local_radius(self) -> float:
        return self.major + self.minor

    def _local_half_extent(self) -> tuple[float, float, float]:
        return (self.major + self.minor, self.major + self.minor, self.minor)


def transformed(prim: Primitive, rotation: np.ndarray, translation: np.ndarray) -> Primitive:
    """A copy of ``prim`` moved by the rigid transform ``x -> rotation @ x + translation``."""
    import copy

    out = copy.copy(prim)
    out.rotation = rotation @ prim.rotation
    out.translation = rotation @ prim.translation + translation
    return out
