"""The supervisions of the methods (a stage-2 artifact as training targets) and the method registry.

:class:`Supervision` and its three kinds, :data:`FIELD_METHODS` (method name ->
supervision and head) and :func:`method_of` (the method a stage-2 artifact
folder supervises). See :mod:`ccl_gs.field.methods` for the methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ccl_gs.field.methods.heads import AutoencoderHead, CodebookHead, LanguageHead, RawHead
from ccl_gs.field.model import DecoderConfig
from ccl_gs.io.artifacts import ArtifactError, Manifest, load_npz
from ccl_gs.masks.types import LEVELS


def resize_index(index: Tensor, height: int, width: int) -> Tensor:
    """Nearest-neighbour resize of index maps ``[L, h, w]`` -> ``[L, H, W]`` int64."""
    index = index.long()
    if index.shape[-2:] == (height, width):
        return index
    return F.interpolate(index[None].float(), size=(height, width), mode="nearest")[0].long()


class Supervision:
    """A method's stage-2 artifact as training targets."""

    method: ClassVar[str]
    manifest: Manifest
    encoder_spec: dict[str, Any]
    stems: list[str]

    def target(self, stem: str, height: int, width: int, device: torch.device) -> dict[str, Tensor]:
        """Targets of one view at the render size (``index [L, H, W]`` int64, -1 = no mask, and more)."""
        raise NotImplementedError

    def make_head(self, decoder: DecoderConfig) -> LanguageHead:
        raise NotImplementedError


def _require(maps: dict, stem: str, what: str) -> Any:
    if stem not in maps:
        raise ArtifactError(f"{what} has no entry for image '{stem}'")
    return maps[stem]


class CodebookSupervision(Supervision):
    """Prototype index maps and the codebook of a codebook artifact (``python -m ccl_gs.codebook``)."""

    method = "codebook"

    def __init__(self, folder: Path):
        from ccl_gs.codebook.train import load_codebook

        res = load_codebook(folder)  # validates kind, version and completeness
        self.manifest = res.manifest
        self.encoder_spec = dict(res.manifest.extra.get("encoder", {}))
        self.prototypes = [p.float() for p in res.prototypes]
        self.maps = {f.stem: load_npz(f, keys=("proto_maps",))["proto_maps"]
                     for f in sorted(Path(folder).glob("*.npz")) if f.name != "codebook.npz"}
        self.stems = sorted(self.maps)

    def target(self, stem, height, width, device):
        m = torch.as_tensor(_require(self.maps, stem, "the codebook artifact").astype(np.int64))
        return {"index": resize_index(m, height, width).to(device)}

    def make_head(self, decoder: DecoderConfig) -> CodebookHead:
        return CodebookHead(decoder, self.prototypes)


class MaskFeatureSupervision(Supervision):
    """Per pixel, the (transformed) feature of the mask covering it, from a preprocess artifact.

    Targets: ``index [L, H, W]`` (row of the view's table, -1 = no mask),
    ``table [M, D']`` (the view's mask features through :meth:`transform`: the
    training targets) and ``features [M, D]`` (the unit features themselves).
    """

    def __init__(self, preprocessed):
        self.pre = preprocessed
        self.encoder_spec = dict(preprocessed.encoder)
        self.stems = list(preprocessed.stems)
        self._cache: dict[str, tuple[Tensor, Tensor]] = {}

    def transform(self, features: Tensor) -> Tensor:
        return features

    def target(self, stem, height, width, device):
        if stem not in self._cache:
            if stem not in self.stems:
                raise ArtifactError(f"preprocess artifact {self.pre.folder} has no image '{stem}'")
            z = self.pre.read_image(self.stems.index(stem))
            feats = F.normalize(torch.from_numpy(z["features"].astype(np.float32)), dim=-1)
            with torch.no_grad():
                table = self.transform(feats)
            self._cache[stem] = (torch.from_numpy(z["index_maps"].astype(np.int32)), table, feats)
        index, table, feats = self._cache[stem]
        return {"index": resize_index(index, height, width).to(device), "table": table.to(device),
                "features": feats.to(device)}


class RawSupervision(MaskFeatureSupervision):
    """The raw-feature baseline reads the preprocess artifact directly."""

    method = "raw"

    def __init__(self, folder: Path):
        from ccl_gs.codebook.data import load_preprocessed

        pre = load_preprocessed(folder)
        super().__init__(pre)
        self.manifest = pre.manifest

    def make_head(self, decoder: DecoderConfig) -> RawHead:
        return RawHead(decoder, self.pre.dim, len(LEVELS))


class AutoencoderSupervision(MaskFeatureSupervision):
    """The autoencoder baseline: latents of the mask features, from an autoencoder artifact and its preprocess."""

    method = "autoencoder"

    def __init__(self, folder: Path):
        from ccl_gs.autoencoder import load_autoencoder
        from ccl_gs.codebook.data import load_preprocessed

        man = Manifest.load(folder, kind="autoencoder")
        if not man.extra.get("preprocessed"):
            raise ArtifactError(f"{Path(folder) / 'manifest.json'} does not record its preprocess folder")
        pre_dir = Path(man.extra["preprocessed"])
        if not (pre_dir / "manifest.json").is_file():
            raise ArtifactError(f"autoencoder {folder} was fitted to {pre_dir}, which no longer exists")
        pre = load_preprocessed(pre_dir)
        self.art = load_autoencoder(folder, pre)  # refuses a stale autoencoder
        super().__init__(pre)
        self.manifest = self.art.manifest

    def transform(self, features: Tensor) -> Tensor:
        return self.art.model.encode(features)

    def make_head(self, decoder: DecoderConfig) -> AutoencoderHead:
        import copy

        return AutoencoderHead(copy.deepcopy(self.art.model), len(LEVELS))


@dataclass(frozen=True)
class FieldMethod:
    """A registered stage-3 method."""

    name: str
    artifact_kind: str
    """Manifest kind of the stage-2 artifact it is trained from."""
    supervision: Callable[[Path], Supervision]
    head: type[LanguageHead]


FIELD_METHODS: dict[str, FieldMethod] = {
    "codebook": FieldMethod("codebook", "codebook", CodebookSupervision, CodebookHead),
    "raw": FieldMethod("raw", "preprocess", RawSupervision, RawHead),
    "autoencoder": FieldMethod("autoencoder", "autoencoder", AutoencoderSupervision, AutoencoderHead),
}
"""Stage-3 methods by name."""

METHOD_OF_KIND: dict[str, str] = {m.artifact_kind: m.name for m in FIELD_METHODS.values()}
"""Stage-2 artifact kind -> the method trained from it."""


def method_of(folder: Path) -> FieldMethod:
    """The method a stage-2 artifact folder supervises (by its manifest kind)."""
    man = Manifest.load(folder)
    if man.kind not in METHOD_OF_KIND:
        raise ArtifactError(
            f"{Path(folder) / 'manifest.json'} is a '{man.kind}' artifact; --supervision takes a codebook, "
            "an autoencoder or a preprocess folder"
        )
    return FIELD_METHODS[METHOD_OF_KIND[man.kind]]
