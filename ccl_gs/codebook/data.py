"""Reading the stage-1 (preprocess) artifact as one flat set of masks.

The preprocess folder (:mod:`ccl_gs.preprocess`) holds ``manifest.json``
(kind ``"preprocess"``; ``extra["encoder"]`` is the encoder spec with its
``name`` and ``dim``, ``extra["image_info"]`` the images in order with their
sizes) and per image ``<stem>.npz`` with

* ``features``   float16 ``[M, D]``, unit-norm rows (one per mask),
* ``index_maps`` int32 ``[2, H, W]``: per level (0 = sp, 1 = wp) the row of
  ``features`` covering each pixel, ``-1`` = no mask,
* ``labels``     int32 ``[M]``: cross-view track label in ``1..K`` or ``-1``,
* ``levels``     int8 ``[M]``: 0 (sp) or 1 (wp),
* ``fingerprint``: the manifest's fingerprint (a file of another run is refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ccl_gs import preprocess
from ccl_gs.io.artifacts import ArtifactError, Manifest, file_hash

N_LEVELS = 2
"""sp and wp (see :data:`ccl_gs.masks.types.LEVELS`)."""


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
    encoder: dict
    """The encoder spec recorded by stage 1 (``kind``, ``options``, ``name``, ``dim``)."""
    dim: int

    @property
    def stems(self) -> list[str]:
        return [str(i["stem"]) for i in self.manifest.extra["image_info"]]

    def image_path(self, v: int) -> Path:
        return self.folder / f"{self.stems[v]}.npz"

    def read_image(self, v: int) -> dict[str, np.ndarray]:
        """Load and validate image ``v``'s ``<stem>.npz`` (see :func:`ccl_gs.preprocess.check_image_file`)."""
        info = self.manifest.extra["image_info"][v]
        return preprocess.check_image_file(
            self.image_path(v), self.manifest.fingerprint(), (int(info["height"]), int(info["width"])), self.dim
        )

    def fingerprint(self) -> dict:
        """What the codebook depends on: the upstream manifest and every input file."""
        return {"preprocess": self.manifest.fingerprint(), "files": dict(self.file_hashes)}


def load_preprocessed(folder: str | Path) -> PreprocessedInput:
    """Read a preprocess artifact folder into a :class:`PreprocessedInput`.

    Images are read one at a time (only features, labels and levels are
    kept); each file is validated by stage 1's own
    :func:`ccl_gs.preprocess.check_image_file` (keys, dtypes, shapes, and the
    fingerprint tying it to the manifest).

    Raises:
        ArtifactError: missing/corrupt manifest or image file, wrong kind or
            format, inconsistent shapes, a file from another preprocess run;
            the message names the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"preprocessed folder not found: {folder} (--preprocessed)")
    manifest = Manifest.load(folder, kind=preprocess.KIND)
    if manifest.format_version != preprocess.FORMAT_VERSION:
        raise ArtifactError(
            f"{folder}: preprocess format {manifest.format_version}, this code reads {preprocess.FORMAT_VERSION}"
        )
    enc = manifest.extra.get("encoder")
    if not isinstance(enc, dict) or "dim" not in enc or "name" not in enc:
        raise ArtifactError(f"{folder / 'manifest.json'}: no encoder name / dim recorded")
    infos = manifest.extra.get("image_info", [])
    if not infos:
        raise ArtifactError(f"{folder / 'manifest.json'}: the manifest lists no images")
    inp = PreprocessedInput(
        folder=folder, manifest=manifest, masks=None, file_hashes={}, encoder=dict(enc), dim=int(enc["dim"])
    )  # type: ignore[arg-type]
    feats, views, labels, levels, offsets = [], [], [], [], [0]
    for v in range(len(infos)):
        z = inp.read_image(v)
        M = z["features"].shape[0]
        feats.append(z["features"].astype(np.float32))
        views.append(np.full(M, v, dtype=np.int64))
        labels.append(z["labels"].astype(np.int64))
        levels.append(z["levels"].astype(np.int64))
        offsets.append(offsets[-1] + M)
        inp.file_hashes[inp.stems[v]] = file_hash(inp.image_path(v))
    f = torch.from_numpy(np.concatenate(feats, 0))
    if f.shape[0] == 0:
        raise ArtifactError(f"{folder}: no masks in any image")
    inp.masks = MaskSet(
        features=torch.nn.functional.normalize(f, dim=-1),  # undo float16 rounding of the norm
        views=torch.from_numpy(np.concatenate(views)),
        labels=torch.from_numpy(np.concatenate(labels)),
        levels=torch.from_numpy(np.concatenate(levels)),
        offsets=offsets,
        stems=list(inp.stems),
    )
    return inp
