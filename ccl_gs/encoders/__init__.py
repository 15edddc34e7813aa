"""Image-text encoders behind one interface, chosen by name.

- :mod:`ccl_gs.encoders.base`: :class:`ImageTextEncoder`, :func:`masked_crops`,
  the :data:`ENCODERS` registry.
- :mod:`ccl_gs.encoders.open_clip`: ``"open_clip"`` (ViT-B-16 / laion2b_s34b_b88k by default).
- The synthetic scene generator registers an ``"oracle"`` encoder.

Use :func:`build_encoder` to make one by name.
"""

from __future__ import annotations

import importlib
from typing import Any

from ccl_gs.encoders.base import ENCODERS, ImageTextEncoder, masked_crops, register_encoder
from ccl_gs.encoders.open_clip import EncoderLoadError, OpenClipEncoder

PLUGIN_MODULES = ("ccl_gs.data.synthetic",)
"""Modules imported on demand because they register encoders (kept out of this package's import)."""


def build_encoder(kind: str, **options: Any) -> ImageTextEncoder:
    """The encoder registered as ``kind``, built with ``options``.

    Raises:
        KeyError: unknown ``kind`` (the message lists the known ones).
    """
    if kind not in ENCODERS:
        for mod in PLUGIN_MODULES:
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name is None or not mod.startswith(e.name):
                    raise
    if kind not in ENCODERS:
        raise KeyError(f"unknown encoder '{kind}' (known: {sorted(ENCODERS)})")
    return ENCODERS[kind](**options)


__all__ = [
    "ENCODERS",
    "EncoderLoadError",
    "ImageTextEncoder",
    "OpenClipEncoder",
    "build_encoder",
    "masked_crops",
    "register_encoder",
]
