"""Scene readers. Importing this package registers every reader with :func:`ccl_gs.data.scene.register_reader`.

``load_scene(root, format="auto")`` tries the detectors in registration
order, i.e. the import order below, from the most specific marker file to
the least:

1. ``blender``: ``transforms_train.json``
2. ``nerfstudio``: ``transforms.json``
3. ``llff``: ``poses_bounds.npy`` (also claims LLFF / 3D-OVS folders that carry a
   partial or full COLMAP model beside it, e.g. the fern's ``cameras.bin`` +
   ``points3D.bin``)
4. ``colmap``: ``sparse/0`` or ``sparse`` with cameras and images
"""

from ccl_gs.data.readers import blender, nerfstudio, llff, colmap  # noqa: F401  (order = detection order)
from ccl_gs.data.readers.colmap import read_colmap, write_colmap_binary, write_colmap_text

__all__ = ["read_colmap", "write_colmap_binary", "write_colmap_text"]
