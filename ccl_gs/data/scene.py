"""The one scene type every reader produces, the split rule and image loading.

Conventions (the same as gsplat / COLMAP / OpenCV):

* ``viewmats`` are world-to-camera 4x4 matrices; the camera looks along +z,
  x right, y down.
* Intrinsics are in pixels of the image as stored at ``image_paths``; pixel
  centres are at ``+0.5``.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


class SceneError(ValueError):
    """A scene folder cannot be read; the message names the file at fault."""


DISTORTION_MODELS = ("PINHOLE", "OPENCV")


@dataclass(frozen=True)
class Camera:
    """Intrinsics of one view.

    ``model`` is ``"PINHOLE"`` (no distortion) or ``"OPENCV"`` with
    ``distortion = (k1, k2, p1, p2)``.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "PINHOLE"
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)

    def K(self) -> np.ndarray:
        """Intrinsic matrix ``[3, 3]`` (float64)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, width: int, height: int) -> "Camera":
        """The same camera for an image resized to ``width x height``."""
        sx, sy = width / self.width, height / self.height
        return dataclasses.replace(
            self, width=width, height=height, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy
        )

    @property
    def has_distortion(self) -> bool:
        return any(abs(d) > 0 for d in self.distortion)


@dataclass
class Scene:
    """Posed images of one scene, as read from disk by any reader."""

    name: str
    """Scene name (the folder name by default)."""
    root: Path
    """The folder the scene was read from."""
    image_paths: list[Path]
    """``V`` image files, in view order."""
    cameras: list[Camera]
    """``V`` intrinsics, matching ``image_paths``."""
    viewmats: np.ndarray
    """``[V, 4, 4]`` float64 world-to-camera (OpenCV axes)."""
    points: np.ndarray | None = None
    """``[P, 3]`` float32 sparse points (world), or None."""
    point_colors: np.ndarray | None = None
    """``[P, 3]`` uint8 colours of ``points``, or None."""
    bounds: np.ndarray | None = None
    """``[V, 2]`` near/far depth per view when the format gives them, or None."""
    split: dict[str, list[int]] | None = None
    """The format's own train/test split (Blender), or None to use :func:`split_views`."""
    white_background: bool = False
    """Images carry alpha to be composited on white (Blender)."""
    format: str = ""
    """The reader that produced this scene."""

    def __post_init__(self) -> None:
        V = len(self.image_paths)
        if len(self.cameras) != V or self.viewmats.shape != (V, 4, 4):
            raise SceneError(
                f"{self.root}: {V} images but {len(self.cameras)} cameras and poses of shape {self.viewmats.shape}"
            )
        if not np.isfinite(self.viewmats).all():
            bad = int(np.where(~np.isfinite(self.viewmats).reshape(V, -1).all(1))[0][0])
            raise SceneError(f"{self.root}: non-finite pose for view {bad} ({self.image_paths[bad].name})")

    def __len__(self) -> int:
        return len(self.image_paths)

    @property
    def camtoworlds(self) -> np.ndarray:
        """``[V, 4, 4]`` camera-to-world matrices."""
        return np.linalg.inv(self.viewmats)

    @property
    def camera_centers(self) -> np.ndarray:
        """``[V, 3]`` camera positions in world coordinates."""
        return self.camtoworlds[:, :3, 3]

    @property
    def scene_scale(self) -> float:
        """Radius of the camera positions around their mean, x 1.1 (the 3DGS rule).

        Used by densification thresholds and random initialization.
        """
        c = self.camera_centers
        r = float(np.linalg.norm(c - c.mean(0), axis=1).max()) * 1.1
        return r if r > 0 else 1.0

    def views(self, split: str, test_every: int = 8) -> list[int]:
        """View indices of ``"train"``, ``"test"`` or ``"all"`` (see :func:`split_views`)."""
        if split == "all":
            return list(range(len(self)))
        if self.split is not None and test_every == 8:
            return list(self.split[split])
        return split_views(len(self), test_every)[split]


