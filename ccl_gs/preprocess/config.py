"""Stage 1 options: what decides the artifact (:class:`PreprocessConfig`) and how one run goes (:class:`RunOptions`).

See :mod:`ccl_gs.preprocess` for the stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ccl_gs.encoders.oracle import OracleConfig
from ccl_gs.encoders.open_clip import DEFAULT_MODEL, DEFAULT_PRETRAINED
from ccl_gs.io.artifacts import parse_shard as _parse_shard
from ccl_gs.masks.merge import MergeConfig
from ccl_gs.masks.propagate import Sam2Config
from ccl_gs.masks.sam import SamConfig


class PreprocessError(RuntimeError):
    """A user-fixable problem with the inputs or options; the message names the file or flag."""


@dataclass
class PreprocessConfig:
    """Everything that decides the content of the preprocess artifact (recorded in its manifest)."""

    mask_source: str = field(default="sam", metadata={"help": "mask source: sam | precomputed"})
    track_source: str = field(default="sam2", metadata={"help": "track source: sam2 | precomputed"})
    encoder: str = field(default="open_clip", metadata={"help": "image-text encoder: open_clip | oracle"})
    masks_dir: str = field(
        default="sim_masks", metadata={"help": "folder inside the scene with <stem>.npz masks (precomputed masks)"}
    )
    tracks_dir: str = field(
        default="sim_tracks", metadata={"help": "folder inside the scene with <stem>.npz tracks (precomputed tracks)"}
    )
    clip_model: str = field(default=DEFAULT_MODEL, metadata={"help": "open_clip model name"})
    clip_pretrained: str = field(
        default=DEFAULT_PRETRAINED, metadata={"help": "open_clip pretrained tag or a local checkpoint file"}
    )
    max_side: int = field(
        default=1080, metadata={"help": "images with a longer side above this are downscaled to it (0 = never)"}
    )
    first_view: int = field(default=0, metadata={"help": "the view whose wp masks seed the SAM2 tracks"})
    scene_format: str = field(default="auto", metadata={"help": "scene reader (auto, llff, colmap, nerfstudio, blender)"})
    images_dir: str | None = field(
        default=None, metadata={"help": "image folder inside the scene (e.g. images_4); default: the reader's"}
    )
    sam: SamConfig = field(default_factory=SamConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    sam2: Sam2Config = field(default_factory=Sam2Config)
    oracle: OracleConfig = field(default_factory=OracleConfig)


@dataclass
class RunOptions:
    """How one run goes about it (not recorded in the manifest; never changes the outputs)."""

    shard: str = field(default="0/1", metadata={"help": "i/n: process the images j with j mod n = i"})
    steps: str = field(default="all", metadata={"help": "all | tracks | images | verify"})
    overwrite: bool = field(
        default=False, metadata={"help": "replace a manifest of another config / inputs (its files are redone)"}
    )
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda if available, else cpu)"})
    encode_batch: int = field(default=32, metadata={"help": "mask crops per encoder batch"})
    wait_for_tracks: float = field(
        default=0.0, metadata={"help": "seconds a shard other than 0 waits for shard 0's tracks"}
    )
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n`` (:func:`ccl_gs.io.artifacts.parse_shard`, raising :class:`PreprocessError`)."""
    return _parse_shard(text, PreprocessError)


def target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """``(W, H)`` after downscaling so the longer side is at most ``max_side`` (0 = keep)."""
    side = max(width, height)
    if max_side <= 0 or side <= max_side:
        return width, height
    s = max_side / side
    return max(1, round(width * s)), max(1, round(height * s))
