"""Gaussian parameters: initialization, activations, optimizers, rendering.

Parameters live in a ``torch.nn.ParameterDict`` holding *raw* (pre-activation)
values, the layout gsplat's strategies and the 3DGS PLY format expect:

==============  ============  ===========================================
key             shape         activation
==============  ============  ===========================================
``means``       ``[N, 3]``    none
``scales``      ``[N, 3]``    ``exp``
``quats``       ``[N, 4]``    normalized (wxyz)
``opacities``   ``[N]``       ``sigmoid``
``sh0``         ``[N, 1, 3]`` SH DC coefficient
``shN``         ``[N, K, 3]`` higher SH bands, ``K = (deg + 1)^2 - 1``
``<extra>``     ``[N, d]``    e.g. ``features`` (the 8-d language feature)
==============  ============  ===========================================

Every per-Gaussian parameter is one key with its own optimizer, so
densification (which clones, splits and prunes rows of every key) carries
extra features along without special cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

SH_C0 = 0.28209479177387814
"""The zeroth real spherical-harmonic constant: colour = SH_C0 * sh0 + 0.5."""


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """``[..., 3]`` colour in [0, 1] -> SH DC coefficient ``[..., 3]``."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    """SH DC coefficient ``[..., 3]`` -> colour ``[..., 3]`` (unclamped)."""
    return sh0 * SH_C0 + 0.5


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per channel up to ``degree`` ((deg + 1)^2)."""
    return (degree + 1) ** 2


@dataclass
class InitConfig:
    """How Gaussians are initialized."""

    n_random: int = field(default=50_000, metadata={"help": "Gaussians for random init (scenes without sparse points)."})
    seeding: str = field(
        default="stereo",
        metadata={
            "help": "Where Gaussians start when the scene has no sparse points: 'stereo' (photo-consistent points of "
            "a plane sweep over the training views, ccl_gs.splat.stereo; falls back to 'random' when too few rays "
            "match) or 'random' (uniform in the volume below)."
        },
    )
    random_extent: float | None = field(
        default=None,
        metadata={
            "help": "Size of the random-init cube. Object-centric captures (cameras around a common focus): "
            "half-side in units of the radius all cameras see at the focus (None = 1.0). Forward-facing: "
            "half-side in scene scales around the camera centroid (None = 1.5)."
        },
    )
    background_fraction: float | None = field(
        default=None,
        metadata={
            "help": "Object-centric captures with a background (no alpha): share of the random Gaussians placed on "
            "camera rays behind the object cube, out to the far bound (None = 0.3; 0 for white-background scenes)."
        },
    )
    init_opacity: float = field(default=0.1, metadata={"help": "Initial opacity (after sigmoid)."})
    init_scale: float = field(
        default=1.0, metadata={"help": "Multiplier on the mean distance to the 3 nearest neighbours for initial scales."}
    )
    max_points: int = field(
        default=0, metadata={"help": "Subsample sparse points to at most this many (0 = keep all)."}
    )

    def __post_init__(self) -> None:
        if self.n_random < 1:
            raise ValueError(f"--init.n-random must be >= 1, got {self.n_random}")
        if self.seeding not in ("stereo", "random"):
            raise ValueError(f"--init.seeding must be 'stereo' or 'random', got {self.seeding!r}")
        if self.random_extent is not None and not self.random_extent > 0:
            raise ValueError(f"--init.random-extent must be > 0, got {self.random_extent}")
        if self.background_fraction is not None and not 0 <= self.background_fraction < 1:
            raise ValueError(f"--init.background-fraction must be in [0, 1), got {self.background_fraction}")
        if not 0 < self.init_opacity < 1:
            raise ValueError(f"--init.init-opacity must be in (0, 1), got {self.init_opacity}")
        if self.max_points < 0:
            raise ValueError(f"--init.max-points must be >= 0, got {self.max_points}")


def knn_mean_distance(points: Tensor, k: int = 3, chunk: int = 4096) -> Tensor:
    """Mean distance of each point to its ``k`` nearest other points.

    Args:
        points: ``[N, 3]``.
    Returns:
        ``[N]`` (zeros when ``N <= 1``).
    """
    N = points.shape[0]
    if N <= 1:
        return points.new_zeros(N)
    k = min(k, N - 1)
    out = []
    for s in range(0, N, chunk):
        d = torch.cdist(points[s : s + chunk], points)  # [c, N]
        vals, _ = d.topk(k + 1, dim=1, largest=False)  # includes self at 0
        out.append(vals[:, 1:].mean(1))
    return torch.cat(out)


