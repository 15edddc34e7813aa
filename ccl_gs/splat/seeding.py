"""Where Gaussians start when a scene has no sparse points.

Two kinds of capture need different starting volumes:

* **Object-centric** (an orbit, a turntable, a phone walk-around, NeRF-synthetic):
  the optical axes meet near one point, the *focus* (:func:`focus_point`). The
  object sits inside the sphere every camera sees around the focus, of radius
  ``r = median_i(d_i * min(W_i / 2 f_x, H_i / 2 f_y))`` (``d_i`` the camera's
  distance to the focus). The old rule, a cube of 1.5 scene scales (camera radius
  x 1.1), is about 5 r wide on NeRF-synthetic and contains the cameras: almost
  every random Gaussian starts in empty space or right in front of a lens, where
  it turns into a floater that explains one training view and ruins the others.
  Here the random Gaussians fill a cube of half-side ``random_extent * r`` around
  the focus; when the images have a background (no alpha), a share
  ``background_fraction`` is placed on random camera rays *behind* that cube,
  uniformly in disparity out to the far bound (the format's bounds, or ``3 d_i``).
* **Forward-facing** (LLFF-like, axes nearly parallel): a cube of
  ``random_extent`` (1.5) scene scales around the camera centroid, as before.

:func:`init_region` says which rule applies and with what numbers (the trainer
logs it); :func:`random_points` draws the points.

By default (``--init.seeding stereo``) the points do not come from this volume
at all but from a plane sweep over the training views
(:mod:`ccl_gs.splat.stereo`): the photo-consistent depth of random pixels,
searched between each view's near and far bound (:func:`sweep_range`). The
volume is still computed: it sets the far bound, and it is the fallback when
fewer than ``STEREO_MIN_SHARE`` of the requested points match.
:func:`seed_points` picks the rule through :data:`SEEDERS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

FORWARD_EXTENT = 1.5
"""Default half-side of the forward-facing random cube, in scene scales."""
OBJECT_EXTENT = 1.0
"""Default half-side of the object-centric random cube, in radii seen at the focus."""
BACKGROUND_FRACTION = 0.3
"""Default share of object-centric random Gaussians placed behind the object cube (scenes with a background)."""
FAR_MULTIPLE = 3.0
"""Far limit of background Gaussians, in camera-to-focus distances, when the format gives no bounds."""
NEAR_FRACTION = 0.2
"""Near limit of the plane sweep, in camera-to-focus distances (object captures), when the format gives no bounds."""
STEREO_MIN_SHARE = 0.1
"""Below this share of matched points the stereo seeding falls back to random points."""


def focus_point(scene) -> np.ndarray | None:
    """The least-squares closest point to all optical axes ``[3]``, or None when the axes are nearly
    parallel (forward-facing captures) and no such point is well defined."""
    c2w = scene.camtoworlds
    o, d = c2w[:, :3, 3], c2w[:, :3, 2]
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for oi, di in zip(o, d):
        P = np.eye(3) - np.outer(di, di)
        A += P
        b += P @ oi
    if np.linalg.cond(A) > 1e4:
        return None
    return np.linalg.solve(A, b)


def in_front_of_all(scene, point: np.ndarray) -> bool:
    """Whether ``point [3]`` lies in front of every camera."""
    c2w = scene.camtoworlds
    return bool((np.einsum("vi,vi->v", point[None] - c2w[:, :3, 3], c2w[:, :3, 2]) > 0).all())


def scene_focus(scene) -> np.ndarray:
    """The point the cameras look at: ``[3]``.

    :func:`focus_point`; when the axes are nearly parallel, the camera centroid.
    """
    p = focus_point(scene)
    return scene.camera_centers.mean(0) if p is None else p


@dataclass(frozen=True)
class InitRegion:
    """The volume random Gaussians start in."""

    kind: str
    """``"object"`` (object-centric capture) or ``"forward"``."""
    center: np.ndarray
    """``[3]`` centre of the cube."""
    half: float
    """Half-side of the cube (world units)."""
    background: float
    """Share of the Gaussians placed on camera rays behind the cube (object-centric only)."""
    far: np.ndarray | None
    """``[V]`` far depth per view for the background share, or None."""

    def describe(self) -> str:
        """One line for the log."""
        bg = f", {self.background:.0%} behind it out to depth {float(np.median(self.far)):.3g}" if self.background else ""
        return f"random init ({self.kind} capture): cube of half-side {self.half:.3g} around {np.round(self.center, 3).tolist()}{bg}"


def visible_radius(scene, center: np.ndarray) -> tuple[float, np.ndarray]:
    """Radius every camera sees around ``center`` (median over views) and the distances ``[V]``."""
    dist = np.linalg.norm(scene.camera_centers - center[None], axis=1)
    half_fov = np.array([min(c.width / (2 * c.fx), c.height / (2 * c.fy)) for c in scene.cameras])
    return float(np.median(dist * half_fov)), dist


def init_region(scene, cfg) -> InitRegion:
    """The random-init volume of ``scene`` under :class:`~ccl_gs.splat.gaussians.InitConfig` ``cfg``."""
    focus = focus_point(scene)
    if focus is None or not in_front_of_all(scene, focus):
        ext = FORWARD_EXTENT if cfg.random_extent is None else cfg.random_extent
        return InitRegion("forward", scene.camera_centers.mean(0), ext * float(scene.scene_scale), 0.0, None)
    r, dist = visible_radius(scene, focus)
    ext = OBJECT_EXTENT if cfg.random_extent is None else cfg.random_extent
    half = ext * r
    if scene.white_background:
        bg = 0.0 if cfg.background_fraction is None else cfg.background_fraction
    else:
        bg = BACKGROUND_FRACTION if cfg.background_fraction is None else cfg.background_fraction
    far = scene.bounds[:, 1].astype(np.float64) if scene.bounds is not None else FAR_MULTIPLE * dist
    far = np.maximum(far, dist + 2 * half)
    return InitRegion("object", focus, half, bg, far)


def random_points(scene, region: InitRegion, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random starting points ``[n, 3]`` and colours ``[n, 3]`` in [0, 1] inside ``region``.

    The cube share is uniform in the cube; the background share picks a random view, a random
    pixel and a depth uniform in disparity between the cube's far side and the view's far bound.
    """
    n_bg = int(round(n * region.background))
    n_cube = n - n_bg
    c = torch.as_tensor(region.center, dtype=torch.float32)
    pts = [c + region.half * (torch.rand(n_cube, 3, generator=generator) * 2 - 1)]
    if n_bg:
        V = len(scene.cameras)
        view = torch.randint(0, V, (n_bg,), generator=generator).numpy()
        u, v, s = torch.rand(3, n_bg, generator=generator, dtype=torch.float64).numpy()
        dist = np.linalg.norm(scene.camera_centers - region.center[None], axis=1)
        near = dist[view] + region.half
        far = region.far[view]
        depth = 1.0 / (1.0 / near + s * (1.0 / far - 1.0 / near))
        cams = [scene.cameras[i] for i in view]
        x = np.array([(ui * cam.width - cam.cx) / cam.fx for ui, cam in zip(u, cams)])
        y = np.array([(vi * cam.height - cam.cy) / cam.fy for vi, cam in zip(v, cams)])
        p_cam = np.stack([x * depth, y * depth, depth, np.ones_like(depth)], 1)  # [n_bg, 4]
        c2w = scene.camtoworlds[view]  # [n_bg, 4, 4]
        p_world = np.einsum("nij,nj->ni", c2w, p_cam)[:, :3]
        pts.append(torch.as_tensor(p_world, dtype=torch.float32))
    points = torch.cat(pts)
    return points, torch.rand(n, 3, generator=generator)


