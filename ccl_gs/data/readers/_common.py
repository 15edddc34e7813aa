"""Small helpers shared by the scene readers: image headers, JSON, pose conventions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ccl_gs.data.scene import SceneError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Flipping the y and z camera axes converts OpenGL / Blender / nerfstudio
# camera-to-world matrices (camera looks along -z, y up) to OpenCV (looks
# along +z, y down), and back: it is its own inverse.
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image from its header (the pixels are not decoded).

    Raises :class:`SceneError` naming the file when it is missing or unreadable.
    """
    width, height, _ = image_header(path)
    return width, height


def image_header(path: Path) -> tuple[int, int, bool]:
    """``(width, height, has_alpha)`` of an image from its header (the pixels are not decoded).

    ``has_alpha``: the image carries transparency (an alpha channel, or a
    palette / colour key marked transparent).

    Raises :class:`SceneError` naming the file when it is missing or unreadable.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1]), bool(im.has_transparency_data)
    except FileNotFoundError:
        raise SceneError(f"missing image: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise SceneError(f"unreadable image {path}: {e}") from None


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder``, sorted by name (hidden files skipped)."""
    if not folder.is_dir():
        raise SceneError(f"image folder not found: {folder}")
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )


def downscaled_size(width: int, height: int, factor: int) -> tuple[int, int]:
    """Size of an image downscaled by ``factor`` (rounded, at least 1 pixel): nerfstudio's and gsplat's rule."""
    return max(1, int(round(width / factor))), max(1, int(round(height / factor)))


def ensure_downscaled(sources: list[Path], outputs: list[Path], factor: int) -> None:
    """Make each missing ``outputs[i]``: ``sources[i]`` downscaled by ``factor``.

    The cache nerfstudio (``images_N/``) and gsplat's parsers keep beside the full-size images:
    made once, atomically per file, and reused; existing files are never rewritten. Bicubic with
    antialiasing (PIL), alpha kept, JPEGs at quality 95.

    Raises:
        SceneError: a source is missing or unreadable, or an output cannot be written.
    """
    from PIL import Image, UnidentifiedImageError

    from ccl_gs.io.artifacts import atomic_path

    todo = [(src, dst) for src, dst in zip(sources, outputs) if not dst.exists()]
    if not todo:
        return
    folders = sorted({str(dst.parent) for _, dst in todo})
    print(f"downscaling {len(todo)} images by {factor} into {', '.join(folders)}", file=sys.stderr)
    for src, dst in todo:
        try:
            with Image.open(src) as im:
                im.load()
                small = im.resize(downscaled_size(im.width, im.height, factor), Image.Resampling.BICUBIC)
                fmt = im.format or "PNG"
        except FileNotFoundError:
            raise SceneError(f"missing image: {src}") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise SceneError(f"unreadable image {src}: {e}") from None
        opts = {"quality": 95} if fmt == "JPEG" else {}
        try:
            with atomic_path(dst) as tmp:
                small.save(tmp, format=fmt, **opts)
        except OSError as e:
            raise SceneError(f"cannot write {dst}: {e.strerror or e}") from None


def read_json_file(path: Path) -> Any:
    """Parse a JSON file; a missing or malformed file raises :class:`SceneError` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SceneError(f"missing file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SceneError(f"unreadable file {path}: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SceneError(f"malformed JSON in {path}: {e}") from None


def as_matrix(value: Any, shape: tuple[int, ...], path: Path, what: str) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape``; otherwise a SceneError naming ``path``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SceneError(f"{path}: {what} is not a numeric array") from None
    if arr.shape != shape:
        raise SceneError(f"{path}: {what} has shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise SceneError(f"{path}: {what} has non-finite values")
    return arr


def check_finite_poses(poses: np.ndarray, path: Path, names: list[str]) -> None:
    """Raise a SceneError naming ``path`` and the first view whose pose is not finite."""
    ok = np.isfinite(poses.reshape(len(poses), -1)).all(1)
    if not ok.all():
        i = int(np.where(~ok)[0][0])
        raise SceneError(f"{path}: non-finite pose for view {i} ({names[i]})")
