"""One rasterization entry point with interchangeable backends.

:func:`rasterize` has the argument names, shapes and outputs of
``gsplat.rasterization`` (gsplat 1.5.3, the subset this project uses, always
non-packed; ``rasterize_mode`` "classic" or "antialiased"). The work is done by a backend
chosen by name from :data:`BACKENDS`:

- ``"gsplat"``: gsplat's CUDA rasterizer; the default when CUDA is available
  and the tensors live on a CUDA device.
- ``"torch"``: the CPU path: projection and SH in PyTorch (autograd), tile
  compositing in numba kernels that follow gsplat's rule; the default
  otherwise.

Both return the same ``meta`` keys that ``gsplat.strategy.DefaultStrategy``
reads (``means2d`` [C, N, 2] with a retainable gradient, ``radii`` [C, N, 2],
``width``, ``height``, ``n_cameras``, ``gaussian_ids=None``), so densification
runs unchanged on either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol

import torch
from torch import Tensor

from ccl_gs.splat._composite import composite, intersect_tiles
from ccl_gs.splat._project import project_gaussians
from ccl_gs.splat._sh import MAX_DEGREE, sh_colors

RenderMode = Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"]
RENDER_MODES: tuple[str, ...] = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
RasterizeMode = Literal["classic", "antialiased"]
RASTERIZE_MODES: tuple[str, ...] = ("classic", "antialiased")


@dataclass
class RasterConfig:
    """How a model's Gaussians are rasterized (``--raster.*``).

    Fixed when the RGB run trains; every later render of the model (colour,
    language features, selections, the viewer) follows the run's saved value.
    """

    mode: str = field(
        default="antialiased",
        metadata={
            "help": "classic | antialiased. antialiased scales each Gaussian's opacity so that the screen-space blur "
            "keeps its integral (gsplat's antialiased mode, Mip-Splatting's 2D filter): a Gaussian smaller than a "
            "pixel dims instead of growing to the blur's size."
        },
    )
    eps2d: float = field(
        default=0.1,
        metadata={
            "help": "Variance in square pixels added to every projected Gaussian (3DGS and gsplat: 0.3; "
            "Mip-Splatting's 2D filter: 0.1, close to a one-pixel box filter's 1/12)."
        },
    )

    def __post_init__(self) -> None:
        if self.mode not in RASTERIZE_MODES:
            raise ValueError(f"--raster.mode must be one of {' | '.join(RASTERIZE_MODES)}, got {self.mode!r}")
        if not self.eps2d >= 0:
            raise ValueError(f"--raster.eps2d must be >= 0, got {self.eps2d}")

    def kwargs(self) -> dict[str, Any]:
        """The :func:`rasterize` keyword arguments of this config."""
        return {"rasterize_mode": self.mode, "eps2d": self.eps2d}


LEGACY_RASTER: dict[str, Any] = {"mode": "classic", "eps2d": 0.3}
"""What a run saved before :class:`RasterConfig` existed was rasterized with."""


def raster_kwargs(raster: RasterConfig | None) -> dict[str, Any]:
    """:meth:`RasterConfig.kwargs`, or none (:func:`rasterize`'s defaults: classic, 0.3) for None."""
    return {} if raster is None else raster.kwargs()


class RasterizeBackend(Protocol):
    """A rasterizer: the arguments of :func:`rasterize` without ``backend``."""

    def __call__(
        self,
        means: Tensor,  # [N, 3]
        quats: Tensor,  # [N, 4]
        scales: Tensor,  # [N, 3]
        opacities: Tensor,  # [N]
        colors: Tensor,  # [N, D] | [C, N, D] | [N, K, 3] | [C, N, K, 3]
        viewmats: Tensor,  # [C, 4, 4]
        Ks: Tensor,  # [C, 3, 3]
        width: int,
        height: int,
        *,
        near_plane: float,
        far_plane: float,
        radius_clip: float,
        eps2d: float,
        sh_degree: int | None,
        backgrounds: Tensor | None,  # [C, D]
        render_mode: str,
        tile_size: int,
        rasterize_mode: str,
    ) -> tuple[Tensor, Tensor, dict]: ...


BACKENDS: dict[str, RasterizeBackend] = {}
"""Registered rasterizer backends by name."""


def register_backend(name: str) -> Callable[[RasterizeBackend], RasterizeBackend]:
    """Decorator that registers a backend under ``name``."""

    def wrap(fn: RasterizeBackend) -> RasterizeBackend:
        BACKENDS[name] = fn
        return fn

    return wrap


def default_backend(device: torch.device) -> str:
    """``"gsplat"`` for CUDA tensors when CUDA is available, else ``"torch"``."""
    if device.type == "cuda" and torch.cuda.is_available():
        return "gsplat"
    return "torch"


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D] | [C, N, D] | [N, K, 3] | [C, N, K, 3] (SH)
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,  # [C, D]
    render_mode: RenderMode = "RGB",
    tile_size: int = 16,
    backend: str | None = None,
    rasterize_mode: RasterizeMode = "classic",
) -> tuple[Tensor, Tensor, dict]:
    """Rasterize ``N`` 3D Gaussians into ``C`` pinhole images.

    Args:
        means: Centres in world space. [N, 3]
        quats: Rotations, wxyz quaternions (need not be normalized). [N, 4]
        scales: Per-axis standard deviations (activated). [N, 3]
        opacities: Opacities in [0, 1] (activated). [N]
        colors: Features per Gaussian [N, D] or per camera [C, N, D], any D;
            or SH coefficients [N, K, 3] / [C, N, K, 3] when ``sh_degree`` is set.
        viewmats: World-to-camera matrices (OpenCV axes). [C, 4, 4]
        Ks: Intrinsics. [C, 3, 3]
        width, height: Image size in pixels.
        near_plane, far_plane: Camera-space depth range kept.
        radius_clip: Gaussians whose screen radii are both ``<= radius_clip`` are skipped.
        eps2d: Added to the projected 2D covariance's diagonal.
        sh_degree: SH degree to evaluate, or None for plain features.
        backgrounds: Colour behind the Gaussians. [C, D]
        render_mode: "RGB" (features), "D" (accumulated depth), "ED" (expected
            depth), "RGB+D" or "RGB+ED" (depth as the last channel).
        tile_size: Screen tile size in pixels.
        backend: A name in :data:`BACKENDS`, or None for :func:`default_backend`.
        rasterize_mode: "classic" (the blur adds coverage) or "antialiased"
            (opacities times ``sqrt(det(cov2d) / det(cov2d + eps2d I))``, so
            the blur keeps each Gaussian's integral; Mip-Splatting's 2D filter).

    Returns:
        render_colors [C, H, W, X] (X = D, 1 or D + 1 by ``render_mode``),
        render_alphas [C, H, W, 1] and ``meta``, a dict with at least
        ``means2d`` [C, N, 2], ``radii`` [C, N, 2] int32, ``depths`` [C, N],
        ``conics`` [C, N, 3], ``opacities`` [C, N], ``gaussian_ids`` (None),
        ``width``, ``height``, ``n_cameras``, ``tile_size``.

    Example:
        >>> import torch
        >>> from ccl_gs.splat import rasterize
        >>> N = 100
        >>> means = torch.randn(N, 3) * 0.3 + torch.tensor([0.0, 0.0, 3.0])
        >>> quats, scales = torch.randn(N, 4), torch.full((N, 3), 0.05)
        >>> opacities, colors = torch.full((N,), 0.8), torch.rand(N, 3)
        >>> viewmats = torch.eye(4)[None]
        >>> Ks = torch.tensor([[[60.0, 0, 40], [0, 60.0, 30], [0, 0, 1]]])
        >>> img, alpha, meta = rasterize(means, quats, scales, opacities, colors, viewmats, Ks, 80, 60)
        >>> tuple(img.shape), tuple(alpha.shape), tuple(meta["radii"].shape)
        ((1, 60, 80, 3), (1, 60, 80, 1), (1, 100, 2))
    """
    _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                  sh_degree, backgrounds, render_mode, tile_size)
    if rasterize_mode not in RASTERIZE_MODES:
        raise ValueError(f"rasterize: rasterize_mode must be one of {RASTERIZE_MODES}, got {rasterize_mode!r}")
    name = backend if backend is not None else default_backend(means.device)
    if name not in BACKENDS:
        raise ValueError(f"unknown rasterizer backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name](
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
        sh_degree=sh_degree, backgrounds=backgrounds, render_mode=render_mode, tile_size=tile_size,
        rasterize_mode=rasterize_mode,
    )


