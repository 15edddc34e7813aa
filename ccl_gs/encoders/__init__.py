"""Image-text encoders behind one interface, chosen by name.

- :mod:`ccl_gs.encoders.base`: :class:`ImageTextEncoder`, :func:`masked_crops`,
  the :data:`ENCODERS` registry, :func:`encoder_spec` / :func:`build_encoder`
  (what manifests record, and rebuilding from it).
- :mod:`ccl_gs.encoders.open_clip`: ``"open_clip"`` (ViT-B-16 / laion2b_s34b_b88k by default).
- :mod:`ccl_gs.encoders.oracle`: ``"oracle"`` (synthetic scenes' ground truth)
  and ``"oracle_dino"`` (a DINO stand-in from it), registered when
  :func:`load_plugins` imports it.
- :mod:`ccl_gs.encoders.dino`: ``"dino"`` (DINO ViT-S/8 key features through timm),
  a :class:`DenseImageEncoder`.

Use :func:`build_encoder` to build one by kind, or from a manifest's spec.
"""

from __future__ import annotations

import importlib
from typing import Any

from ccl_gs.encoders.base import (
    ENCODERS,
    DenseImageEncoder,
    ImageTextEncoder,
    encoder_spec,
    masked_crops,
    register_encoder,
    tile_crops,
)
from ccl_gs.encoders.base import build_encoder as _build_from_spec
from ccl_gs.encoders.open_clip import EncoderLoadError, OpenClipEncoder

PLUGIN_MODULES = ("ccl_gs.encoders.oracle", "ccl_gs.encoders.dino")
"""Modules that register encoders, imported on demand (kept out of this package's import)."""


def load_plugins() -> None:
    """Import :data:`PLUGIN_MODULES` so their encoders are in :data:`ENCODERS` (absent modules are skipped)."""
    for mod in PLUGIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if not (e.name and mod.startswith(e.name)):
                raise


def build_encoder(kind: str | dict, **options: Any) -> ImageTextEncoder | DenseImageEncoder:
    """An encoder by kind and options, or rebuilt from a manifest spec.

    ``build_encoder("open_clip", model_name="ViT-B-16", pretrained=...)`` or
    ``build_encoder(manifest.extra["encoder"])`` (a spec from :func:`encoder_spec`;
    the rebuilt encoder's name must match the recorded one).

    Raises:
        KeyError: unknown kind (the message lists the known ones).
        ValueError: a spec whose rebuilt encoder has another name.
    """
    name = kind.get("kind") if isinstance(kind, dict) else kind
    if name not in ENCODERS:
        load_plugins()
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder '{name}' (known: {sorted(ENCODERS)})")
    if isinstance(kind, dict):
        return _build_from_spec({**kind, "options": {**kind.get("options", {}), **options}})
    return ENCODERS[kind](**options)


__all__ = [
    "ENCODERS",
    "DenseImageEncoder",
    "EncoderLoadError",
    "ImageTextEncoder",
    "OpenClipEncoder",
    "build_encoder",
    "encoder_spec",
    "load_plugins",
    "masked_crops",
    "register_encoder",
    "tile_crops",
]
