"""Reading the stage-1 (preprocess) artifact as one flat set of masks.

The preprocess folder holds ``manifest.json`` (kind ``"preprocess"``; its
``extra`` names the encoder and its dim) and per image ``<stem>.npz`` with

* ``features``   float16 ``[M, D]``, unit-norm rows (one per mask),
* ``index_maps`` int32 ``[2, H, W]``: per level (0 = sp, 1 = wp) the row of
  ``features`` covering each pixel, ``-1`` = no mask,
* ``labels``     int32 ``[M]``: cross-view track label in ``1..K`` or ``-1``,
* ``levels``     int8 ``[M]``: 0 (sp) or 1 (wp).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ccl_gs.io.artifacts import ArtifactError, Manifest, file_hash, load_npz

N_LEVELS = 2
"""sp and wp (see :data:`ccl_gs.masks.types.LEVELS`)."""
PREPROCESS_KEYS = ("features", "index_maps", "labels", "levels")


@dataclass
class MaskSet:
    """All masks of all images, concatenated in image order."""

    features: Tensor
    """``[M, D]`` float32, unit norm."""
    views: Tensor
    """``[M]`` int64 image index (into :attr:`stems`)."""
    labels: Tensor
    """``[M]`` int64 track label, ``-1`` = none."""
    levels: Tensor
    """``[M]`` int64 level, 0 (sp) or 1 (wp)."""
    offsets: list[int]
    """``V + 1`` ints: image ``v`` owns rows ``offsets[v]:offsets[v + 1]``."""
    stems: list[str]
    """Image stems, in order."""

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


@dataclass
class PreprocessedInput:
    """A verified preprocess artifact: its manifest, masks and file hashes."""

    folder: Path
    manifest: Manifest
    masks: MaskSet
    file_hashes: dict[str, str]
    """``{stem: sha256-16}`` of each ``<stem>.npz``."""
    encoder: str
    dim: int

    def fingerprint(self) -> dict:
        """What the codebook depends on: the upstream manifest and every input file."""
        return {"preprocess": self.manifest.fingerprint(), "files": dict(self.file_hashes)}


def _encoder_info(manifest: Manifest, folder: Path) -> tuple[str | None, int | None]:
    ex = manifest.extra
    name = ex.get("encoder", ex.get("encoder_name"))
    dim = ex.get("dim", ex.get("encoder_dim", ex.get("feature_dim")))
    if isinstance(name, dict):  # {"name": ..., "dim": ...}
        dim = name.get("dim", dim)
        name = name.get("name")
    return (str(name) if name is not None else None), (int(dim) if dim is not None else None)


def image_stems(folder: Path, manifest: Manifest) -> list[str]:
    """The images of a preprocess artifact: ``extra["images"]`` if listed, else every ``*.npz``."""
    listed = manifest.extra.get("images")
    if listed:
        return [Path(str(s)).stem for s in listed]
    return sorted(p.stem for p in folder.glob("*.npz"))


def read_image_npz(path: Path, dim: int | None) -> dict[str, np.ndarray]:
    """Load and validate one ``<stem>.npz``; any inconsistency raises ArtifactError naming the file."""
    z = load_npz(path, PREPROCESS_KEYS)
    f, im, lab, lev = z["features"], z["index_maps"], z["labels"], z["levels"]
    if f.ndim != 2 or (dim is not None and f.shape[1] != dim):
        raise ArtifactError(f"{path}: features has shape {f.shape}, expected [M, {dim if dim else 'D'}]")
    M = f.shape[0]
    if lab.shape != (M,) or lev.shape != (M,):
        raise ArtifactError(f"{path}: labels {lab.shape} / levels {lev.shape} do not match features [M={M}]")
    if im.ndim != 3 or im.shape[0] != N_LEVELS:
        raise ArtifactError(f"{path}: index_maps has shape {im.shape}, expected [2, H, W]")
    if M and (lev.min() < 0 or lev.max() >= N_LEVELS):
        raise ArtifactError(f"{path}: levels must be 0 (sp) or 1 (wp)")
    if im.size and (im.min() < -1 or im.max() >= M):
        raise ArtifactError(f"{path}: index_maps reference rows outside [-1, {M})")
    if not np.isfinite(f).all():
        raise ArtifactError(f"{path}: features contain NaN/inf")
    return z


def load_preprocessed(folder: str | Path) -> PreprocessedInput:
    """Read a preprocess artifact folder into a :class:`PreprocessedInput`.

    Raises:
        ArtifactError: missing/corrupt manifest or image file, wrong kind,
            inconsistent shapes; the message names the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"preprocessed folder not found: {folder} (--preprocessed)")
    manifest = Manifest.load(folder, kind="preprocess")
    encoder, dim = _encoder_info(manifest, folder)
    stems = image_stems(folder, manifest)
    if not stems:
        raise ArtifactError(f"{folder}: no <stem>.npz image files")
    feats, views, labels, levels, offsets, hashes = [], [], [], [], [0], {}
    for v, stem in enumerate(stems):
        path = folder / f"{stem}.npz"
        z = read_image_npz(path, dim)
        if dim is None:
            dim = int(z["features"].shape[1])
        M = z["features"].shape[0]
        feats.append(z["features"].astype(np.float32))
        views.append(np.full(M, v, dtype=np.int64))
        labels.append(z["labels"].astype(np.int64))
        levels.append(z["levels"].astype(np.int64))
        offsets.append(offsets[-1] + M)
        hashes[stem] = file_hash(path)
    f = torch.from_numpy(np.concatenate(feats, 0))
    if f.shape[0] == 0:
        raise ArtifactError(f"{folder}: no masks in any image")
    f = torch.nn.functional.normalize(f, dim=-1)  # undo float16 rounding of the norm
    masks = MaskSet(
        features=f,
        views=torch.from_numpy(np.concatenate(views)),
        labels=torch.from_numpy(np.concatenate(labels)),
        levels=torch.from_numpy(np.concatenate(levels)),
        offsets=offsets,
        stems=stems,
    )
    return PreprocessedInput(
        folder=folder,
        manifest=manifest,
        masks=masks,
        file_hashes=hashes,
        encoder=encoder or "unknown",
        dim=int(dim),
    )
