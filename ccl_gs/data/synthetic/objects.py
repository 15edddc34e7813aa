"""The object library: named classes made of named parts and subparts.

Each class is a builder registered by name in :data:`OBJECT_CLASSES`. A
builder returns the object in its own frame (z up, standing on ``z = 0``,
centred on the z axis) as parts, each a list of subparts, each one analytic
primitive with a procedural material. Ground truth then exists at three
granularities: subpart (one primitive), part, and whole object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ccl_gs.data.synthetic.shapes import (
    Box,
    Capsule,
    Cone,
    Cylinder,
    Ellipsoid,
    Primitive,
    Sphere,
    Torus,
    rotation_x,
    rotation_y,
)
from ccl_gs.data.synthetic.textures import Material

PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.15, 0.12),
    "orange": (0.93, 0.52, 0.10),
    "yellow": (0.95, 0.82, 0.20),
    "lime": (0.55, 0.80, 0.20),
    "green": (0.15, 0.55, 0.25),
    "teal": (0.10, 0.55, 0.55),
    "sky": (0.40, 0.65, 0.92),
    "blue": (0.15, 0.25, 0.75),
    "purple": (0.50, 0.25, 0.65),
    "pink": (0.92, 0.50, 0.65),
    "brown": (0.50, 0.32, 0.18),
    "tan": (0.80, 0.68, 0.48),
    "white": (0.92, 0.92, 0.90),
    "grey": (0.55, 0.55, 0.58),
    "black": (0.12, 0.12, 0.14),
    "cream": (0.96, 0.90, 0.75),
}
"""Named colours objects draw their materials from."""

OBJECT_PATTERNS = ("solid", "stripes", "checker", "rings", "noise")


@dataclass
class SubpartSpec:
    """One subpart: a primitive (object frame) and its material."""

    name: str
    primitive: Primitive
    material: Material


@dataclass
class PartSpec:
    """One named part: a list of subparts."""

    name: str
    subparts: list[SubpartSpec]


@dataclass
class ObjectSpec:
    """One object in its own frame (z up, on ``z = 0``)."""

    class_name: str
    parts: list[PartSpec]

    def primitives(self) -> list[Primitive]:
        return [s.primitive for p in self.parts for s in p.subparts]

    def footprint(self) -> float:
        """Radius around the z axis enclosing every primitive's (rotated) bounding box."""
        corners = np.concatenate([p.corners() for p in self.primitives()])
        return float(np.hypot(corners[:, 0], corners[:, 1]).max())


Builder = Callable[["_Maker"], list[PartSpec]]
OBJECT_CLASSES: dict[str, Builder] = {}
"""Object builders by class name."""


