"""Benchmark ground truth: LERF-OVS polygons and 3D-OVS segmentation PNGs, read as published.

LERF-OVS (rules from LangSplat's evaluation) and 3D-OVS (rules from the 3D-OVS
release, ``dataLoader/llff.py``) are described below.

LERF-OVS
--------

Layout of the released labels (LangSplat, ``lerf_ovs/label``)::

    <labels>/<scene>/frame_XXXXX.json     one file per annotated frame

Each file holds ``info`` (``name`` = ``"frame_XXXXX.jpg"``, ``width``,
``height``) and ``objects``, each with a ``category`` (the text query), one
polygon ``segmentation`` (``[[x, y], ...]`` pixel coordinates, origin top-left)
and a ``bbox`` ``[x1, y1, x2, y2]``.

Rules taken from LangSplat's ``eval/evaluate_iou_loc.py`` / ``eval/utils.py``:

- A polygon is rasterized with ``cv2.fillPoly`` at ``info.height x info.width``
  after converting its float vertices with ``np.asarray(..., dtype=np.int32)``,
  i.e. truncation toward zero (no rounding).
- A category that appears in several objects gets the union of their masks
  and all their boxes.
- ``frame_XXXXX`` is image index ``XXXXX - 1`` of the scene (0-based); the
  labelled frames are training views.

3D-OVS
------
Layout of a scene of the 3D-OVS release::

    <scene>/segmentations/classes.txt          one class name per line
    <scene>/segmentations/<view>/<class>.png   one mask per class and view

- Classes are the stripped lines of ``classes.txt``, sorted alphabetically
  (blank lines are ignored; a duplicate is an error).
- The evaluated views are the folders under ``segmentations/`` (sorted here;
  the release takes ``os.listdir`` order, which does not change the means).
  A folder name is the view's image index (``int("03") = 3``, the release's
  ``self.idxes``); these views are also training views.
- A mask is opened as PIL ``'L'``, resized with ``Image.NEAREST`` to the
  evaluation size when it differs, and a pixel belongs to the class only where
  the value is 255 (the release computes ``(img / 255.0).astype(np.int8)``).
- Every class needs a PNG in every view (the release raises otherwise); a PNG
  whose name is not in ``classes.txt`` is an error here (the release ignores it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

_FRAME_RE = re.compile(r"^frame_(\d+)$")


class EvalInputError(ValueError):
    """A benchmark input (labels, renders, data) a user supplied is missing or inconsistent.

    The message is one line and names the offending file or folder; the
    evaluation CLIs print it and exit with status 2.
    """


class LabelError(EvalInputError):
    """An annotation file is missing, malformed or inconsistent (the message names it)."""


@dataclass
class LabelledFrame:
    """Ground truth of one annotated frame."""

    path: Path
    """The JSON file it was read from."""
    frame_stem: str
    """``"frame_XXXXX"`` (the file name without ``.json``)."""
    image_index: int
    """0-based index of the frame among the scene's images (``XXXXX - 1``)."""
    height: int
    """Annotation image height H."""
    width: int
    """Annotation image width W."""
    categories: list[str] = field(default_factory=list)
    """Text queries, in order of first appearance in the file."""
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    """Per category, ``[H, W]`` bool: union of its polygons."""
    bboxes: dict[str, np.ndarray] = field(default_factory=dict)
    """Per category, ``[K, 4]`` float64 boxes ``x1, y1, x2, y2`` (one per object)."""


