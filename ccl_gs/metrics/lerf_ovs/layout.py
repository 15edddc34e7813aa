"""The render files of the evaluation: ``<renders>/<scene>/<frame_stem>/<query_slug>.npy``, written and read back.

Reading brings a render to the annotation size (the resize rule of
:mod:`ccl_gs.metrics.lerf_ovs`).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ccl_gs.io.artifacts import atomic_write_bytes
from ccl_gs.metrics.labels import EvalInputError

ASPECT_TOLERANCE = 0.01
"""Relative aspect-ratio difference above which a render of another size is rejected."""


def query_slug(query: str) -> str:
    """File-name form of a query: lower case, runs of non-alphanumerics -> ``_``.

    >>> query_slug("Rubber duck with hat")
    'rubber_duck_with_hat'
    """
    slug = re.sub(r"[^a-z0-9]+", "_", query.strip().lower()).strip("_")
    if not slug:
        raise ValueError(f"query {query!r} has no letters or digits")
    return slug


def render_path(renders: str | Path, scene: str, frame_stem: str, query: str) -> Path:
    """``<renders>/<scene>/<frame_stem>/<query_slug>.npy``."""
    return Path(renders) / scene / frame_stem / f"{query_slug(query)}.npy"


def save_render(renders: str | Path, scene: str, frame_stem: str, query: str, relevancy: np.ndarray) -> Path:
    """Write one query's relevancy ``[L, H, W]`` (float32) atomically in the eval layout.

    Returns:
        The path written.
    """
    arr = np.asarray(relevancy, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"relevancy must be [L, H, W], got shape {arr.shape}")
    buf = io.BytesIO()
    np.save(buf, arr)
    path = render_path(renders, scene, frame_stem, query)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_render(path: Path, height: int, width: int, resize: Literal["bilinear", "error"] = "bilinear") -> np.ndarray:
    """Read one render file and bring it to the annotation size.

    Returns:
        ``[L, height, width]`` float32.

    Raises:
        EvalInputError: missing/unreadable file, wrong rank, non-finite
            values, or a size that cannot be resized under ``resize``.
    """
    if not path.is_file():
        raise EvalInputError(f"missing render {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EvalInputError(f"unreadable render {path}: {e}") from None
    if arr.ndim != 3 or arr.shape[0] < 1:
        raise EvalInputError(f"render {path} must be a float [L, H, W] array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise EvalInputError(f"render {path} must hold floats, got {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise EvalInputError(f"render {path} holds NaN or infinite values")
    h, w = arr.shape[1:]
    if (h, w) == (height, width):
        return arr
    if resize == "error":
        raise EvalInputError(f"render {path} is {w}x{h}, the annotation is {width}x{height} (resize is 'error')")
    if abs((w / h) / (width / height) - 1.0) > ASPECT_TOLERANCE:
        raise EvalInputError(
            f"render {path} is {w}x{h}, aspect ratio differs from the annotation's {width}x{height}"
        )
    return np.stack([cv2.resize(level, (width, height), interpolation=cv2.INTER_LINEAR) for level in arr], axis=0)
