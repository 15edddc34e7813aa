"""NeRF-synthetic "Blender" scenes (``transforms_train.json``, ``transforms_test.json``).

Each JSON gives ``camera_angle_x`` (horizontal field of view, radians) and
``frames`` with ``file_path`` (relative, usually without extension: ``.png``
is appended) and ``transform_matrix``, a camera-to-world matrix in the
Blender/OpenGL convention (camera looks along -z, y up). The focal length is
``0.5 * W / tan(0.5 * camera_angle_x)`` with square pixels and the principal
point at the image centre. Images are RGBA renders on a transparent
background, composited on white (``Scene.white_background``); a scene whose
frames mix images with and without alpha is refused (naming a frame without),
since those frames would keep their own background.

Views are the train frames followed by the test frames (each in file
order); ``Scene.split`` records which is which, so the format's own split is
used instead of the every-8th rule.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ccl_gs.data.readers._common import GL_TO_CV, as_matrix, image_header, read_json_file
from ccl_gs.data.scene import Camera, Scene, SceneError, register_reader


def _detect(root: Path) -> bool:
    return (root / "transforms_train.json").is_file()


def _frame_image(root: Path, file_path: str) -> Path:
    p = root / file_path
    return p if p.suffix else p.with_name(p.name + ".png")


def _check_alpha(paths: list[Path], has_alpha: list[bool]) -> None:
    """Refuse frames without alpha among frames with it (SceneError naming the first such frame)."""
    n_alpha = sum(has_alpha)
    if 0 < n_alpha < len(paths):
        i = has_alpha.index(False)
        raise SceneError(
            f"{paths[i]}: no alpha channel, while {n_alpha} of {len(paths)} frames have one "
            f"(e.g. {paths[has_alpha.index(True)].name}); give every frame an alpha channel or none"
        )


@register_reader("blender", _detect)
def read_blender(root: Path, splits: Sequence[str] = ("train", "test"), white_background: bool = True) -> Scene:
    """Read a Blender scene folder.

    Args:
        root: folder with ``transforms_{split}.json`` files and their images.
        splits: which JSON files to read; ``"val"`` frames, if asked for, are
            put in the test split.
        white_background: composite the RGBA images on white (else black).
    """
    root = Path(root)
    paths: list[Path] = []
    cameras: list[Camera] = []
    c2ws: list[np.ndarray] = []
    split: dict[str, list[int]] = {"train": [], "test": []}
    has_alpha: list[bool] = []
    for name in splits:
        path = root / f"transforms_{name}.json"
        meta = read_json_file(path)
        if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
            raise SceneError(f"{path}: expected an object with a 'frames' list")
        try:
            angle = float(meta["camera_angle_x"])
        except (KeyError, TypeError, ValueError):
            raise SceneError(f"{path}: missing or non-numeric 'camera_angle_x'") from None
        if not (0.0 < angle < math.pi):
            raise SceneError(f"{path}: camera_angle_x = {angle} is not a field of view in (0, pi)")
        for i, fr in enumerate(meta["frames"]):
            if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
                raise SceneError(f"{path}: frame {i} lacks 'file_path' or 'transform_matrix'")
            img = _frame_image(root, str(fr["file_path"]))
            c2w = as_matrix(fr["transform_matrix"], (4, 4), path, f"transform_matrix of {fr['file_path']}")
            w, h, alpha = image_header(img)
            f = 0.5 * w / math.tan(0.5 * angle)
            split["train" if name == "train" else "test"].append(len(paths))
            paths.append(img)
            has_alpha.append(alpha)
            cameras.append(Camera(w, h, f, f, w / 2.0, h / 2.0))
            c2ws.append(c2w @ GL_TO_CV)
    if not paths:
        raise SceneError(f"{root}: no frames in transforms_{{{','.join(splits)}}}.json")
    _check_alpha(paths, has_alpha)
    return Scene(
        name=root.resolve().name,
        root=root,
        image_paths=paths,
        cameras=cameras,
        viewmats=np.linalg.inv(np.stack(c2ws)),
        split=split,
        white_background=white_background,
        format="blender",
    )
