"""Training / evaluation views of a :class:`Scene`, loaded once into memory as pinhole images.

In gsplat's style the scene is parsed once (:func:`ccl_gs.data.load_scene`)
and a :class:`SceneDataset` only picks the views of a split, loads their
images (resized, alpha-composited, undistorted) and hands out one dict per
view::

    scene = load_scene("data/fern", factor=8)
    train = SceneDataset(scene, split="train")
    item = train[0]          # image [H, W, 3], viewmat [4, 4], K [3, 3], index, width, height
    batch = train.stacked()  # images [B, H, W, 3], viewmats [B, 4, 4], Ks [B, 3, 3], indices [B]

Cameras with distortion (``OPENCV``) are undistorted with OpenCV, so
everything downstream sees pinhole cameras. With ``crop_undistorted`` (the
default, as gsplat does) the new intrinsics are OpenCV's optimal matrix with
``alpha=0`` and the image is cropped to its valid region, so no pixel is
invented; otherwise the original ``K`` and size are kept and the few
border pixels whose source lies outside the image repeat the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ccl_gs.data.scene import Camera, Scene, load_image_alpha, load_scene

Split = Literal["train", "test", "all"]


@dataclass
class DataConfig:
    """Where a scene is and which of its views / resolution to use."""

    root: Path = field(metadata={"help": "scene folder (COLMAP, LLFF, nerfstudio or Blender layout)"})
    format: str = field(default="auto", metadata={"help": "scene reader: auto, colmap, llff, nerfstudio, blender"})
    factor: int | None = field(
        default=None,
        metadata={"help": "read the images_{factor} folder (1 = images/); reader default when unset"},
    )
    test_every: int = field(default=8, metadata={"help": "hold out every n-th view for testing (0: none)"})
    downscale: float = field(default=1.0, metadata={"help": "divide the resolution of the loaded images by this"})
    width: int | None = field(
        default=None, metadata={"help": "resize the loaded images to this width (overrides --downscale)"}
    )
    crop_undistorted: bool = field(
        default=True, metadata={"help": "crop undistorted images to their valid region (else keep K and size)"}
    )

    def load_scene(self) -> Scene:
        """Parse the scene folder."""
        options = {} if self.factor is None else {"factor": self.factor}
        return load_scene(self.root, format=self.format, **options)

    def dataset(self, scene: Scene, split: Split, device: str | torch.device = "cpu") -> "SceneDataset":
        """The :class:`SceneDataset` of ``split`` with this config's resolution rules."""
        return SceneDataset(
            scene,
            split=split,
            test_every=self.test_every,
            downscale=self.downscale,
            width=self.width,
            crop_undistorted=self.crop_undistorted,
            device=device,
        )


def target_size(cam: Camera, downscale: float = 1.0, width: int | None = None) -> tuple[int, int]:
    """``(width, height)`` of a view after resizing by ``downscale`` or to ``width`` (aspect kept)."""
    if width is not None:
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        s = width / cam.width
    else:
        if downscale <= 0:
            raise ValueError(f"downscale must be positive, got {downscale}")
        s = 1.0 / downscale
    return max(1, int(round(cam.width * s))), max(1, int(round(cam.height * s)))