def _check_inputs(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmats: Tensor, Ks: Tensor, width: int, height: int, sh_degree: int | None,
    backgrounds: Tensor | None, render_mode: str, tile_size: int,
) -> None:
    """One-line ``ValueError`` naming the offending argument."""
    if means.dim() != 2 or means.shape[-1] != 3:
        raise ValueError(f"rasterize: means must be [N, 3], got {tuple(means.shape)}")
    N = means.shape[0]
    for name, t, shape in (("quats", quats, (N, 4)), ("scales", scales, (N, 3)), ("opacities", opacities, (N,))):
        if tuple(t.shape) != shape:
            raise ValueError(f"rasterize: {name} must be {list(shape)}, got {tuple(t.shape)}")
    if viewmats.dim() != 3 or viewmats.shape[-2:] != (4, 4):
        raise ValueError(f"rasterize: viewmats must be [C, 4, 4], got {tuple(viewmats.shape)}")
    C = viewmats.shape[0]
    if tuple(Ks.shape) != (C, 3, 3):
        raise ValueError(f"rasterize: Ks must be [{C}, 3, 3], got {tuple(Ks.shape)}")
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"rasterize: width and height must be positive, got {width}x{height}")
    if int(tile_size) <= 0:
        raise ValueError(f"rasterize: tile_size must be positive, got {tile_size}")
    if render_mode not in RENDER_MODES:
        raise ValueError(f"rasterize: render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    if sh_degree is None:
        ok = (colors.dim() == 2 and colors.shape[0] == N) or (colors.dim() == 3 and colors.shape[:2] == (C, N))
        if not ok:
            raise ValueError(f"rasterize: colors must be [N, D] or [C, N, D] (N={N}, C={C}), got {tuple(colors.shape)}")
        D = colors.shape[-1]
    else:
        ok = (colors.dim() == 3 and colors.shape[0] == N) or (colors.dim() == 4 and colors.shape[:2] == (C, N))
        if not ok or colors.shape[-1] != 3:
            raise ValueError(f"rasterize: SH colors must be [N, K, 3] or [C, N, K, 3] (N={N}, C={C}), got {tuple(colors.shape)}")
        if sh_degree < 0 or (sh_degree + 1) ** 2 > colors.shape[-2]:
            raise ValueError(f"rasterize: sh_degree={sh_degree} needs {(sh_degree + 1) ** 2} SH coefficients, colors has {colors.shape[-2]}")
        D = 3
    if backgrounds is not None and tuple(backgrounds.shape) != (C, D):
        raise ValueError(f"rasterize: backgrounds must be [{C}, {D}], got {tuple(backgrounds.shape)}")


@register_backend("torch")
def _rasterize_torch(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D] | [C, N, D] | [N, K, 3] | [C, N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    near_plane: float,
    far_plane: float,
    radius_clip: float,
    eps2d: float,
    sh_degree: int | None,
    backgrounds: Tensor | None,  # [C, D]
    render_mode: str,
    tile_size: int,
    rasterize_mode: str,
) -> tuple[Tensor, Tensor, dict]:
    """CPU rasterizer: PyTorch projection + numba tile compositor (float32)."""
    C, N = viewmats.shape[0], means.shape[0]
    proj = project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, width, height,
        eps2d=eps2d, near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip,
        antialiased=rasterize_mode == "antialiased",
    )
    if sh_degree is not None:
        if sh_degree > MAX_DEGREE:
            raise ValueError(f"rasterize: backend 'torch' evaluates SH up to degree {MAX_DEGREE}, got sh_degree={sh_degree}")
        campos = torch.inverse(viewmats)[:, :3, 3]  # [C, 3]
        feats = sh_colors(means, colors, campos, sh_degree, (proj.radii > 0).all(-1))  # [C, N, 3]
    elif colors.dim() == 2:
        feats = colors[None].expand(C, N, colors.shape[-1])  # [C, N, D]
    else:
        feats = colors
    feats, backgrounds = _with_depth_channel(feats, backgrounds, proj.depths, render_mode)
    opac = opacities[None].expand(C, N)  # [C, N]
    if proj.compensations is not None:
        opac = opac * proj.compensations
    isect = intersect_tiles(proj.means2d, proj.radii, proj.depths, width, height, tile_size)
    render_colors, render_alphas = composite(
        proj.means2d, proj.conics, feats, opac, proj.radii, isect, width, height, backgrounds
    )
    render_colors = _normalize_expected_depth(render_colors, render_alphas, render_mode)
    meta = {
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": opac,
        "tile_width": isect.tile_width,
        "tile_height": isect.tile_height,
        "tiles_per_gauss": isect.tiles_per_gauss,
        "flatten_ids": isect.flatten_ids,
        "isect_offsets": isect.isect_offsets(),
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_batches": 1,
        "n_cameras": C,
    }
    return render_colors, render_alphas, meta