def sweep_range(scene, region: InitRegion, view: int) -> tuple[float, float]:
    """Near and far depth of the plane sweep in ``view`` (a scene view index).

    The format's bounds when it has them (near x 0.8, far as given, at least the far side of the
    object cube); otherwise, for object captures, ``NEAR_FRACTION`` and ``region.far`` relative to the
    camera's distance to the focus, and for forward captures the depths of the random cube.
    """
    center = scene.camera_centers[view]
    dist = float(np.linalg.norm(center - region.center))
    if scene.bounds is not None:
        near, far = 0.8 * float(scene.bounds[view, 0]), float(scene.bounds[view, 1])
        return near, max(far, dist + region.half)
    if region.kind == "object":
        return NEAR_FRACTION * dist, float(region.far[view])
    return max(dist - region.half, 0.05 * region.half), dist + region.half


def stereo_views(scene, train_set, region: InitRegion) -> list:
    """The training views of ``train_set`` as :class:`~ccl_gs.splat.stereo.StereoView` (CPU tensors)."""
    from ccl_gs.splat.stereo import StereoView

    views = []
    for k in range(len(train_set)):
        item = train_set[k]
        near, far = sweep_range(scene, region, item["index"])
        alpha = item.get("alpha")
        views.append(StereoView(item["image"].cpu(), item["viewmat"].cpu(), item["K"].cpu(), near, far,
                                None if alpha is None else alpha.cpu()))
    return views


def _seed_random(scene, train_set, region: InitRegion, n: int, generator: torch.Generator):
    points, colors = random_points(scene, region, n, generator)
    return points, colors, region.describe()


def _seed_stereo(scene, train_set, region: InitRegion, n: int, generator: torch.Generator):
    from ccl_gs.splat.stereo import stereo_points

    points, colors, stats = stereo_points(stereo_views(scene, train_set, region), n, generator)
    if len(points) < STEREO_MIN_SHARE * n:
        p, c, note = _seed_random(scene, train_set, region, n, generator)
        return p, c, f"stereo seeding matched only {len(points)} of {n} points; {note}"
    return points, colors, (
        f"stereo seeding ({region.kind} capture): {len(points)} photo-consistent points from "
        f"{stats['kept']} of {stats['rays']} rays (median patch difference {stats['median_cost']:.3f})"
    )


SEEDERS = {"random": _seed_random, "stereo": _seed_stereo}
"""``--init.seeding`` name -> ``(scene, train_set, region, n, generator) -> (points [n', 3], colours [n', 3], log line)``."""


def seed_points(scene, train_set, region: InitRegion, cfg, generator: torch.Generator):
    """Starting points ``[n', 3]``, colours ``[n', 3]`` in [0, 1] and a log line for a scene without sparse points."""
    return SEEDERS[cfg.seeding](scene, train_set, region, cfg.n_random, generator)
