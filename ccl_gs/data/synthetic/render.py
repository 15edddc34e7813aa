"""Ray casting of a :class:`SyntheticScene`: RGB, depth and exact label maps.

Vectorized NumPy ray casting, independent of the Gaussian rasterizer. Each
pixel's labels and depth come from the ray through its centre (pixel centres
at ``+0.5``); RGB averages ``s x s`` stratified rays per pixel
(anti-aliasing) with Lambertian shading under a fixed directional light.
"""

from __future__ import annotations

import numpy as np

from ccl_gs.data.synthetic.generator import SyntheticScene

LIGHT_DIR = np.array([0.45, -0.35, 0.82]) / np.linalg.norm([0.45, -0.35, 0.82])
"""Direction towards the (fixed, directional) light, world frame."""
AMBIENT = 0.45
"""Share of the albedo lit regardless of orientation."""
SKY = np.array([0.70, 0.80, 0.95])
"""Colour of rays that hit nothing."""


def pixel_rays(viewmat: np.ndarray, K: np.ndarray, width: int, height: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World rays through sub-pixel positions.

    Args:
        viewmat: ``[4, 4]`` world-to-camera (OpenCV).
        K: ``[3, 3]`` intrinsics.
        offsets: ``[S, 2]`` sub-pixel offsets in [0, 1) (``[[0.5, 0.5]]`` = centres).
    Returns:
        origins ``[H*W*S, 3]``, unit directions ``[H*W*S, 3]``, and the camera-z
        component of each direction ``[H*W*S]`` (depth = t * that), ordered
        row-major by pixel, then by offset.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    u = xs[..., None] + offsets[:, 0]  # [H, W, S]
    v = ys[..., None] + offsets[:, 1]
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    d_cam = np.stack([x, y, np.ones_like(x)], -1).reshape(-1, 3)
    d_cam /= np.linalg.norm(d_cam, axis=-1, keepdims=True)
    R = viewmat[:3, :3]
    c2w_R = R.T
    eye = -R.T @ viewmat[:3, 3]
    dirs = d_cam @ c2w_R.T
    origins = np.broadcast_to(eye, dirs.shape).copy()
    return origins, dirs, d_cam[:, 2].copy()


def cast(scene: SyntheticScene, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First hit of each ray among all primitives.

    Rays are culled per instance with its bounding sphere before the
    primitives of that instance are tested.

    Args:
        origins: ``[N, 3]``; dirs: ``[N, 3]`` unit.
    Returns:
        ``t`` ``[N]`` float64 (``inf`` = miss) and the element index ``[N]`` int64 (-1 = miss).
    """
    N = len(origins)
    best_t = np.full(N, np.inf)
    best_e = np.full(N, -1, np.int64)
    by_instance: dict[int, list[int]] = {}
    for i, el in enumerate(scene.elements):
        by_instance.setdefault(el.instance, []).append(i)
    for inst in scene.instances:
        idx = by_instance[inst["id"]]
        c, r = np.asarray(inst["center"]), float(inst["radius"]) * 1.0001 + 1e-6
        oc = origins - c
        b = (oc * dirs).sum(-1)
        cc = (oc * oc).sum(-1) - r * r
        disc = b * b - cc
        far = -b + np.sqrt(np.maximum(disc, 0.0))
        near = -b - np.sqrt(np.maximum(disc, 0.0))
        sel = np.nonzero((disc >= 0) & (far > 0) & (near < best_t))[0]
        if sel.size == 0:
            continue
        o, d = origins[sel], dirs[sel]
        for e in idx:
            t = scene.elements[e].primitive.intersect(o, d)
            closer = t < best_t[sel]
            best_t[sel[closer]] = t[closer]
            best_e[sel[closer]] = e
    return best_t, best_e


def _label_maps(scene: SyntheticScene, elem: np.ndarray) -> dict[str, np.ndarray]:
    """Element index per ray ``[N]`` -> id arrays ``[N]`` int32 (0 where ``elem < 0``)."""
    table = np.zeros((len(scene.elements) + 1, 4), np.int32)  # last row: miss
    for i, el in enumerate(scene.elements):
        table[i] = (el.instance, el.part, el.subpart, el.class_id)
    rows = table[np.where(elem >= 0, elem, len(scene.elements))]
    return {"instance": rows[:, 0], "part": rows[:, 1], "subpart": rows[:, 2], "class_id": rows[:, 3]}


def render_labels(scene: SyntheticScene, viewmat: np.ndarray, K: np.ndarray, width: int, height: int) -> dict[str, np.ndarray]:
    """Ground truth of one view from the pixel-centre rays.

    Returns:
        ``instance``, ``part``, ``subpart``, ``class_id``: ``[H, W]`` int32 (0 = no surface);
        ``depth``: ``[H, W]`` float32, z along the camera axis (0 = no surface).
    """
    o, d, dz = pixel_rays(viewmat, K, width, height, np.array([[0.5, 0.5]]))
    t, elem = cast(scene, o, d)
    out = {k: v.reshape(height, width) for k, v in _label_maps(scene, elem).items()}
    out["depth"] = np.where(np.isfinite(t), t * dz, 0.0).reshape(height, width).astype(np.float32)
    return out


def shade(scene: SyntheticScene, origins: np.ndarray, dirs: np.ndarray, t: np.ndarray, elem: np.ndarray) -> np.ndarray:
    """Colour of each ray's hit (``[N]`` rays) -> ``[N, 3]`` float64 in [0, 1]."""
    rgb = np.broadcast_to(SKY, (len(t), 3)).copy()
    hit = elem >= 0
    pts = origins + np.where(hit, t, 0.0)[:, None] * dirs
    for e in np.unique(elem[hit]):
        sel = np.nonzero(elem == e)[0]
        el = scene.elements[int(e)]
        p = pts[sel]
        albedo = el.material.shade(el.primitive.point_to_local(p))
        if scene.config.shading:
            n = el.primitive.normal(p)
            n = np.where(((n * dirs[sel]).sum(-1) > 0)[:, None], -n, n)  # face the viewer
            lam = np.clip(n @ LIGHT_DIR, 0.0, 1.0)
            albedo = albedo * (AMBIENT + (1.0 - AMBIENT) * lam)[:, None]
        rgb[sel] = albedo
    return rgb


def render_view(scene: SyntheticScene, view: int) -> dict[str, np.ndarray]:
    """Render view ``view`` of ``scene`` at its configured size.

    Returns:
        ``rgb``: ``[H, W, 3]`` uint8 (anti-aliased); ``depth``: ``[H, W]``
        float32 camera z (0 = no surface); ``instance``, ``part``,
        ``subpart``, ``class_id``: ``[H, W]`` int32 (0 = no surface).
    """
    W, H, s = scene.width, scene.height, scene.config.supersample
    vm = scene.viewmats[view]
    out = render_labels(scene, vm, scene.K, W, H)
    g = (np.arange(s) + 0.5) / s
    offsets = np.stack(np.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)  # [s*s, 2] (x, y)
    o, d, _ = pixel_rays(vm, scene.K, W, H, offsets)
    t, elem = cast(scene, o, d)
    rgb = shade(scene, o, d, t, elem).reshape(H, W, s * s, 3).mean(2)
    out["rgb"] = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    return out
