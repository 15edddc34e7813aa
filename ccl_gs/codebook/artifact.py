"""The codebook artifact: its format constants, :class:`CodebookResult` and :func:`load_codebook`.

See :mod:`ccl_gs.codebook.train` for the files of the artifact folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ccl_gs.codebook.config import CodebookConfig
from ccl_gs.codebook.data import PreprocessedInput, load_preprocessed
from ccl_gs.config import from_dict, to_dict
from ccl_gs.io.artifacts import ArtifactError, Manifest, load_npz

KIND = "codebook"
FORMAT_VERSION = 1
CODEBOOK_FILE = "codebook.npz"
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class CodebookResult:
    """A trained codebook (fresh, resumed or loaded from a complete artifact)."""

    out_dir: Path
    prototypes: Tensor
    """``[2, N, D]`` float32 unit norm; level ``l`` uses ``prototypes[l]``."""
    usage: Tensor
    """``[2, N]`` int64 masks of level ``l`` choosing each prototype."""
    manifest: Manifest
    skipped: bool = False
    """True when an up-to-date artifact was found and nothing was trained."""
    resumed_from: int = 0
    """The checkpoint step this run's training continued from (0: trained from the start)."""

    @property
    def n_used(self) -> list[int]:
        """Prototypes chosen by at least one mask, per level."""
        return [int((u > 0).sum()) for u in self.usage]

    @property
    def final_losses(self) -> dict[str, float]:
        return dict(self.manifest.extra.get("final_losses", {}))

    @property
    def config(self) -> CodebookConfig:
        return from_dict(CodebookConfig, self.manifest.config)


def _expected_manifest(inp: PreprocessedInput, cfg: CodebookConfig) -> Manifest:
    return Manifest(
        kind=KIND,
        format_version=FORMAT_VERSION,
        config=to_dict(cfg),
        inputs=inp.fingerprint(),
    )


def _complete(out_dir: Path, manifest: Manifest) -> bool:
    files = [CODEBOOK_FILE] + [f"{s}.npz" for s in manifest.extra.get("images", [])]
    return all((out_dir / f).is_file() for f in files)


def _load_result(out_dir: Path, manifest: Manifest, skipped: bool) -> CodebookResult:
    z = load_npz(out_dir / CODEBOOK_FILE, ("prototypes", "usage"))
    return CodebookResult(
        out_dir=out_dir,
        prototypes=torch.from_numpy(z["prototypes"]),
        usage=torch.from_numpy(z["usage"]),
        manifest=manifest,
        skipped=skipped,
    )


def load_codebook(folder: str | Path, preprocessed: str | Path | PreprocessedInput | None = None) -> CodebookResult:
    """Load a complete codebook artifact.

    Args:
        folder: the codebook artifact folder.
        preprocessed: when given, the preprocess artifact it must have been
            made from; a changed input raises instead of returning stale data.
    Raises:
        ArtifactError: missing/corrupt/incomplete artifact, or stale w.r.t. ``preprocessed``.
    """
    folder = Path(folder)
    manifest = Manifest.load(folder, kind=KIND)
    if manifest.format_version != FORMAT_VERSION:
        raise ArtifactError(f"{folder}: codebook format {manifest.format_version}, this version reads {FORMAT_VERSION}")
    if not _complete(folder, manifest):
        raise ArtifactError(f"{folder}: codebook artifact is incomplete (missing {CODEBOOK_FILE} or image files)")
    if preprocessed is not None:
        inp = preprocessed if isinstance(preprocessed, PreprocessedInput) else load_preprocessed(preprocessed)
        if manifest.inputs != inp.fingerprint():
            raise ArtifactError(
                f"codebook {folder} is stale: preprocess artifact {inp.folder} changed since it was made; "
                "re-run `python -m ccl_gs.codebook`"
            )
    return _load_result(folder, manifest, skipped=True)
