"""The oracle encoder: exact class embeddings from a synthetic scene's ground truth.

Stands in for CLIP on synthetic scenes (:mod:`ccl_gs.data.synthetic`), so the
3D lifting can be measured without a language model's own errors:

* text -> a deterministic random unit vector per normalized text (seeded by a
  hash of the text and ``seed``). Class names map to their class vectors;
  any other text gets its own vector, nearly orthogonal to every class in
  high dimension (|cos| ~ 1/sqrt(D)).
* a mask -> the area-weighted mix of the class vectors of the ground-truth
  pixels under it (background "floor" / "wall" included; pixels with no
  surface count as the text ``"<none>"``), normalized, plus optional noise
  seeded by the view and the mask's pixels (so the same mask in the same
  view always gets the same vector, different views differ);
* optional *structured* inconsistency (``drift > 0``, :mod:`ccl_gs.encoders.drift`):
  per view, a mask drifts toward what occludes it, toward its dominant part's
  concept and toward look-alike concepts of its class (a simulation of how
  real CLIP crops disagree across views; 0 leaves the oracle unchanged).

Registered as ``"oracle"``::

    enc = build_encoder("oracle", scene_root="data/synthetic/3dovs/synthetic_s0", noise=0.1)
    feats = enc.encode_masks(image, masks, view=3)   # [M, 512]
    text = enc.encode_text(["teapot"])                # [1, 512]
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ccl_gs.encoders import drift
from ccl_gs.encoders.base import ImageTextEncoder, register_encoder

NONE_TEXT = "<none>"
"""The text whose embedding stands for pixels with no surface."""

_PREFIXES = ("a photo of a ", "a photo of an ", "a photo of the ", "a photo of ", "a ", "an ", "the ")


@dataclass
class OracleConfig:
    """Options of the oracle encoder."""

    scene_root: Path | None = field(
        default=None, metadata={"help": "Synthetic scene folder holding gt/ (needed to encode masks, not texts)."}
    )
    dim: int = field(default=512, metadata={"help": "Embedding size."})
    noise: float = field(
        default=0.0, metadata={"help": "Relative size of the view-dependent noise added to mask embeddings (0 = exact)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the text embeddings and the noise."})
    drift: float = field(
        default=0.0,
        metadata={
            "help": "Strength of the structured view inconsistency (occluders, part / whole, look-alike concepts; "
            "ccl_gs.encoders.drift); 0 = none."
        },
    )


def _resample(a: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resample of a ground-truth map ``[Hg, Wg]`` to ``size`` (pixel centres)."""
    H, W = size
    if tuple(a.shape) == (H, W):
        return a
    rows = ((torch.arange(H) + 0.5) * a.shape[0] / H).long().clamp_(max=a.shape[0] - 1)
    cols = ((torch.arange(W) + 0.5) * a.shape[1] / W).long().clamp_(max=a.shape[1] - 1)
    return a[rows][:, cols]


def normalize_text(text: str) -> str:
    """Lower case, single spaces, no trailing period, no leading article or ``"a photo of"`` prompt."""
    t = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".").strip()
    for p in _PREFIXES:
        if t.startswith(p) and len(t) > len(p):
            t = t[len(p) :]
            break
    return t


def _seed_of(*parts: Any) -> int:
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


