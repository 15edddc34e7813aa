"""Scene readers (COLMAP, LLFF, nerfstudio, Blender) into one :class:`Scene` type, and the synthetic generator."""

from ccl_gs.data.scene import Camera, Scene, SceneError, load_image, load_scene, split_views

__all__ = ["Camera", "Scene", "SceneError", "load_image", "load_scene", "split_views"]
