"""Gaussian splatting: rasterization (gsplat CUDA or CPU) and training."""

from ccl_gs.splat.rasterize import BACKENDS, RENDER_MODES, default_backend, rasterize, register_backend

__all__ = ["BACKENDS", "RENDER_MODES", "default_backend", "rasterize", "register_backend"]