def check_test_every(test_every: int) -> int:
    """``test_every`` if it is a hold-out step :func:`split_views` takes (``>= 0``; 0 = no test views).

    Raises:
        ValueError: ``test_every < 0`` (the message names ``--test-every``).
    """
    if test_every < 0:
        raise ValueError(f"--test-every must be >= 0 (0 = no test views), got {test_every}")
    return test_every


def split_views(n_views: int, test_every: int = 8) -> dict[str, list[int]]:
    """The LLFF convention: every ``test_every``-th view (0, 8, 16, ...) is held out.

    ``test_every == 0`` holds out nothing (all views train, test is empty).
    Scenes whose format carries its own split (Blender) use that one unless
    ``test_every`` is changed from 8.

    Raises:
        ValueError: ``test_every < 0`` (see :func:`check_test_every`).
    """
    if check_test_every(test_every) == 0:
        return {"train": list(range(n_views)), "test": []}
    test = [i for i in range(n_views) if i % test_every == 0]
    train = [i for i in range(n_views) if i % test_every != 0]
    return {"train": train, "test": test}


def load_image(path: Path, width: int | None = None, height: int | None = None, white_background: bool = False) -> np.ndarray:
    """Read an image as float32 ``[H, W, 3]`` in [0, 1].

    Alpha is composited on white or black; the image is resized (area
    filter) when ``width``/``height`` are given. Errors name the file.
    """
    return load_image_alpha(path, width, height, white_background)[0]


def load_image_alpha(
    path: Path, width: int | None = None, height: int | None = None, white_background: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`load_image` and the image's own alpha ``[H, W, 1]`` in [0, 1] (None when it has none)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
            else:
                im = im.convert("RGB")
            if width is not None and height is not None and im.size != (width, height):
                im = im.resize((width, height), Image.Resampling.BOX)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise SceneError(f"missing image: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise SceneError(f"unreadable image {path}: {e}") from None
    alpha = None
    if arr.shape[-1] == 4:
        rgb, alpha = arr[..., :3], np.ascontiguousarray(arr[..., 3:])
        bg = 1.0 if white_background else 0.0
        arr = rgb * alpha + bg * (1.0 - alpha)
    return np.ascontiguousarray(arr), alpha


Reader = Callable[..., Scene]
READERS: dict[str, Reader] = {}
"""Scene readers by format name; each takes ``(root, **options)``."""
DETECTORS: dict[str, Callable[[Path], bool]] = {}
"""Per format, a cheap test whether a folder looks like that format."""


def register_reader(name: str, detect: Callable[[Path], bool]) -> Callable[[Reader], Reader]:
    """Decorator: register a reader under ``name`` with its folder detector."""

    def deco(fn: Reader) -> Reader:
        READERS[name] = fn
        DETECTORS[name] = detect
        return fn

    return deco


def detect_format(root: Path, order: Sequence[str] | None = None) -> str:
    """The first registered format whose detector accepts ``root``."""
    _import_readers()
    root = Path(root)
    if not root.is_dir():
        raise SceneError(f"scene folder not found: {root}")
    for name in order or list(READERS):
        if DETECTORS[name](root):
            return name
    raise SceneError(
        f"{root}: no usable scene layout (expected one of: COLMAP sparse/0, poses_bounds.npy, "
        "transforms.json, transforms_train.json)"
    )


def get_reader(name: str) -> Reader:
    """The reader registered as ``name``; an unknown name raises a SceneError listing the known formats."""
    _import_readers()
    if name not in READERS:
        raise SceneError(f"unknown scene format '{name}' (known: auto, {', '.join(sorted(READERS))})")
    return READERS[name]


def load_scene(root: str | Path, format: str = "auto", **options) -> Scene:
    """Read a scene folder with the named reader (``"auto"`` detects the layout)."""
    root = Path(root)
    name = detect_format(root) if format == "auto" else format
    reader = get_reader(name)
    accepted = [p for p in inspect.signature(reader).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise SceneError(f"{root}: the '{name}' reader has no option {', '.join(unknown)} (options: {', '.join(accepted)})")
    return reader(root, **options)


def _import_readers() -> None:
    # Readers register themselves on import; imported lazily to keep import cheap.
    from ccl_gs.data import readers  # noqa: F401
