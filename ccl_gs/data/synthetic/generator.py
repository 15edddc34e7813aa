"""Seeded synthetic scenes: objects on a textured floor inside walls, and camera paths.

:func:`make_scene` turns a :class:`SyntheticConfig` into a
:class:`SyntheticScene`: a flat list of primitives, each tagged with its
instance, part, subpart and class id, plus the cameras. Everything is drawn
from one ``numpy.random.Generator`` seeded by ``config.seed``, so the same
config always gives the same scene.

World frame: z up, the floor is the plane ``z = 0``, objects stand inside a
disk of radius ``place_radius`` around the origin. Cameras are OpenCV
(x right, y down, z forward) with world-to-camera ``viewmats``.

Id conventions of the ground-truth maps (all ``int32``, 0 = no surface):
instance ids ``1..N`` are the objects, then ``N+1`` the floor and ``N+2``
the walls; part and subpart ids are numbered from 1 across the scene;
``class_id`` is ``1 + index`` into :attr:`SyntheticScene.classes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ccl_gs.data.synthetic.objects import OBJECT_CLASSES, PALETTE, ObjectSpec, build_object
from ccl_gs.data.synthetic.shapes import Box, Primitive, rotation_z, transformed
from ccl_gs.data.synthetic.textures import Material

STUFF_CLASSES = ("floor", "wall")
"""Background classes present in every scene (after the object classes)."""


@dataclass
class SyntheticConfig:
    """What scene to generate and from which cameras."""

    seed: int = field(default=0, metadata={"help": "Random seed; the same seed and options give identical files."})
    views: int = field(default=24, metadata={"help": "Number of camera views."})
    size: int = field(default=128, metadata={"help": "Image width in pixels (16..2048)."})
    height: int | None = field(default=None, metadata={"help": "Image height in pixels; None = same as --size."})
    path: Literal["forward", "orbit"] = field(
        default="orbit", metadata={"help": "Camera path: 'forward' (LLFF-like grid facing the scene) or 'orbit' (360 ring)."}
    )
    fov: float = field(default=50.0, metadata={"help": "Horizontal field of view in degrees."})
    distance: float = field(default=2.3, metadata={"help": "Camera distance from the scene centre (orbit radius)."})
    elevation: float = field(default=1.35, metadata={"help": "Camera height above the floor (mean height for 'forward')."})
    spread: float = field(default=0.5, metadata={"help": "'forward' path: half-width of the camera grid (x and z)."})
    min_objects: int = field(default=4, metadata={"help": "Fewest objects per scene."})
    max_objects: int = field(default=7, metadata={"help": "Most objects per scene."})
    classes: tuple[str, ...] = field(
        default=(), metadata={"help": f"Object classes to draw from (empty = all: {', '.join(sorted(OBJECT_CLASSES))})."}
    )
    max_per_class: int = field(default=1, metadata={"help": "Most instances of one class per scene."})
    place_radius: float = field(default=1.05, metadata={"help": "Objects stand inside this radius around the origin."})
    gap: float = field(default=0.04, metadata={"help": "Minimum free distance between object footprints."})
    room: float = field(default=4.0, metadata={"help": "Half side of the square room (walls at +-room)."})
    wall_height: float = field(default=2.6, metadata={"help": "Height of the walls."})
    supersample: int = field(default=2, metadata={"help": "Anti-aliasing: s x s rays per pixel for RGB (labels use the centre ray)."})
    shading: bool = field(default=True, metadata={"help": "Lambertian shading with a fixed light (off: flat albedo)."})
    min_visible: float = field(
        default=0.002,
        metadata={"help": "Re-draw the layout until every object covers this fraction of the image in some view."},
    )

    @property
    def width(self) -> int:
        return self.size

    @property
    def image_height(self) -> int:
        return self.height if self.height is not None else self.size

    def validate(self) -> None:
        """Raise ValueError (one line, naming the option) for impossible settings."""
        if not 16 <= self.size <= 2048:
            raise ValueError(f"--size must be in 16..2048, got {self.size}")
        if self.height is not None and not 16 <= self.height <= 2048:
            raise ValueError(f"--height must be in 16..2048, got {self.height}")
        if self.views < 1:
            raise ValueError(f"--views must be >= 1, got {self.views}")
        if self.path not in ("forward", "orbit"):
            raise ValueError(f"--path must be 'forward' or 'orbit', got '{self.path}'")
        if not 5.0 <= self.fov <= 150.0:
            raise ValueError(f"--fov must be in 5..150 degrees, got {self.fov}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= --min-objects <= --max-objects, got {self.min_objects} and {self.max_objects}")
        unknown = [c for c in self.classes if c not in OBJECT_CLASSES]
        if unknown:
            raise ValueError(f"--classes: unknown {unknown} (known: {sorted(OBJECT_CLASSES)})")
        pool = len(self.classes or OBJECT_CLASSES)
        if self.max_per_class < 1 or pool * self.max_per_class < self.max_objects:
            raise ValueError(
                f"--max-objects {self.max_objects} needs more classes or a larger --max-per-class ({pool} x {self.max_per_class})"
            )
        if self.supersample < 1 or self.supersample > 8:
            raise ValueError(f"--supersample must be in 1..8, got {self.supersample}")
        if self.distance <= self.place_radius + 0.3:
            raise ValueError(f"--distance {self.distance} puts cameras among the objects (--place-radius {self.place_radius})")
        if self.room <= self.distance + self.spread + 0.2:
            raise ValueError(f"--room {self.room} must exceed --distance + --spread so cameras stay inside the walls")


@dataclass
class Element:
    """One primitive of the scene with its material and ground-truth ids."""

    primitive: Primitive
    material: Material
    instance: int
    part: int
    subpart: int
    class_id: int


@dataclass
class SyntheticScene:
    """A generated scene: tagged primitives, the hierarchy of names, and cameras."""

    elements: list[Element]
    """Every primitive, world-placed."""
    classes: list[str]
    """Class names; ``class_id = 1 + index``. Object classes (sorted), then :data:`STUFF_CLASSES`."""
    instances: list[dict]
    """Per instance: ``id``, ``class``, ``class_id``, ``kind`` ("object"/"stuff"), ``center`` [3], ``radius``."""
    parts: list[dict]
    """Per part: ``id``, ``name``, ``instance``."""
    subparts: list[dict]
    """Per subpart: ``id``, ``name``, ``part``, ``instance``, ``shape``."""
    viewmats: np.ndarray
    """``[V, 4, 4]`` float64 world-to-camera (OpenCV)."""
    K: np.ndarray
    """``[3, 3]`` float64 pinhole intrinsics shared by all views."""
    width: int
    height: int
    config: SyntheticConfig

    @property
    def n_views(self) -> int:
        return len(self.viewmats)

    @property
    def object_ids(self) -> list[int]:
        return [d["id"] for d in self.instances if d["kind"] == "object"]


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """OpenCV world-to-camera ``[4, 4]`` for a camera at ``eye`` ``[3]`` looking at ``target`` ``[3]``."""
    f = target - eye
    f = f / np.linalg.norm(f)
    r = np.cross(f, up)
    r = r / np.linalg.norm(r)
    d = np.cross(f, r)
    R = np.stack([r, d, f], 1)  # camera-to-world rotation, columns x y z
    w2c = np.eye(4)
    w2c[:3, :3] = R.T
    w2c[:3, 3] = -R.T @ eye
    return w2c


def camera_path(cfg: SyntheticConfig) -> np.ndarray:
    """World-to-camera matrices ``[V, 4, 4]`` of the configured path.

    ``orbit``: an elevated ring of radius ``distance``. ``forward``: a grid of
    ``rows x cols`` positions on a vertical plane at ``distance`` in front of
    the scene (``-y`` side), row-major, every camera looking at the centre.
    """
    V = cfg.views
    target = np.array([0.0, 0.0, 0.25])
    eyes = []
    if cfg.path == "orbit":
        for i in range(V):
            a = 2 * np.pi * i / V - np.pi / 2
            eyes.append([cfg.distance * np.cos(a), cfg.distance * np.sin(a), cfg.elevation])
    else:
        cols = int(np.ceil(np.sqrt(V * 1.5)))
        rows = int(np.ceil(V / cols))
        xs = np.linspace(-cfg.spread, cfg.spread, cols) if cols > 1 else np.zeros(1)
        zs = np.linspace(cfg.spread * 0.6, -cfg.spread * 0.6, rows) if rows > 1 else np.zeros(1)
        for i in range(V):
            r, c = divmod(i, cols)
            eyes.append([xs[c], -cfg.distance, cfg.elevation + zs[r]])
    return np.stack([look_at(np.asarray(e, np.float64), target) for e in eyes])


def intrinsics(cfg: SyntheticConfig) -> np.ndarray:
    """``[3, 3]`` pinhole K: square pixels, principal point at the image centre."""
    W, H = cfg.width, cfg.image_height
    f = 0.5 * W / np.tan(np.deg2rad(cfg.fov) / 2)
    return np.array([[f, 0.0, W / 2.0], [0.0, f, H / 2.0], [0.0, 0.0, 1.0]])


def _stuff(cfg: SyntheticConfig, rng: np.random.Generator) -> list[tuple[str, str, list[tuple[str, Primitive, Material]]]]:
    """Floor and walls as ``(class, part, [(subpart, primitive, material)])``."""
    L, Hw = cfg.room, cfg.wall_height
    floor_cols = [("tan", "cream"), ("grey", "white"), ("brown", "tan")][int(rng.integers(0, 3))]
    floor_mat = Material(PALETTE[floor_cols[0]], PALETTE[floor_cols[1]], "checker", freq=2.0, grain=0.25,
                         seed=int(rng.integers(0, 2**31 - 1)))
    floor = Box(half=(L + 0.1, L + 0.1, 0.05))
    floor.translation = np.array([0.0, 0.0, -0.05])
    wall_cols = [("sky", "white"), ("cream", "pink"), ("lime", "cream")][int(rng.integers(0, 3))]
    walls = []
    for name, pos, half, axis in (
        ("north wall", (0, L, Hw / 2), (L, 0.05, Hw / 2), 0),
        ("south wall", (0, -L, Hw / 2), (L, 0.05, Hw / 2), 0),
        ("east wall", (L, 0, Hw / 2), (0.05, L, Hw / 2), 1),
        ("west wall", (-L, 0, Hw / 2), (0.05, L, Hw / 2), 1),
    ):
        b = Box(half=half)
        b.translation = np.asarray(pos, np.float64)
        mat = Material(PALETTE[wall_cols[0]], PALETTE[wall_cols[1]], "stripes", freq=3.0, axis=axis, grain=0.2,
                       seed=int(rng.integers(0, 2**31 - 1)))
        walls.append((name, b, mat))
    return [("floor", "floor", [("floor", floor, floor_mat)]), ("wall", "wall", walls)]


def _place(cfg: SyntheticConfig, rng: np.random.Generator) -> list[tuple[ObjectSpec, np.ndarray, np.ndarray]] | None:
    """Draw classes and non-intersecting placements: ``(object, rotation [3, 3], translation [3])``.

    None when the drawn objects do not fit (the caller draws again).
    """
    pool = sorted(cfg.classes or OBJECT_CLASSES)
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    counts: dict[str, int] = {}
    chosen = []
    while len(chosen) < n:
        c = pool[int(rng.integers(0, len(pool)))]
        if counts.get(c, 0) < cfg.max_per_class:
            counts[c] = counts.get(c, 0) + 1
            chosen.append(c)
    placed: list[tuple[ObjectSpec, np.ndarray, np.ndarray]] = []
    circles: list[tuple[float, float, float]] = []
    for c in chosen:
        obj = build_object(c, rng, scale=float(rng.uniform(0.85, 1.15)))
        r = obj.footprint()
        for _ in range(500):
            rad = np.sqrt(rng.uniform()) * max(cfg.place_radius - r, 0.0)
            ang = rng.uniform(0, 2 * np.pi)
            x, y = rad * np.cos(ang), rad * np.sin(ang)
            if all(np.hypot(x - cx, y - cy) >= r + cr + cfg.gap for cx, cy, cr in circles):
                break
        else:
            return None
        circles.append((x, y, r))
        placed.append((obj, rotation_z(float(rng.uniform(0, 2 * np.pi))), np.array([x, y, 0.0])))
    return placed


def _assemble(cfg: SyntheticConfig, placed, stuff) -> SyntheticScene:
    classes = sorted({obj.class_name for obj, _, _ in placed}) + list(STUFF_CLASSES)
    cid = {c: i + 1 for i, c in enumerate(classes)}
    elements: list[Element] = []
    instances, parts, subparts = [], [], []
    for obj, R, t in placed:
        iid = len(instances) + 1
        prims = []
        for part in obj.parts:
            pid = len(parts) + 1
            parts.append({"id": pid, "name": part.name, "instance": iid})
            for sp in part.subparts:
                sid = len(subparts) + 1
                prim = transformed(sp.primitive, R, t)
                subparts.append({"id": sid, "name": sp.name, "part": pid, "instance": iid, "shape": prim.kind})
                elements.append(Element(prim, sp.material, iid, pid, sid, cid[obj.class_name]))
                prims.append(prim)
        centre, radius = _enclosing_sphere(prims)
        instances.append({"id": iid, "class": obj.class_name, "class_id": cid[obj.class_name], "kind": "object",
                          "center": centre.tolist(), "radius": radius})
    for cls, part_name, items in stuff:
        iid = len(instances) + 1
        pid = len(parts) + 1
        parts.append({"id": pid, "name": part_name, "instance": iid})
        prims = []
        for name, prim, mat in items:
            sid = len(subparts) + 1
            subparts.append({"id": sid, "name": name, "part": pid, "instance": iid, "shape": prim.kind})
            elements.append(Element(prim, mat, iid, pid, sid, cid[cls]))
            prims.append(prim)
        centre, radius = _enclosing_sphere(prims)
        instances.append({"id": iid, "class": cls, "class_id": cid[cls], "kind": "stuff", "center": centre.tolist(),
                          "radius": radius})
    return SyntheticScene(elements, classes, instances, parts, subparts, camera_path(cfg), intrinsics(cfg),
                          cfg.width, cfg.image_height, cfg)


def _enclosing_sphere(prims: list[Primitive]) -> tuple[np.ndarray, float]:
    spheres = [p.bounding_sphere() for p in prims]
    centre = np.mean([c for c, _ in spheres], 0)
    radius = max(float(np.linalg.norm(c - centre)) + r for c, r in spheres)
    return centre, radius


def make_scene(cfg: SyntheticConfig) -> SyntheticScene:
    """Generate the scene of ``cfg`` (deterministic in ``cfg``).

    The layout is re-drawn (from the same random stream) until every object
    covers at least the fraction ``cfg.min_visible`` of the image in some
    view (checked on a preview at most 64 pixels wide), so each object can be
    learned and queried.

    Raises:
        ValueError: impossible settings (see :meth:`SyntheticConfig.validate`),
            or no layout that fits with every object visible in 40 draws.
    """
    from ccl_gs.data.synthetic.render import render_labels

    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    stuff = _stuff(cfg, rng)
    preview = min(64, cfg.width)
    scale = preview / cfg.width
    for _ in range(40):
        placed = _place(cfg, rng)
        if placed is None:
            continue
        scene = _assemble(cfg, placed, stuff)
        K = scene.K.copy()
        K[:2] *= scale
        ph = max(1, int(round(cfg.image_height * scale)))
        need = max(1, int(np.ceil(cfg.min_visible * preview * ph)))
        best = np.zeros(len(scene.instances) + 1, np.int64)
        for v in range(scene.n_views):
            inst = render_labels(scene, scene.viewmats[v], K, preview, ph)["instance"]
            best = np.maximum(best, np.bincount(inst.ravel(), minlength=len(best)))
        if all(best[i] >= need for i in scene.object_ids):
            return scene
    raise ValueError(
        f"seed {cfg.seed}: no layout in 40 draws that fits inside --place-radius {cfg.place_radius} with every object "
        "visible; change --seed, lower --max-objects or raise --place-radius"
    )