def register_object(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering an object builder under its class ``name``."""

    def deco(fn: Builder) -> Builder:
        OBJECT_CLASSES[name] = fn
        return fn

    return deco


class _Maker:
    """Helper handed to builders: random materials and scaled, placed primitives."""

    def __init__(self, rng: np.random.Generator, scale: float) -> None:
        self.rng = rng
        self.s = scale
        self._colors = list(PALETTE)

    def material(self, size: float, pattern: str | None = None) -> Material:
        """A random material whose pattern has a few cycles over ``size`` (object units)."""
        rng = self.rng
        c1, c2 = rng.choice(len(self._colors), size=2, replace=False)
        pat = pattern or str(rng.choice(OBJECT_PATTERNS))
        return Material(
            color=PALETTE[self._colors[c1]],
            color2=PALETTE[self._colors[c2]],
            pattern=pat,
            freq=float(rng.uniform(2.5, 5.0)) / max(size * self.s, 1e-3),
            axis=int(rng.integers(0, 3)),
            grain=float(rng.uniform(0.08, 0.18)),
            seed=int(rng.integers(0, 2**31 - 1)),
        )

    def sub(self, name: str, prim: Primitive, at=(0.0, 0.0, 0.0), rot: np.ndarray | None = None,
            material: Material | None = None, size: float | None = None) -> SubpartSpec:
        """Scale ``prim`` by the object scale, rotate it by ``rot`` and move it to ``at`` (unscaled units)."""
        p = _scaled(prim, self.s)
        if rot is not None:
            p.rotation = rot
        p.translation = np.asarray(at, dtype=np.float64) * self.s
        mat = material or self.material(size if size is not None else p._local_radius() / self.s)
        return SubpartSpec(name, p, mat)


def _scaled(prim: Primitive, s: float) -> Primitive:
    fields = {}
    for f in dataclasses.fields(prim):
        if not f.init or f.name in ("rotation", "translation"):
            continue
        v = getattr(prim, f.name)
        fields[f.name] = tuple(x * s for x in v) if isinstance(v, tuple) else v * s
    return type(prim)(**fields)


def build_object(class_name: str, rng: np.random.Generator, scale: float = 1.0) -> ObjectSpec:
    """Build one object of ``class_name`` with random materials.

    Raises:
        KeyError: unknown class name.
    """
    if class_name not in OBJECT_CLASSES:
        raise KeyError(f"unknown object class '{class_name}' (known: {sorted(OBJECT_CLASSES)})")
    return ObjectSpec(class_name, OBJECT_CLASSES[class_name](_Maker(rng, scale)))


# ---------------------------------------------------------------- the classes


@register_object("mug")
def _mug(m: _Maker) -> list[PartSpec]:
    return [
        PartSpec("body", [m.sub("cup", Cylinder(0.11, 0.15), (0, 0, 0.15)), m.sub("rim", Torus(0.11, 0.014), (0, 0, 0.30))]),
        PartSpec("handle", [m.sub("handle", Torus(0.07, 0.022), (0.14, 0, 0.15), rot=rotation_x(np.pi / 2))]),
    ]


@register_object("table")
def _table(m: _Maker) -> list[PartSpec]:
    legs = []
    leg_mat = m.material(0.3)
    for i, (x, y) in enumerate([(0.25, 0.17), (-0.25, 0.17), (-0.25, -0.17), (0.25, -0.17)]):
        legs.append(m.sub(f"leg {i + 1}", Cylinder(0.028, 0.275), (x, y, 0.275), material=leg_mat))
    return [PartSpec("top", [m.sub("top", Box((0.31, 0.23, 0.025)), (0, 0, 0.575))]), PartSpec("legs", legs)]


@register_object("lamp")
def _lamp(m: _Maker) -> list[PartSpec]:
    return [
        PartSpec("base", [m.sub("base", Cylinder(0.14, 0.025), (0, 0, 0.025))]),
        PartSpec("pole", [m.sub("pole", Cylinder(0.02, 0.32), (0, 0, 0.37))]),
        PartSpec(
            "shade",
            [m.sub("shade", Cone(0.2, 0.1, 0.12), (0, 0, 0.76)), m.sub("finial", Sphere(0.03), (0, 0, 0.91))],
        ),
    ]


@register_object("teapot")
def _teapot(m: _Maker) -> list[PartSpec]:
    return [
        PartSpec("body", [m.sub("body", Ellipsoid((0.17, 0.17, 0.13)), (0, 0, 0.13))]),
        PartSpec("spout", [m.sub("spout", Capsule(0.028, 0.08), (0.2, 0, 0.17), rot=rotation_y(0.9))]),
        PartSpec("lid", [m.sub("lid", Ellipsoid((0.1, 0.1, 0.04)), (0, 0, 0.25)), m.sub("knob", Sphere(0.032), (0, 0, 0.3))]),
        PartSpec("handle", [m.sub("handle", Torus(0.08, 0.022), (-0.17, 0, 0.14), rot=rotation_x(np.pi / 2))]),
    ]


@register_object("chair")
def _chair(m: _Maker) -> list[PartSpec]:
    leg_mat = m.material(0.3)
    legs = [
        m.sub(f"leg {i + 1}", Box((0.025, 0.025, 0.21)), (x, y, 0.21), material=leg_mat)
        for i, (x, y) in enumerate([(0.19, 0.19), (-0.19, 0.19), (-0.19, -0.19), (0.19, -0.19)])
    ]
    post_mat = m.material(0.3)
    back = [
        m.sub("rail", Box((0.03, 0.22, 0.04)), (-0.2, 0, 0.78)),
        m.sub("slat", Box((0.015, 0.13, 0.09)), (-0.2, 0, 0.6)),
        m.sub("left post", Box((0.025, 0.025, 0.14)), (-0.2, 0.195, 0.61), material=post_mat),
        m.sub("right post", Box((0.025, 0.025, 0.14)), (-0.2, -0.195, 0.61), material=post_mat),
    ]
    return [PartSpec("seat", [m.sub("seat", Box((0.22, 0.22, 0.03)), (0, 0, 0.45))]), PartSpec("back", back), PartSpec("legs", legs)]


@register_object("book")
def _book(m: _Maker) -> list[PartSpec]:
    cover = m.material(0.4)
    return [
        PartSpec(
            "cover",
            [
                m.sub("front cover", Box((0.22, 0.16, 0.008)), (0, 0, 0.082), material=cover),
                m.sub("back cover", Box((0.22, 0.16, 0.008)), (0, 0, 0.008), material=cover),
                m.sub("spine", Box((0.012, 0.16, 0.045)), (-0.222, 0, 0.045)),
            ],
        ),
        PartSpec("pages", [m.sub("pages", Box((0.21, 0.15, 0.033)), (0.0, 0, 0.045), material=m.material(0.1, "stripes"))]),
    ]


@register_object("ball")
def _ball(m: _Maker) -> list[PartSpec]:
    r = float(m.rng.uniform(0.13, 0.19))
    return [PartSpec("ball", [m.sub("ball", Sphere(r), (0, 0, r))])]


@register_object("vase")
def _vase(m: _Maker) -> list[PartSpec]:
    return [
        PartSpec("body", [m.sub("body", Ellipsoid((0.15, 0.15, 0.2)), (0, 0, 0.2))]),
        PartSpec("neck", [m.sub("neck", Cylinder(0.06, 0.1), (0, 0, 0.46))]),
        PartSpec("lip", [m.sub("lip", Torus(0.065, 0.02), (0, 0, 0.56))]),
    ]


@register_object("snowman")
def _snowman(m: _Maker) -> list[PartSpec]:
    snow = m.material(0.3, "noise")
    return [
        PartSpec("body", [m.sub("bottom", Sphere(0.2), (0, 0, 0.2), material=snow), m.sub("middle", Sphere(0.14), (0, 0, 0.5), material=snow)]),
        PartSpec(
            "head",
            [
                m.sub("head", Sphere(0.1), (0, 0, 0.72), material=snow),
                m.sub("nose", Cone(0.028, 0.004, 0.05), (0.13, 0, 0.72), rot=rotation_y(np.pi / 2)),
            ],
        ),
        PartSpec("hat", [m.sub("brim", Cylinder(0.12, 0.012), (0, 0, 0.81)), m.sub("crown", Cylinder(0.075, 0.07), (0, 0, 0.89))]),
    ]


@register_object("bottle")
def _bottle(m: _Maker) -> list[PartSpec]:
    glass = m.material(0.3)
    return [
        PartSpec("body", [m.sub("body", Cylinder(0.09, 0.15), (0, 0, 0.15), material=glass)]),
        PartSpec(
            "neck",
            [m.sub("shoulder", Cone(0.09, 0.035, 0.06), (0, 0, 0.36), material=glass), m.sub("neck", Cylinder(0.035, 0.06), (0, 0, 0.48))],
        ),
        PartSpec("cap", [m.sub("cap", Cylinder(0.042, 0.03), (0, 0, 0.57))]),
    ]


@register_object("rubber duck")
def _duck(m: _Maker) -> list[PartSpec]:
    yellow = Material(PALETTE["yellow"], PALETTE["orange"], "noise", freq=8.0 / m.s, grain=0.1, seed=int(m.rng.integers(0, 2**31 - 1)))
    return [
        PartSpec(
            "body",
            [
                m.sub("body", Ellipsoid((0.18, 0.13, 0.11)), (0, 0, 0.11), material=yellow),
                m.sub("left wing", Ellipsoid((0.08, 0.025, 0.05)), (-0.01, 0.12, 0.13)),
                m.sub("right wing", Ellipsoid((0.08, 0.025, 0.05)), (-0.01, -0.12, 0.13)),
            ],
        ),
        PartSpec("head", [m.sub("head", Sphere(0.09), (0.1, 0, 0.29), material=yellow), m.sub("beak", Ellipsoid((0.06, 0.04, 0.02)), (0.2, 0, 0.28))]),
    ]