def init_gaussians(
    points: np.ndarray | None,
    colors: np.ndarray | None,
    sh_degree: int,
    cfg: InitConfig,
    extra_dims: dict[str, int] | None = None,
    seed: int = 0,
    random_init: Callable[[torch.Generator], tuple[Tensor, Tensor]] | None = None,
) -> torch.nn.ParameterDict:
    """Initial Gaussians from sparse points (when given) or at random.

    Args:
        points: ``[P, 3]`` world points or None.
        colors: ``[P, 3]`` uint8 colours of ``points`` or None (grey).
        sh_degree: maximum SH degree (sets the width of ``shN``).
        extra_dims: extra per-Gaussian parameters, name -> width, e.g. ``{"features": 8}``;
            initialized with small random values (std 0.01).
        random_init: ``generator -> (points [N, 3], colours [N, 3] in [0, 1])``, used when
            ``points`` is None or empty (see :func:`ccl_gs.splat.seeding.random_points`).
    Returns:
        ParameterDict with raw parameters (see module docstring).
    """
    g = torch.Generator().manual_seed(seed)
    if points is not None and len(points) > 0:
        pts = torch.as_tensor(np.asarray(points), dtype=torch.float32)
        if colors is not None:
            rgb = torch.as_tensor(np.asarray(colors), dtype=torch.float32) / 255.0
        else:
            rgb = torch.full_like(pts, 0.5)
        if cfg.max_points and len(pts) > cfg.max_points:
            idx = torch.randperm(len(pts), generator=g)[: cfg.max_points]
            pts, rgb = pts[idx], rgb[idx]
    elif random_init is not None:
        pts, rgb = random_init(g)
    else:
        raise ValueError("no sparse points and no random initialization given")
    N = pts.shape[0]
    dist = knn_mean_distance(pts).clamp_min(1e-7)
    scales = torch.log(dist * cfg.init_scale)[:, None].repeat(1, 3)
    quats = torch.zeros(N, 4)
    quats[:, 0] = 1.0
    opac = torch.logit(torch.full((N,), cfg.init_opacity))
    K = num_sh_bases(sh_degree) - 1
    params = {
        "means": pts,
        "scales": scales,
        "quats": quats,
        "opacities": opac,
        "sh0": rgb_to_sh0(rgb)[:, None, :],
        "shN": torch.zeros(N, K, 3),
    }
    for name, d in (extra_dims or {}).items():
        params[name] = 0.01 * torch.randn(N, d, generator=g)
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v) for k, v in params.items()})


@dataclass
class LearningRates:
    """Adam learning rates per parameter group (the 3DGS / gsplat defaults)."""

    means: float = field(default=1.6e-4, metadata={"help": "Means lr, times the scene scale; decays to 1% by the end."})
    scales: float = field(default=5e-3, metadata={"help": "Log-scales lr."})
    quats: float = field(default=1e-3, metadata={"help": "Quaternions lr."})
    opacities: float = field(default=5e-2, metadata={"help": "Opacity logits lr."})
    sh0: float = field(default=2.5e-3, metadata={"help": "SH DC lr."})
    shN: float = field(default=2.5e-3 / 20, metadata={"help": "Higher SH bands lr."})
    extra: float = field(default=1e-3, metadata={"help": "Extra per-Gaussian parameters (e.g. language features) lr."})


def make_optimizers(
    params: torch.nn.ParameterDict, lrs: LearningRates, scene_scale: float
) -> dict[str, torch.optim.Adam]:
    """One Adam per parameter name (what gsplat's strategies expect)."""
    opts = {}
    for name, p in params.items():
        lr = getattr(lrs, name, lrs.extra) if name in ("means", "scales", "quats", "opacities", "sh0", "shN") else lrs.extra
        if name == "means":
            lr = lr * scene_scale
        opts[name] = torch.optim.Adam([{"params": [p], "lr": lr, "name": name}], eps=1e-15)
    return opts


def activated(params: torch.nn.ParameterDict | dict[str, Tensor]) -> dict[str, Tensor]:
    """Activated means ``[N,3]``, quats ``[N,4]``, scales ``[N,3]``, opacities ``[N]``, SH ``[N,K+1,3]``."""
    return {
        "means": params["means"],
        "quats": params["quats"],
        "scales": torch.exp(params["scales"]),
        "opacities": torch.sigmoid(params["opacities"]),
        "sh": torch.cat([params["sh0"], params["shN"]], 1),
    }


def render_rgb(
    params: torch.nn.ParameterDict | dict[str, Tensor],
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int,
    background: Tensor | None = None,
    render_mode: str = "RGB",
    backend: str | None = None,
    opacity_scale: Tensor | None = None,
    raster=None,
) -> tuple[Tensor, Tensor, dict]:
    """Render the Gaussians' colours (and optionally depth).

    Args:
        viewmats: ``[C, 4, 4]`` world-to-camera.
        Ks: ``[C, 3, 3]``.
        background: ``[3]`` or None (black).
        opacity_scale: ``[N]`` factors on the activated opacities (training-time dropout), or None.
        raster: the model's :class:`~ccl_gs.splat.rasterize.RasterConfig` (None: classic, eps2d 0.3).
    Returns:
        ``colors [C, H, W, 3 (+1)]``, ``alphas [C, H, W, 1]``, ``meta`` (for densification).
    """
    from ccl_gs.splat.rasterize import raster_kwargs, rasterize

    a = activated(params)
    opacities = a["opacities"] if opacity_scale is None else a["opacities"] * opacity_scale
    C = viewmats.shape[0]
    bg = None if background is None else background.expand(C, -1)  # the rasterizer adds depth's zero itself
    colors, alphas, meta = rasterize(
        a["means"],
        a["quats"],
        a["scales"],
        opacities,
        a["sh"],
        viewmats,
        Ks,
        width,
        height,
        sh_degree=sh_degree,
        backgrounds=bg,
        render_mode=render_mode,
        backend=backend,
        **raster_kwargs(raster),
    )
    return colors, alphas, meta

