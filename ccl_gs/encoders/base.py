"""One image-text encoder interface, shared by preprocessing, queries and evaluation."""

from __future__ import annotations

import abc
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class ImageTextEncoder(abc.ABC):
    """Maps texts and masked image crops into one unit-norm embedding space."""

    name: str
    """Identifier recorded in manifests (e.g. ``"open_clip:ViT-B-16/laion2b_s34b_b88k"``).
    Queries refuse a scene preprocessed with a different encoder name."""
    dim: int
    """Embedding size D."""
    crop_size: int = 224
    """Side of the square crop fed to :meth:`encode_crops`."""

    @abc.abstractmethod
    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """``T`` strings -> ``[T, D]`` float32, unit norm."""

    @abc.abstractmethod
    def encode_crops(self, crops: Tensor) -> Tensor:
        """``[B, 3, S, S]`` float in [0, 1] (S = crop_size) -> ``[B, D]`` float32, unit norm."""

    def encode_masks(self, image: Tensor, masks: Tensor, view: int | None = None, batch_size: int = 32) -> Tensor:
        """Encode each mask's crop of one image.

        Args:
            image: ``[H, W, 3]`` float in [0, 1].
            masks: ``[M, H, W]`` bool.
            view: view index (used by encoders that need it, e.g. the oracle).
        Returns:
            ``[M, D]`` float32, unit norm.
        """
        out = []
        for s in range(0, masks.shape[0], batch_size):
            crops = masked_crops(image, masks[s : s + batch_size], self.crop_size)
            out.append(self.encode_crops(crops))
        if not out:
            return torch.zeros(0, self.dim)
        return torch.cat(out, 0)

    def encode_tiles(self, image: Tensor, boxes: Tensor, view: int | None = None, batch_size: int = 64) -> Tensor:
        """Encode square image tiles, zero outside the image (LERF's CLIP pyramid).

        Args:
            image: ``[H, W, 3]`` float in [0, 1].
            boxes: ``[M, 4]`` int ``(row0, col0, row1, col1)``, end-exclusive;
                they may reach past the image border (zero padding there).
            view: view index (used by encoders that need it, e.g. the oracle).
        Returns:
            ``[M, D]`` float32, unit norm.
        """
        out = []
        for s in range(0, boxes.shape[0], batch_size):
            out.append(self.encode_crops(tile_crops(image, boxes[s : s + batch_size])))
        if not out:
            return torch.zeros(0, self.dim)
        return torch.cat(out, 0)


def tile_crops(image: Tensor, boxes: Tensor) -> Tensor:
    """Cut boxes ``[M, 4]`` ``(row0, col0, row1, col1)`` of equal size ``k x k`` out of ``image [H, W, 3]``.

    Pixels outside the image are zero (``torch.nn.Unfold``'s zero padding).
    Returns ``[M, 3, k, k]``.
    """
    M = boxes.shape[0]
    if M == 0:
        return image.new_zeros(0, 3, 1, 1)
    k = int(boxes[0, 2] - boxes[0, 0])
    H, W = image.shape[:2]
    pad = k
    padded = F.pad(image.permute(2, 0, 1), (pad, pad, pad, pad))  # [3, H + 2k, W + 2k]
    out = image.new_empty(M, 3, k, k)
    for m in range(M):
        r0, c0 = int(boxes[m, 0]) + pad, int(boxes[m, 1]) + pad
        out[m] = padded[:, r0 : r0 + k, c0 : c0 + k]
    return out


class DenseImageEncoder(abc.ABC):
    """Maps an image to a dense feature map (DINO)."""

    name: str
    """Identifier recorded in manifests; a stage refuses features of another name."""
    dim: int
    """Feature size E."""
    cell: int
    """Input pixels per feature cell (a ViT's patch size): cell ``(i, j)`` covers input rows
    ``[cell * i, cell * (i + 1))`` and likewise columns."""

    @abc.abstractmethod
    def encode_image(self, image: Tensor, view: int | None = None) -> Tensor:
        """``[H, W, 3]`` float in [0, 1] -> ``[h, w, E]`` float32 feature map covering the whole image."""


def masked_crops(image: Tensor, masks: Tensor, size: int) -> Tensor:
    """Masked, square-padded, resized crops (the LangSplat / CCL-LGS recipe).

    The mask's bounding box is cut out, pixels outside the mask set to 0,
    the crop padded with zeros to a centred square and resized to ``size``.

    Args:
        image: ``[H, W, 3]`` float in [0, 1].
        masks: ``[M, H, W]`` bool.
    Returns:
        ``[M, 3, size, size]`` float.
    """
    M = masks.shape[0]
    out = image.new_zeros(M, 3, size, size)
    if M == 0:
        return out
    img = image.permute(2, 0, 1)  # [3, H, W]
    rows = masks.any(2)  # [M, H]
    cols = masks.any(1)  # [M, W]
    for m in range(M):
        r = torch.nonzero(rows[m]).flatten()
        c = torch.nonzero(cols[m]).flatten()
        if r.numel() == 0:
            continue
        y0, y1, x0, x1 = int(r[0]), int(r[-1]) + 1, int(c[0]), int(c[-1]) + 1
        crop = img[:, y0:y1, x0:x1] * masks[m, y0:y1, x0:x1].to(img.dtype)
        h, w = y1 - y0, x1 - x0
        side = max(h, w)
        pad_t, pad_l = (side - h) // 2, (side - w) // 2
        sq = img.new_zeros(3, side, side)
        sq[:, pad_t : pad_t + h, pad_l : pad_l + w] = crop
        out[m] = F.interpolate(sq[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    return out


ENCODERS: dict[str, Callable[..., "ImageTextEncoder | DenseImageEncoder"]] = {}
"""Encoder factories by kind: image-text (``"open_clip"``, ``"oracle"``) and dense image
encoders (``"dino"``, ``"oracle_dino"``)."""


def register_encoder(kind: str):
    """Decorator registering an encoder factory under ``kind``."""

    def deco(factory):
        ENCODERS[kind] = factory
        return factory

    return deco


def encoder_spec(kind: str, encoder: "ImageTextEncoder | DenseImageEncoder", **options) -> dict:
    """What manifests record of an encoder: enough to rebuild it with :func:`build_encoder`."""
    return {"kind": kind, "options": options, "name": encoder.name, "dim": encoder.dim}


def build_encoder(spec: dict) -> "ImageTextEncoder | DenseImageEncoder":
    """Rebuild an encoder from its manifest spec (``{"kind", "options", "name", "dim"}``).

    Raises:
        ValueError: unknown kind, or the rebuilt encoder's name differs from the recorded one.
    """
    kind = spec.get("kind")
    if kind not in ENCODERS:
        raise ValueError(f"unknown encoder kind '{kind}' (known: {sorted(ENCODERS)})")
    enc = ENCODERS[kind](**spec.get("options", {}))
    if spec.get("name") and enc.name != spec["name"]:
        raise ValueError(f"rebuilt encoder '{enc.name}' differs from the recorded '{spec['name']}'")
    return enc
