"""COLMAP sparse models (``sparse/0/{cameras,images,points3D}.{bin,txt}``): reader and writers.

The binary and text formats are parsed by hand rather than through
``pycolmap``: they are small, stable and documented (COLMAP's
``src/colmap/scene/reconstruction_io.cc`` and the "Output format" page), a
parser is ~150 lines of ``struct``/``numpy``, and ``pycolmap`` is a large
compiled dependency whose Python API has changed between releases. Writing
the model back (for round-trip tests and the synthetic generator) is equally
small.

Conventions: COLMAP stores world-to-camera rotations as unit quaternions
``(qw, qx, qy, qz)`` and translations, with OpenCV camera axes, i.e. exactly
our ``viewmats``. Supported camera models map onto ours as::

    SIMPLE_PINHOLE (f, cx, cy)                    -> PINHOLE
    PINHOLE        (fx, fy, cx, cy)               -> PINHOLE
    SIMPLE_RADIAL  (f, cx, cy, k)                 -> OPENCV (k, 0, 0, 0)
    RADIAL         (f, cx, cy, k1, k2)            -> OPENCV (k1, k2, 0, 0)
    OPENCV         (fx, fy, cx, cy, k1, k2, p1, p2) -> OPENCV (k1, k2, p1, p2)

Any other model (fisheye, FULL_OPENCV, ...) is a :class:`SceneError`.

Modules
=======

* :mod:`~ccl_gs.data.readers.colmap.model`: the camera model table, :class:`ColmapCamera`, :class:`ColmapImage` and quaternions;
* :mod:`~ccl_gs.data.readers.colmap.parsing`: the binary and text files (:func:`read_cameras`, :func:`read_images`, :func:`read_points3d`);
* :mod:`~ccl_gs.data.readers.colmap.reader`: :func:`read_colmap`, registered as the ``"colmap"`` reader;
* :mod:`~ccl_gs.data.readers.colmap.writers`: :func:`write_colmap_text` and :func:`write_colmap_binary`.

Every name is importable from ``ccl_gs.data.readers.colmap`` itself.
"""

from __future__ import annotations

from ccl_gs.data.readers.colmap.model import (
    CAMERA_MODEL_IDS,
    CAMERA_MODELS,
    SUPPORTED_MODELS,
    ColmapCamera,
    ColmapImage,
    qvec_to_rotmat,
    rotmat_to_qvec,
)
from ccl_gs.data.readers.colmap.parsing import (
    _Bin,
    _read_cameras_bin,
    _read_cameras_txt,
    _read_images_bin,
    _read_images_txt,
    _read_points_bin,
    _read_points_txt,
    _text_lines,
    read_cameras,
    read_images,
    read_points3d,
)
from ccl_gs.data.readers.colmap.reader import _detect, find_model_file, find_sparse_dir, read_colmap, to_camera
from ccl_gs.data.readers.colmap.writers import (
    _camera_params,
    _colmap_cameras,
    _image_names,
    _points_and_colors,
    write_colmap_binary,
    write_colmap_text,
)

__all__ = [
    "CAMERA_MODELS",
    "CAMERA_MODEL_IDS",
    "SUPPORTED_MODELS",
    "ColmapCamera",
    "ColmapImage",
    "find_model_file",
    "find_sparse_dir",
    "qvec_to_rotmat",
    "read_cameras",
    "read_colmap",
    "read_images",
    "read_points3d",
    "rotmat_to_qvec",
    "to_camera",
    "write_colmap_binary",
    "write_colmap_text",
]