def _with_depth_channel(
    feats: Tensor,  # [C, N, D]
    backgrounds: Tensor | None,  # [C, D]
    depths: Tensor,  # [C, N]
    render_mode: str,
) -> tuple[Tensor, Tensor | None]:
    """What gets blended for ``render_mode`` (gsplat's convention).

    "D"/"ED" blend the depth alone over a zero background; "RGB+D"/"RGB+ED"
    append depth as a last channel, with a zero background for it.
    """
    if render_mode in ("D", "ED"):
        bg = None if backgrounds is None else torch.zeros_like(backgrounds[:, :1])
        return depths[..., None], bg
    if render_mode in ("RGB+D", "RGB+ED"):
        feats = torch.cat([feats, depths[..., None].to(feats.dtype)], dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, torch.zeros_like(backgrounds[:, :1])], dim=-1)
    return feats, backgrounds


def _normalize_expected_depth(
    render_colors: Tensor,  # [C, H, W, X]
    render_alphas: Tensor,  # [C, H, W, 1]
    render_mode: str,
) -> Tensor:  # [C, H, W, X]
    """"ED" modes: divide the blended depth by the alpha (clamped at 1e-10)."""
    if render_mode not in ("ED", "RGB+ED"):
        return render_colors
    depth = render_colors[..., -1:] / render_alphas.clamp(min=1e-10)
    return torch.cat([render_colors[..., :-1], depth], dim=-1)


