"""Procedural solid textures (stripes, checkers, rings, value noise), evaluated at 3D points.

Textures are functions of the surface point in the primitive's local frame,
so they stick to the object and look the same from every view: photometric
reconstruction of the scene is well-posed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PATTERNS = ("solid", "stripes", "checker", "rings", "noise")
"""Known pattern names of :class:`Material`."""

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _hash3(i: np.ndarray, j: np.ndarray, k: np.ndarray, seed: int) -> np.ndarray:
    """Integer lattice hash -> float64 in [0, 1); ``i, j, k`` int64 ``[N]``."""
    with np.errstate(over="ignore"):
        h = (
            i.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            ^ j.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
            ^ k.astype(np.uint64) * np.uint64(0x165667B19E3779F9)
            ^ np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x27D4EB2F165667C5)
        )
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def value_noise(p: np.ndarray, freq: float, seed: int) -> np.ndarray:
    """Smooth 3D value noise in [0, 1].

    Args:
        p: ``[N, 3]`` points.
        freq: lattice cells per unit length.
    Returns:
        ``[N]`` float64.
    """
    q = p * freq
    base = np.floor(q)
    f = q - base
    w = f * f * (3.0 - 2.0 * f)  # smoothstep
    b = base.astype(np.int64)
    out = np.zeros(len(p))
    for dx in (0, 1):
        wx = w[:, 0] if dx else 1.0 - w[:, 0]
        for dy in (0, 1):
            wy = w[:, 1] if dy else 1.0 - w[:, 1]
            for dz in (0, 1):
                wz = w[:, 2] if dz else 1.0 - w[:, 2]
                out += wx * wy * wz * _hash3(b[:, 0] + dx, b[:, 1] + dy, b[:, 2] + dz, seed)
    return out


def fbm(p: np.ndarray, freq: float, seed: int, octaves: int = 3) -> np.ndarray:
    """Fractal sum of :func:`value_noise` octaves, in [0, 1]. ``p``: ``[N, 3]`` -> ``[N]``."""
    total, amp, norm = np.zeros(len(p)), 1.0, 0.0
    for o in range(octaves):
        total += amp * value_noise(p, freq * (2**o), seed + 7919 * o)
        norm += amp
        amp *= 0.5
    return total / norm


@dataclass(frozen=True)
class Material:
    """Surface colour as a procedural pattern mixing two colours, plus grain noise."""

    color: tuple[float, float, float]
    """Primary RGB in [0, 1]."""
    color2: tuple[float, float, float]
    """Secondary RGB in [0, 1] (the pattern's other colour)."""
    pattern: str = "solid"
    """One of :data:`PATTERNS`."""
    freq: float = 8.0
    """Pattern frequency in cycles per unit length (local frame)."""
    axis: int = 2
    """Local axis along which stripes run across (0 x, 1 y, 2 z)."""
    grain: float = 0.12
    """Amplitude of the fine value-noise grain multiplied into the colour."""
    seed: int = 0
    """Noise seed."""

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown pattern '{self.pattern}' (known: {PATTERNS})")

    def shade(self, p: np.ndarray) -> np.ndarray:
        """Albedo at local points.

        Args:
            p: ``[N, 3]`` points in the primitive's local frame.
        Returns:
            ``[N, 3]`` float64 RGB in [0, 1].
        """
        c1, c2 = np.asarray(self.color), np.asarray(self.color2)
        if self.pattern == "solid":
            t = np.zeros(len(p))
        elif self.pattern == "stripes":
            t = (np.floor(p[:, self.axis] * self.freq) % 2).astype(np.float64)
        elif self.pattern == "checker":
            t = (np.floor(p * self.freq).sum(-1) % 2).astype(np.float64)
        elif self.pattern == "rings":
            r = np.linalg.norm(np.delete(p, self.axis, axis=1), axis=-1)
            t = (np.floor(r * self.freq) % 2).astype(np.float64)
        else:  # noise
            t = np.clip((fbm(p, self.freq * 0.5, self.seed) - 0.5) * 2.5 + 0.5, 0.0, 1.0)
        rgb = c1[None] * (1.0 - t[:, None]) + c2[None] * t[:, None]
        if self.grain > 0:
            g = value_noise(p, self.freq * 4.0, self.seed + 1)
            rgb = rgb * (1.0 - self.grain + 2.0 * self.grain * g[:, None])
        return np.clip(rgb, 0.0, 1.0)