@register_encoder("oracle")
class OracleEncoder(ImageTextEncoder):
    """An :class:`ImageTextEncoder` that reads the answer from the ground truth.

    Args:
        scene_root: synthetic scene folder with ``gt/`` (required by :meth:`encode_masks`).
        dim: embedding size D.
        noise: relative magnitude of the per-(view, mask) Gaussian noise.
        seed: seed of text embeddings and noise.
    """

    def __init__(
        self, scene_root: str | Path | None = None, dim: int = 512, noise: float = 0.0, seed: int = 0, drift: float = 0.0, **_: Any
    ) -> None:
        if dim < 2:
            raise ValueError(f"oracle encoder: dim must be >= 2, got {dim}")
        if noise < 0:
            raise ValueError(f"oracle encoder: noise must be >= 0, got {noise}")
        if not drift >= 0:
            raise ValueError(f"oracle encoder: drift must be >= 0, got {drift}")
        self.dim = int(dim)
        self.noise = float(noise)
        self.seed = int(seed)
        self.drift = float(drift)
        self.scene_root = Path(scene_root) if scene_root is not None else None
        self.name = f"oracle:dim={self.dim},noise={self.noise:g},seed={self.seed}" + (f",drift={self.drift:g}" if self.drift else "")
        self._gt = None
        self._class_emb: Tensor | None = None

    # ------------------------------------------------------------------ text
    def _plain(self, text: str) -> Tensor:
        g = torch.Generator().manual_seed(_seed_of("text", self.seed, normalize_text(text)))
        return F.normalize(torch.randn(self.dim, generator=g, dtype=torch.float32), dim=0)

    def _embed(self, text: str) -> Tensor:
        t = normalize_text(text)
        owner = drift.confuser_owner().get(t) if self.drift > 0 else None
        if owner is None:
            return self._plain(t)
        return drift.confuser_vector(self._plain(owner), t, self._plain(t), self.seed)

    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """``T`` strings -> ``[T, D]`` float32, unit norm (deterministic per normalized text)."""
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([self._embed(t) for t in texts])

    # ----------------------------------------------------------------- crops
    def encode_crops(self, crops: Tensor) -> Tensor:
        raise RuntimeError(
            "the oracle encoder reads classes from the ground truth and cannot encode bare crops; "
            "use encode_masks(image, masks, view) with scene_root set"
        )

    # ----------------------------------------------------------------- masks
    @property
    def ground_truth(self):
        """The scene's :class:`~ccl_gs.data.synthetic.gt.GroundTruth` (loaded on first use)."""
        if self._gt is None:
            if self.scene_root is None:
                raise ValueError("oracle encoder: encoding masks needs scene_root (the synthetic scene folder with gt/)")
            from ccl_gs.data.synthetic.gt import GroundTruth

            self._gt = GroundTruth(self.scene_root)
        return self._gt

    def class_embeddings(self) -> Tensor:
        """``[C + 1, D]``: row 0 is :data:`NONE_TEXT`, row ``c`` the class of ``class_id = c``."""
        if self._class_emb is None:
            self._class_emb = self.encode_text([NONE_TEXT] + list(self.ground_truth.classes))
        return self._class_emb

    def encode_masks(self, image: Tensor, masks: Tensor, view: int | None = None, batch_size: int = 32) -> Tensor:
        """Encode each mask of one view by the classes under it.

        Args:
            image: ``[H, W, 3]`` (only its size is used; the ground truth is
                resampled to it by nearest neighbour when they differ).
            masks: ``[M, H, W]`` bool.
            view: view index into the scene's views (image order).
        Returns:
            ``[M, D]`` float32, unit norm.
        """
        if view is None:
            raise ValueError("oracle encoder: encode_masks needs the view index (view=...)")
        gt = self.ground_truth
        H, W = int(masks.shape[-2]), int(masks.shape[-1])
        cmap = _resample(torch.from_numpy(gt.view(int(view))["class_id"].astype(np.int64)), (H, W))  # [H, W]
        E = self.class_embeddings()  # [C + 1, D]
        M = masks.shape[0]
        if M == 0:
            return torch.zeros(0, self.dim)
        m = masks.reshape(M, -1).to(torch.bool).cpu()
        onehot = F.one_hot(cmap.reshape(-1), num_classes=E.shape[0]).to(torch.float32)  # [H*W, C + 1]
        counts = m.to(torch.float32) @ onehot  # [M, C + 1]
        empty = counts.sum(1) == 0
        counts[empty, 0] = 1.0
        feats = F.normalize(counts @ E, dim=1)  # [M, D]
        packed = np.packbits(m.numpy(), axis=1)
        if self.drift > 0:
            keys = [hashlib.sha256(packed[i].tobytes()).hexdigest() for i in range(M)]
            feats = F.normalize(feats + self.drift * self._drift(masks, view, (H, W), keys), dim=1)
        if self.noise > 0:
            noise = torch.stack(
                [
                    torch.randn(
                        self.dim,
                        generator=torch.Generator().manual_seed(
                            _seed_of("noise", self.seed, int(view), hashlib.sha256(packed[i].tobytes()).hexdigest())
                        ),
                    )
                    for i in range(M)
                ]
            ) / np.sqrt(self.dim)
            feats = F.normalize(feats + self.noise * noise, dim=1)
        return feats

    def _drift(self, masks: Tensor, view: int, size: tuple[int, int], keys: list[str]) -> Tensor:
        """:func:`ccl_gs.encoders.drift.drift_directions` of ``masks`` ``[M, H, W]`` in ``view``: ``[M, D]``."""
        gt = self.ground_truth
        g = gt.view(int(view))
        maps = {k: _resample(torch.from_numpy(np.asarray(g[k])), size) for k in ("instance", "part", "class_id", "depth")}
        maps = {k: (v.to(torch.float32) if k == "depth" else v.to(torch.int64)) for k, v in maps.items()}
        inst_class = torch.from_numpy(gt.instance_class().astype(np.int64))
        part_names = {int(p["id"]): p["name"] for p in gt.meta.get("parts", [])}
        classes = list(gt.classes)

        def part_text(pid: int) -> Tensor | None:
            return self._embed(part_names[pid]) if pid in part_names else None

        def confuser(v: int, cls: int) -> Tensor | None:
            names = drift.CONFUSERS.get(classes[cls - 1]) if 0 < cls <= len(classes) else None
            if not names:
                return None
            return self._embed(names[_seed_of("drift-pick", self.seed, v, classes[cls - 1]) % len(names)])

        return drift.drift_directions(
            masks.to(torch.bool).cpu(), maps, self.class_embeddings(), inst_class, part_text, confuser, int(view), self.seed, keys
        )

    def encode_tiles(self, image: Tensor, boxes: Tensor, view: int | None = None, batch_size: int = 64) -> Tensor:
        """Encode square tiles by the classes under them (the part inside the image; no mask).

        Args:
            image: ``[H, W, 3]`` (only its size is used).
            boxes: ``[M, 4]`` int ``(row0, col0, row1, col1)``, may reach past the border.
            view: view index.
        Returns:
            ``[M, D]`` float32, unit norm.
        """
        H, W = int(image.shape[0]), int(image.shape[1])
        out = []
        rows, cols = torch.arange(H), torch.arange(W)
        for s in range(0, boxes.shape[0], batch_size):
            b = boxes[s : s + batch_size].long()
            in_r = (rows[None] >= b[:, 0:1]) & (rows[None] < b[:, 2:3])  # [m, H]
            in_c = (cols[None] >= b[:, 1:2]) & (cols[None] < b[:, 3:4])  # [m, W]
            out.append(self.encode_masks(image, in_r[:, :, None] & in_c[:, None, :], view=view))
        if not out:
            return torch.zeros(0, self.dim)
        return torch.cat(out, 0)