def polygon_to_mask(points: np.ndarray | list, height: int, width: int) -> np.ndarray:
    """Rasterize one polygon as LangSplat does (int32 truncation + ``cv2.fillPoly``).

    Args:
        points: ``[V, 2]`` vertices ``(x, y)`` in pixels (floats are truncated toward zero).
        height: mask height H.
        width: mask width W.

    Returns:
        ``[H, W]`` bool mask.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 3:
        raise ValueError(f"a polygon needs [V >= 3, 2] vertices, got shape {pts.shape}")
    pts_i = pts.astype(np.int32)  # C cast: truncation toward zero, as np.asarray(..., dtype=np.int32)
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(mask, [pts_i], 1)
    return mask.astype(bool)


def polygon_area(points: np.ndarray | list) -> float:
    """Shoelace area of a simple polygon ``[V, 2]`` (pixels squared)."""
    p = np.asarray(points, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def frame_index(frame_stem: str) -> int:
    """``"frame_00041"`` -> 40 (LERF-OVS frames are numbered from 1)."""
    m = _FRAME_RE.match(frame_stem)
    if m is None:
        raise ValueError(f"not a frame name 'frame_XXXXX': {frame_stem!r}")
    return int(m.group(1)) - 1


def parse_frame(path: str | Path) -> LabelledFrame:
    """Read one ``frame_XXXXX.json`` and rasterize its categories.

    Raises:
        LabelError: the file is missing, not JSON, lacks a field, its
            ``info.name`` disagrees with the file name, or a category's mask
            is empty.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabelError(f"missing label file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LabelError(f"label file {path} is not valid JSON: {e}") from None
    try:
        info = data["info"]
        height, width = int(info["height"]), int(info["width"])
        name = str(info["name"])
        objects = data["objects"]
    except (KeyError, TypeError, ValueError) as e:
        raise LabelError(f"label file {path} lacks info.name/width/height or objects ({e!r})") from None
    stem = path.stem
    if Path(name).stem != stem:
        raise LabelError(f"label file {path}: info.name {name!r} does not match the file name")
    try:
        index = frame_index(stem)
    except ValueError as e:
        raise LabelError(f"label file {path}: {e}") from None

    frame = LabelledFrame(path=path, frame_stem=stem, image_index=index, height=height, width=width)
    for k, obj in enumerate(objects):
        try:
            label = str(obj["category"])
            mask = polygon_to_mask(obj["segmentation"], height, width)
            box = np.asarray(obj["bbox"], dtype=np.float64).reshape(-1, 4)
        except (KeyError, TypeError, ValueError) as e:
            raise LabelError(f"label file {path}: object {k} is malformed ({e})") from None
        if label in frame.masks:
            frame.masks[label] = frame.masks[label] | mask
            frame.bboxes[label] = np.concatenate([frame.bboxes[label], box], axis=0)
        else:
            frame.categories.append(label)
            frame.masks[label] = mask
            frame.bboxes[label] = box
    if not frame.categories:
        raise LabelError(f"label file {path} has no objects")
    for label in frame.categories:
        if not frame.masks[label].any():
            raise LabelError(f"label file {path}: category {label!r} rasterizes to an empty mask")
    return frame


def load_scene_labels(folder: str | Path) -> list[LabelledFrame]:
    """All ``frame_*.json`` of one scene folder, sorted by name.

    Raises:
        LabelError: the folder is missing or holds no ``frame_*.json``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelError(f"missing label folder: {folder}")
    paths = sorted(folder.glob("frame_*.json"))
    if not paths:
        raise LabelError(f"no frame_*.json label files in {folder}")
    return [parse_frame(p) for p in paths]


def read_ovs3d_classes(segmentations: str | Path) -> list[str]:
    """Class names of ``<segmentations>/classes.txt``, stripped and sorted alphabetically.

    Raises:
        LabelError: the file is missing, empty or lists a class twice.
    """
    path = Path(segmentations) / "classes.txt"
    if not path.is_file():
        raise LabelError(f"missing class list: {path}")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise LabelError(f"class list {path} is empty")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise LabelError(f"class list {path} repeats {dup}")
    return sorted(names)


def read_class_list(folder: str | Path) -> list[str]:
    """A scene's closed class list for methods that need one (the 3D-OVS method): sorted.

    ``folder`` is a 3D-OVS ``segmentations/`` folder (its ``classes.txt``) or a LERF-OVS label folder of
    one scene (the union of the categories of its ``frame_*.json``, the scene's query list).

    Raises:
        LabelError: neither kind of folder, or the list is empty or malformed.
    """
    folder = Path(folder)
    if (folder / "classes.txt").is_file() or not any(folder.glob("frame_*.json")):
        return read_ovs3d_classes(folder)
    names = sorted({c for f in load_scene_labels(folder) for c in f.categories})
    if not names:
        raise LabelError(f"no categories in the label files of {folder}")
    return names


def ovs3d_views(segmentations: str | Path) -> list[str]:
    """The evaluated views: names of the folders under ``segmentations/``, sorted.

    Raises:
        LabelError: the folder is missing or has no view folders.
    """
    seg = Path(segmentations)
    if not seg.is_dir():
        raise LabelError(f"missing segmentation folder: {seg}")
    views = sorted(p.name for p in seg.iterdir() if p.is_dir())
    if not views:
        raise LabelError(f"no view folders under {seg}")
    return views


def ovs3d_view_index(view: str) -> int:
    """Image index of a 3D-OVS view folder name (``"03"`` -> 3), as the release reads it."""
    try:
        return int(view)
    except ValueError:
        raise LabelError(f"3D-OVS view folder {view!r} is not an image index") from None


def read_ovs3d_view_masks(
    segmentations: str | Path,
    view: str,
    classes: list[str],
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Ground-truth masks of one 3D-OVS view, one per class.

    Args:
        segmentations: the scene's ``segmentations/`` folder.
        view: a view folder name (e.g. ``"00"``).
        classes: ``C`` class names (sorted, from :func:`read_ovs3d_classes`).
        size: ``(W, H)`` evaluation size; masks of another size are resized
            with PIL ``NEAREST``. ``None`` keeps the PNG size.

    Returns:
        ``[C, H, W]`` bool, True only where the PNG value is 255.

    Raises:
        LabelError: a class PNG is missing, unreadable, of another size than
            the view's other PNGs, or a PNG names a class not in ``classes``.
    """
    from PIL import Image

    folder = Path(segmentations) / view
    known = set(classes)
    extra = sorted(p.name for p in folder.glob("*.png") if p.stem not in known)
    if extra:
        raise LabelError(f"segmentation {folder / extra[0]} names a class missing from classes.txt")
    out = []
    shape = None
    for name in classes:
        png = folder / f"{name}.png"
        if not png.is_file():
            raise LabelError(f"missing segmentation mask {png} (class '{name}' of classes.txt)")
        try:
            with Image.open(png) as im:
                img = im.convert("L")
        except OSError as e:
            raise LabelError(f"unreadable segmentation mask {png}: {e}") from None
        if shape is None:
            shape = img.size
        elif img.size != shape:
            raise LabelError(f"segmentation mask {png} is {img.size[0]}x{img.size[1]}, others in {folder} are {shape[0]}x{shape[1]}")
        if size is not None and img.size != tuple(size):
            img = img.resize(tuple(size), Image.NEAREST)
        out.append(np.asarray(img) == 255)
    return np.stack(out, axis=0)


__all__ = [
    "EvalInputError",
    "LabelError",
    "LabelledFrame",
    "frame_index",
    "load_scene_labels",
    "parse_frame",
    "polygon_area",
    "polygon_to_mask",
    "ovs3d_view_index",
    "ovs3d_views",
    "read_ovs3d_classes",
    "read_ovs3d_view_masks",
]