@register_backend("gsplat")
def _rasterize_gsplat(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D] | [C, N, D] | [N, K, 3] | [C, N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    near_plane: float,
    far_plane: float,
    radius_clip: float,
    eps2d: float,
    sh_degree: int | None,
    backgrounds: Tensor | None,  # [C, D]
    render_mode: str,
    tile_size: int,
    rasterize_mode: str,
) -> tuple[Tensor, Tensor, dict]:
    """gsplat's CUDA rasterizer (non-packed); needs CUDA tensors."""
    if not torch.cuda.is_available():
        raise RuntimeError("rasterize: backend 'gsplat' needs CUDA, which is not available; use backend='torch'")
    if means.device.type != "cuda":
        raise ValueError(f"rasterize: backend 'gsplat' needs CUDA tensors, got tensors on {means.device}")
    from gsplat import rasterization

    return rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
        sh_degree=sh_degree, packed=False, tile_size=tile_size, backgrounds=backgrounds,
        render_mode=render_mode, rasterize_mode=rasterize_mode,
    )


__all__ = ["BACKENDS", "LEGACY_RASTER", "RASTERIZE_MODES", "RasterConfig", "raster_kwargs", "RENDER_MODES", "RasterizeMode", "RasterizeBackend", "RenderMode", "default_backend", "rasterize", "register_backend"]