@dataclass
class OracleDinoConfig:
    """Options of the DINO stand-in on synthetic scenes."""

    dim: int = field(default=64, metadata={"help": "Feature size (real DINO ViT-S/8: 384)."})
    noise: float = field(default=0.2, metadata={"help": "Relative size of the per-view noise."})
    part_weight: float = field(default=0.5, metadata={"help": "Weight of the part vector beside the instance vector."})
    stride: int = field(default=4, metadata={"help": "Pixels per feature cell (DINO ViT-S/8: 8 at its input size)."})
    seed: int = field(default=0, metadata={"help": "Seed of the vectors and the noise."})


@register_encoder("oracle_dino")
class OracleDinoEncoder:
    """A stand-in for DINO on synthetic scenes (a simulation, not a model).

    DINO's key features group pixels by object and, more weakly, by part.
    This encoder gives each ground-truth instance a fixed random unit vector
    and each (instance, part) another, and a cell's feature is
    ``instance + part_weight * part + noise`` (the noise drawn per view and
    cell, relative to a unit vector), on a grid of ``stride``-pixel cells.
    Registered as ``"oracle_dino"``.
    """

    def __init__(self, scene_root: str | Path | None = None, dim: int = 64, noise: float = 0.2,
                 part_weight: float = 0.5, stride: int = 4, seed: int = 0, **_: Any) -> None:
        if dim < 1 or stride < 1 or noise < 0:
            raise ValueError(f"oracle_dino: need dim >= 1, stride >= 1, noise >= 0 (got {dim}, {stride}, {noise})")
        self.scene_root = Path(scene_root) if scene_root is not None else None
        self.dim, self.noise, self.part_weight, self.stride, self.seed = int(dim), float(noise), float(part_weight), int(stride), int(seed)
        self.name = f"oracle_dino:dim={self.dim},noise={self.noise:g},part={self.part_weight:g},stride={self.stride},seed={self.seed}"
        self._gt = None

    def _vec(self, *key: Any) -> Tensor:
        g = torch.Generator().manual_seed(_seed_of("dino", self.seed, *key))
        return F.normalize(torch.randn(self.dim, generator=g), dim=0)

    def encode_image(self, image: Tensor, view: int | None = None) -> Tensor:
        """``[H, W, 3]`` (only its size is used) -> ``[ceil(H / stride), ceil(W / stride), dim]`` float32."""
        if view is None:
            raise ValueError("oracle_dino: encode_image needs the view index (view=...)")
        if self._gt is None:
            if self.scene_root is None:
                raise ValueError("oracle_dino: needs scene_root (the synthetic scene folder with gt/)")
            from ccl_gs.data.synthetic.gt import GroundTruth

            self._gt = GroundTruth(self.scene_root)
        gt = self._gt.view(int(view))
        H, W = int(image.shape[0]), int(image.shape[1])
        h, w = -(-H // self.stride), -(-W // self.stride)
        inst_map, part_map = gt["instance"], gt["part"]
        rows = np.minimum(((np.arange(h) * self.stride + self.stride / 2) * inst_map.shape[0] / H).astype(np.int64), inst_map.shape[0] - 1)
        cols = np.minimum(((np.arange(w) * self.stride + self.stride / 2) * inst_map.shape[1] / W).astype(np.int64), inst_map.shape[1] - 1)
        inst = inst_map[rows][:, cols]
        part = part_map[rows][:, cols]
        pairs, inverse = np.unique(np.stack([inst.ravel(), part.ravel()], 1), axis=0, return_inverse=True)
        table = torch.stack([self._vec("i", int(i)) + self.part_weight * self._vec("p", int(i), int(p)) for i, p in pairs])
        feats = table[torch.from_numpy(inverse.reshape(-1))].view(h, w, self.dim)
        if self.noise > 0:
            g = torch.Generator().manual_seed(_seed_of("dino-noise", self.seed, int(view)))
            feats = feats + self.noise * torch.randn(h, w, self.dim, generator=g) / np.sqrt(self.dim)
        return feats.float()
