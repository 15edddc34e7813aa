"""Analytic primitives: hits lie on the surface, nothing is crossed before them, normals are unit."""

import numpy as np
import pytest

from ccl_gs.data.synthetic.shapes import Box, Capsule, Cone, Ellipsoid, Torus, rotation_x, rotation_z


def _inside(prim, p):
    """Independent inside test in the local frame (p: [N, 3])."""
    if isinstance(prim, Ellipsoid):
        return ((p / np.asarray(prim.radii)) ** 2).sum(-1) < 1
    if isinstance(prim, Box):
        return (np.abs(p) < np.asarray(prim.half)).all(-1)
    if isinstance(prim, Cone):
        k = (prim.r_top - prim.r_bottom) / (2 * prim.half_height)
        r = prim.r_bottom + k * (p[:, 2] + prim.half_height)
        return (np.abs(p[:, 2]) < prim.half_height) & (np.hypot(p[:, 0], p[:, 1]) < r)
    if isinstance(prim, Capsule):
        z = np.clip(p[:, 2], -prim.half_length, prim.half_length)
        return np.hypot(np.hypot(p[:, 0], p[:, 1]), p[:, 2] - z) < prim.radius
    if isinstance(prim, Torus):
        return np.hypot(np.hypot(p[:, 0], p[:, 1]) - prim.major, p[:, 2]) < prim.minor
    raise TypeError(prim)


SHAPES = [
    Ellipsoid(radii=(0.5, 0.3, 0.2)),
    Box(half=(0.4, 0.2, 0.3)),
    Cone(r_bottom=0.4, r_top=0.1, half_height=0.3),
    Cone(r_bottom=0.25, r_top=0.25, half_height=0.4),
    Capsule(radius=0.15, half_length=0.3),
    Torus(major=0.4, minor=0.1),
]


@pytest.mark.parametrize("prim", SHAPES, ids=lambda p: p.kind)
def test_first_hit_on_surface_and_nothing_before(prim):
    rng = np.random.default_rng(0)
    prim.rotation = rotation_z(0.7) @ rotation_x(0.4)
    prim.translation = np.array([0.1, -0.2, 0.3])
    N = 2000
    dirs_raw = rng.normal(size=(N, 3))
    origins = prim.translation - 2.5 * dirs_raw / np.linalg.norm(dirs_raw, axis=1, keepdims=True)
    target = prim.translation + rng.uniform(-0.45, 0.45, size=(N, 3))
    dirs = target - origins
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    t = prim.intersect(origins, dirs)
    hit = np.isfinite(t)
    assert hit.sum() > N * 0.2 and (~hit).sum() > 0
    # sample points along each ray: before the hit none is inside; rays that miss never enter
    s = np.linspace(0.0, 1.0, 80)[1:-1]
    tt = np.where(hit, t, 5.0)
    for f in s:
        p = prim.point_to_local(origins + (tt * f)[:, None] * dirs)
        assert not _inside(prim, p).any()
    # just past the hit we are inside (or on a grazing tangent), the hit is on the surface
    p_hit = prim.point_to_local(origins[hit] + t[hit, None] * dirs[hit])
    p_in = prim.point_to_local(origins[hit] + (t[hit] + 1e-4)[:, None] * dirs[hit])
    p_out = prim.point_to_local(origins[hit] + (t[hit] - 1e-6)[:, None] * dirs[hit])
    assert _inside(prim, p_in).mean() > 0.97
    assert not _inside(prim, p_out).any()
    n = prim.normal(origins[hit] + t[hit, None] * dirs[hit])
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0)
    # normals face against most incoming rays
    assert ((n * dirs[hit]).sum(1) < 1e-6).mean() > 0.99
    assert np.isfinite(p_hit).all()