class Undistorter:
    """Undistorts images of OPENCV cameras to pinhole ones; maps are cached per camera.

    Our pixel centres are at ``+0.5`` while OpenCV's are at integers, so the
    principal point is shifted by half a pixel going in and out.
    """

    def __init__(self, crop: bool = True) -> None:
        self.crop = crop
        self._cache: dict[Camera, tuple[np.ndarray, np.ndarray, tuple[int, int, int, int], Camera]] = {}

    def camera(self, cam: Camera) -> Camera:
        """The pinhole camera of the undistorted image."""
        return self._maps(cam)[3]

    def __call__(self, image: np.ndarray, cam: Camera) -> tuple[np.ndarray, Camera]:
        """Undistort ``image`` ``[H, W, C]`` (H, W = cam size); returns the image and its pinhole camera."""
        if not cam.has_distortion:
            return image, cam
        import cv2

        map1, map2, (x, y, w, h), new_cam = self._maps(cam)
        out = cv2.remap(image, map1, map2, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(out[y : y + h, x : x + w]), new_cam

    def _maps(self, cam: Camera):
        if cam in self._cache:
            return self._cache[cam]
        import cv2

        if not cam.has_distortion:
            entry = (None, None, (0, 0, cam.width, cam.height), cam)
            self._cache[cam] = entry  # type: ignore[assignment]
            return entry
        K = cam.K()
        K[0, 2] -= 0.5
        K[1, 2] -= 0.5
        dist = np.asarray(cam.distortion, dtype=np.float64)
        size = (cam.width, cam.height)
        roi = (0, 0, cam.width, cam.height)
        new_K = K
        if self.crop:
            cand, (x, y, w, h) = cv2.getOptimalNewCameraMatrix(K, dist, size, 0.0, size)
            if w > 0 and h > 0:
                new_K, roi = cand, (int(x), int(y), int(w), int(h))
        map1, map2 = cv2.initUndistortRectifyMap(K, dist, None, new_K, size, cv2.CV_32FC1)
        x, y, w, h = roi
        new_cam = Camera(
            width=w,
            height=h,
            fx=float(new_K[0, 0]),
            fy=float(new_K[1, 1]),
            cx=float(new_K[0, 2]) + 0.5 - x,
            cy=float(new_K[1, 2]) + 0.5 - y,
        )
        entry = (map1, map2, roi, new_cam)
        self._cache[cam] = entry
        return entry


class SceneDataset(torch.utils.data.Dataset):
    """The views of one split of a scene, images held in memory as float32 tensors.

    Args:
        scene: a parsed scene.
        split: ``"train"``, ``"test"`` or ``"all"`` (see :meth:`Scene.views`).
        test_every: every n-th view is a test view (the scene's own split,
            e.g. Blender's, is used while this is 8).
        downscale: divide the stored image resolution by this factor.
        width: resize to this width instead (aspect kept; overrides ``downscale``).
        device: where the tensors live.
        crop_undistorted: see the module docstring.

    Attributes:
        indices: view indices in ``scene`` of the items, in order.
        cameras: the pinhole camera of each item (after resize and undistortion).
    """

    def __init__(
        self,
        scene: Scene,
        split: Split = "train",
        test_every: int = 8,
        downscale: float = 1.0,
        width: int | None = None,
        device: str | torch.device = "cpu",
        crop_undistorted: bool = True,
    ) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        self.scene = scene
        self.split = split
        self.device = torch.device(device)
        self.indices: list[int] = scene.views(split, test_every)
        undistort = Undistorter(crop=crop_undistorted)
        self.cameras: list[Camera] = []
        self._images: list[Tensor] = []
        self._alphas: list[Tensor | None] = []
        for i in self.indices:
            cam = scene.cameras[i]
            w, h = target_size(cam, downscale, width)
            if (w, h) != (cam.width, cam.height):
                cam = cam.scaled(w, h)
            img, alpha = load_image_alpha(scene.image_paths[i], w, h, white_background=scene.white_background)
            if alpha is not None:
                img = np.concatenate([img, alpha], axis=-1)
            img, cam = undistort(img, cam)
            self.cameras.append(cam)
            self._images.append(torch.from_numpy(np.ascontiguousarray(img[..., :3])).to(self.device))
            self._alphas.append(None if alpha is None else torch.from_numpy(np.ascontiguousarray(img[..., 3:])).to(self.device))
        self._viewmats = torch.as_tensor(scene.viewmats[self.indices], dtype=torch.float32).reshape(-1, 4, 4)
        self._viewmats = self._viewmats.to(self.device)
        self._Ks = torch.stack([torch.as_tensor(c.K(), dtype=torch.float32) for c in self.cameras]) if self.cameras else torch.zeros(0, 3, 3)
        self._Ks = self._Ks.to(self.device)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict:
        """One view::

            image:   [H, W, 3] float32 in [0, 1]
            viewmat: [4, 4] float32 world-to-camera (OpenCV axes)
            K:       [3, 3] float32 pinhole intrinsics (pixel centres at +0.5)
            index:   int, the view index in the scene
            width, height: int
            alpha:   [H, W, 1] float32 in [0, 1], only when the image file has an alpha channel
                     (``image`` is then already composited on the scene's background)
        """
        cam = self.cameras[item]
        out = {
            "image": self._images[item],
            "viewmat": self._viewmats[item],
            "K": self._Ks[item],
            "index": self.indices[item],
            "width": cam.width,
            "height": cam.height,
        }
        if self._alphas[item] is not None:
            out["alpha"] = self._alphas[item]
        return out

    def stacked(self) -> dict:
        """All items at once::

            images:   [B, H, W, 3] float32
            viewmats: [B, 4, 4] float32
            Ks:       [B, 3, 3] float32
            indices:  [B] int64 view indices in the scene
            width, height: int

        Raises ValueError when the views differ in size.
        """
        sizes = {(c.width, c.height) for c in self.cameras}
        if len(sizes) > 1:
            raise ValueError(f"views of split '{self.split}' differ in size {sorted(sizes)}; iterate items instead")
        w, h = sizes.pop() if sizes else (0, 0)
        images = torch.stack(self._images) if self._images else torch.zeros(0, h, w, 3, device=self.device)
        return {
            "images": images,
            "viewmats": self._viewmats,
            "Ks": self._Ks,
            "indices": torch.tensor(self.indices, dtype=torch.int64, device=self.device),
            "width": w,
            "height": h,
        }
