"""Stage 1 (preprocess): masks at two levels, cross-view track labels and CLIP features per image.

For every image of a scene:

1. a **mask source** gives candidate masks at three granularities
   (:class:`~ccl_gs.masks.types.RawMasks`), merged into the two levels sp / wp
   (:func:`ccl_gs.masks.merge.two_level_masks`);
2. a **track source** gives masks tracked across the views; every mask of both
   levels takes the id of the track it overlaps best (IoU > 0.5) or -1
   (:func:`ccl_gs.masks.propagate.label_index_maps`);
3. an **encoder** embeds each mask's crop (:class:`~ccl_gs.encoders.base.ImageTextEncoder`).

Sources are chosen by name in three registries, and the artifact is the same
whichever are used:

* :data:`MASK_SOURCES`: ``"sam"`` (SAM at three granularities) and
  ``"precomputed"`` (``<scene>/<masks_dir>/<stem>.npz`` RawMasks files,
  default ``sim_masks``);
* :data:`TRACK_SOURCES`: ``"sam2"`` (the wp masks of the first view, all of
  them by default, propagated by SAM2 through the views in
  :func:`~ccl_gs.masks.propagate.order_views` order) and ``"precomputed"``
  (``<scene>/<tracks_dir>/<stem>.npz`` with ``track_masks`` / ``track_ids``,
  default ``sim_tracks``);
* encoders by kind in :data:`ccl_gs.encoders.base.ENCODERS` (``"open_clip"``,
  ``"oracle"``).

The artifact (folder ``out``)
=============================

* ``<stem>.npz`` per image: ``features`` float16 ``[M, D]`` (unit-norm rows),
  ``index_maps`` int32 ``[2, H, W]`` (level 0 = sp, 1 = wp; rows of
  ``features``, -1 = no mask), ``labels`` int32 ``[M]`` (track id or -1),
  ``levels`` int8 ``[M]``, and ``fingerprint`` (the manifest's, as a string).
* ``tracks/<stem>.npz`` per image: the tracks in that view, bit-packed
  (``track_bits`` uint8 ``[K, ceil(H W / 8)]``, ``track_ids`` int32 ``[K]``,
  ``size`` int32 ``[2]``) and ``fingerprint``. Tracks need the whole video,
  so they are computed for all views once, before the per-image step.
* ``manifest.json`` (:class:`~ccl_gs.io.artifacts.Manifest`, kind
  ``"preprocess"``): the resolved config, the inputs (hashes of the images,
  precomputed mask / track files and model checkpoints) and in ``extra`` the
  encoder spec (``kind``, ``options``, ``name``, ``dim``), the image stems,
  their sizes, the models used and the video order of the views.

Resuming and changes
====================

A file counts as done when it loads, has the expected keys, dtypes and
shapes, and carries the current fingerprint; anything else (missing,
truncated, corrupt, from another config) is redone. Files are written
atomically. A folder whose manifest differs from the current config or
inputs is refused with an error naming the differing keys, unless
``overwrite`` is set: the new manifest is then written and every file of the
old one, carrying the old fingerprint, is redone as it is reached (nothing is
deleted up front, so a shard that starts later sees the same state).

Shards: with ``shard = (i, n)`` image ``j`` belongs to shard ``j % n``. Each
shard writes the manifest only if it is absent (identical content from every
shard, written atomically) and refuses a different one. The tracks are
computed by shard 0 (or an unsharded run, or ``steps="tracks"``); other shards
wait up to ``wait_for_tracks`` seconds for them. :func:`verify_artifact`
(``steps="verify"``) checks that every image of every shard is complete.

Images whose longer side exceeds ``max_side`` (default 1080, LangSplat's
limit) are downscaled (area filter) so their longer side is ``max_side``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ccl_gs.config import to_dict
from ccl_gs.data.scene import Scene, load_image, load_scene
from ccl_gs.encoders import ENCODERS, ImageTextEncoder, encoder_spec, load_plugins
from ccl_gs.encoders.oracle import OracleConfig
from ccl_gs.encoders.open_clip import DEFAULT_MODEL, DEFAULT_PRETRAINED, resolve_pretrained
from ccl_gs.io.artifacts import ArtifactError, Manifest, check_out_dir, file_hash, load_npz, save_npz_atomic
from ccl_gs.masks.merge import MergeConfig, two_level_masks
from ccl_gs.masks.propagate import (
    Sam2Config,
    Sam2Tracker,
    label_index_maps,
    order_views,
    propagate_tracks,
    select_first_masks,
)
from ccl_gs.masks.sam import SamConfig
from ccl_gs.masks.types import LevelMasks, RawMasks

KIND = "preprocess"
FORMAT_VERSION = 1
IMAGE_KEYS = ("features", "index_maps", "labels", "levels", "fingerprint")
TRACK_KEYS = ("track_bits", "track_ids", "size", "fingerprint")


class PreprocessError(RuntimeError):
    """A user-fixable problem with the inputs or options; the message names the file or flag."""


# ---------------------------------------------------------------------------
# Config


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
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise PreprocessError(f"--shard must look like i/n (e.g. 0/4), got '{text}'") from None
    if n < 1 or not 0 <= i < n:
        raise PreprocessError(f"--shard {text}: need 0 <= i < n")
    return i, n


def target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """``(W, H)`` after downscaling so the longer side is at most ``max_side`` (0 = keep)."""
    side = max(width, height)
    if max_side <= 0 or side <= max_side:
        return width, height
    s = max_side / side
    return max(1, round(width * s)), max(1, round(height * s))


# ---------------------------------------------------------------------------
# Context shared by the sources


@dataclass
class Context:
    """A scene prepared for stage 1: views, stems, sizes and the config."""

    cfg: PreprocessConfig
    scene: Scene
    stems: list[str]
    """``V`` image stems (file names without extension)."""
    sizes: list[tuple[int, int]]
    """``V`` target ``(H, W)`` after downscaling."""
    device: torch.device

    @property
    def n_views(self) -> int:
        return len(self.stems)

    def image(self, view: int) -> np.ndarray:
        """View ``view`` at its target size, float32 ``[H, W, 3]`` in [0, 1]."""
        H, W = self.sizes[view]
        return load_image(self.scene.image_paths[view], W, H, white_background=self.scene.white_background)

    def image_u8(self, view: int) -> np.ndarray:
        """View ``view`` at its target size, uint8 ``[H, W, 3]``."""
        return np.round(self.image(view) * 255.0).astype(np.uint8)


def make_context(scene_root: str | Path, cfg: PreprocessConfig, device: str | torch.device | None = None) -> Context:
    """Read the scene and work out stems and target sizes."""
    options: dict[str, Any] = {}
    if cfg.images_dir:
        options["images_dir"] = cfg.images_dir
    scene = load_scene(scene_root, format=cfg.scene_format, **options)
    stems = [p.stem for p in scene.image_paths]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise PreprocessError(f"{scene_root}: several images share the stem(s) {dup[:5]}; stems name the artifact files")
    sizes = []
    for cam in scene.cameras:
        W, H = target_size(cam.width, cam.height, cfg.max_side)
        sizes.append((H, W))
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Context(cfg=cfg, scene=scene, stems=stems, sizes=sizes, device=dev)


def _resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[K, h, w]`` bool -> ``[K, H, W]`` bool (nearest)."""
    if masks.shape[1:] == tuple(size) or masks.shape[0] == 0:
        return masks if masks.shape[0] else np.zeros((0, *size), dtype=bool)
    t = torch.from_numpy(np.ascontiguousarray(masks))[:, None].float()
    return (torch.nn.functional.interpolate(t, size=size, mode="nearest")[:, 0] > 0.5).numpy()


def _precomputed_file(ctx: Context, folder: str, view: int, flag: str) -> Path:
    path = ctx.scene.root / folder / f"{ctx.stems[view]}.npz"
    if not path.is_file():
        raise PreprocessError(f"missing precomputed file {path} (set {flag} or use another source)")
    return path


def _check_size(ctx: Context, view: int, arr: np.ndarray, path: Path) -> None:
    cam = ctx.scene.cameras[view]
    if arr.shape[1:] not in ((cam.height, cam.width), tuple(ctx.sizes[view])):
        raise PreprocessError(f"{path}: masks of size {arr.shape[1:]} for an image of {cam.height}x{cam.width}")


# ---------------------------------------------------------------------------
# Mask sources: (ctx) -> (view, image uint8 [H, W, 3]) -> RawMasks at the image's size

MaskSource = Callable[[int, np.ndarray], RawMasks]
MASK_SOURCES: dict[str, Callable[[Context], MaskSource]] = {}
"""Mask source factories by name."""


def register_mask_source(name: str):
    """Decorator registering a mask source factory ``(ctx) -> MaskSource``."""

    def deco(fn):
        MASK_SOURCES[name] = fn
        return fn

    return deco


@register_mask_source("sam")
def _sam_source(ctx: Context) -> MaskSource:
    from ccl_gs.masks.sam import SamCheckpointError, SamMaskSource

    try:
        source = SamMaskSource(ctx.cfg.sam, device=ctx.device)
    except SamCheckpointError as e:
        raise PreprocessError(str(e)) from e
    return lambda view, image: source(image)


@register_mask_source("precomputed")
def _precomputed_masks(ctx: Context) -> MaskSource:
    def read(view: int, image: np.ndarray) -> RawMasks:
        path = _precomputed_file(ctx, ctx.cfg.masks_dir, view, "--masks-dir")
        try:
            z = load_npz(path, ("masks", "granularity", "scores"))
        except ArtifactError as e:
            raise PreprocessError(str(e)) from e
        masks = z["masks"].astype(bool)
        if masks.ndim != 3 or z["granularity"].shape != (masks.shape[0],) or z["scores"].shape != (masks.shape[0],):
            raise PreprocessError(f"{path}: expected masks [M, H, W] with granularity [M] and scores [M]")
        _check_size(ctx, view, masks, path)
        return RawMasks(
            masks=_resize_masks(masks, image.shape[:2]),
            granularity=z["granularity"].astype(np.int8),
            scores=z["scores"].astype(np.float32),
        )

    return read


# ---------------------------------------------------------------------------
# Track sources: (ctx, mask source, tracker or None) -> iterator of
# (view, track_masks [K, H, W] bool, track_ids [K] int32) covering all views

TrackSource = Callable[[Context, MaskSource, "Sam2Tracker | None"], Iterator[tuple[int, np.ndarray, np.ndarray]]]
TRACK_SOURCES: dict[str, TrackSource] = {}
"""Track sources by name."""


def register_track_source(name: str):
    """Decorator registering a track source ``(ctx, mask_source, tracker) -> iterator``.

    ``tracker`` is an already built tracker to use (or None: the source builds what it needs).
    """

    def deco(fn):
        TRACK_SOURCES[name] = fn
        return fn

    return deco


def level_masks(ctx: Context, mask_source: MaskSource, view: int, image: np.ndarray | None = None) -> LevelMasks:
    """The two-level masks of one view (mask source + merge)."""
    image = ctx.image_u8(view) if image is None else image
    raw = mask_source(view, image)
    return two_level_masks(raw, ctx.cfg.merge, device=ctx.device)


@register_track_source("sam2")
def _sam2_tracks(ctx: Context, mask_source: MaskSource, tracker: Sam2Tracker | None):
    """The wp masks of ``first_view`` (largest first, ``sam2.max_tracks``) propagated along the camera path."""
    from ccl_gs.masks.propagate import Sam2Error

    if tracker is None:
        try:
            tracker = Sam2Tracker.from_config(ctx.cfg.sam2, device=ctx.device)
        except Sam2Error as e:
            raise PreprocessError(str(e)) from e
    first = ctx.cfg.first_view
    order = video_order(ctx)
    lm = level_masks(ctx, mask_source, first)
    wp = lm.masks[lm.levels == 1]
    seeds = wp[select_first_masks(wp, ctx.cfg.sam2.max_tracks)]
    frames = [ctx.image_u8(v) for v in range(ctx.n_views)]
    yield from propagate_tracks(tracker, frames, seeds, order)


@register_track_source("precomputed")
def _precomputed_tracks(ctx: Context, mask_source: MaskSource, tracker: Sam2Tracker | None):
    """``<scene>/<tracks_dir>/<stem>.npz`` per view, resized (nearest) to the working size."""
    for view in range(ctx.n_views):
        path = _precomputed_file(ctx, ctx.cfg.tracks_dir, view, "--tracks-dir")
        try:
            z = load_npz(path, ("track_masks", "track_ids"))
        except ArtifactError as e:
            raise PreprocessError(str(e)) from e
        masks = z["track_masks"].astype(bool)
        if masks.ndim != 3 or z["track_ids"].shape != (masks.shape[0],):
            raise PreprocessError(f"{path}: expected track_masks [K, H, W] and track_ids [K]")
        _check_size(ctx, view, masks, path)
        yield view, _resize_masks(masks, ctx.sizes[view]), z["track_ids"].astype(np.int32)


def video_order(ctx: Context) -> list[int]:
    """The views in video order for SAM2 (greedy nearest camera centre from ``first_view``)."""
    if not 0 <= ctx.cfg.first_view < ctx.n_views:
        raise PreprocessError(f"--first-view {ctx.cfg.first_view} out of range for {ctx.n_views} views")
    return order_views(ctx.scene.camera_centers, start=ctx.cfg.first_view)


# ---------------------------------------------------------------------------
# Encoders


ENCODER_OPTIONS: dict[str, Callable[[Context], dict]] = {
    "open_clip": lambda ctx: {"model_name": ctx.cfg.clip_model, "pretrained": ctx.cfg.clip_pretrained},
    "oracle": lambda ctx: {
        **to_dict(ctx.cfg.oracle),
        "scene_root": str(ctx.cfg.oracle.scene_root or ctx.scene.root),
    },
}
"""Per encoder kind, the JSON options that rebuild it (recorded in the manifest's encoder spec)."""


def encoder_options(ctx: Context) -> dict:
    """The options recorded for (and used to build) the configured encoder."""
    fn = ENCODER_OPTIONS.get(ctx.cfg.encoder)
    return fn(ctx) if fn is not None else {}


def check_encoder(kind: str) -> None:
    """Refuse an encoder kind that is not registered (PreprocessError listing the known ones)."""
    load_plugins()
    if kind not in ENCODERS:
        raise PreprocessError(f"unknown --encoder '{kind}' (known: {', '.join(sorted(ENCODERS))})")


def build_stage_encoder(ctx: Context, batch_size: int) -> ImageTextEncoder:
    """The configured encoder on the context's device."""
    check_encoder(ctx.cfg.encoder)
    from ccl_gs.encoders.open_clip import EncoderLoadError

    try:
        return ENCODERS[ctx.cfg.encoder](**encoder_options(ctx), device=ctx.device, batch_size=batch_size)
    except EncoderLoadError as e:
        raise PreprocessError(str(e)) from e


# ---------------------------------------------------------------------------
# Manifest


def _checkpoints(ctx: Context, injected: set[str]) -> dict[str, Path]:
    """Model checkpoint files the configured sources load (missing ones raise with the flag)."""
    cfg = ctx.cfg
    out: dict[str, Path] = {}
    if cfg.mask_source == "sam" and "masks" not in injected:
        p = Path(cfg.sam.checkpoint)
        if not p.is_file():
            raise PreprocessError(f"SAM checkpoint not found: {p} (pass it with --sam-checkpoint)")
        out["sam"] = p
    if cfg.track_source == "sam2" and "tracks" not in injected:
        if cfg.sam2.checkpoint is None:
            raise PreprocessError("no SAM2 checkpoint given: pass --sam2-checkpoint <file> (e.g. sam2.1_hiera_large.pt)")
        p = Path(cfg.sam2.checkpoint)
        if not p.is_file():
            raise PreprocessError(f"SAM2 checkpoint not found: {p} (set --sam2-checkpoint)")
        out["sam2"] = p
    if cfg.encoder == "open_clip" and "encoder" not in injected:
        from ccl_gs.encoders.open_clip import EncoderLoadError

        try:
            p = resolve_pretrained(cfg.clip_model, cfg.clip_pretrained)
        except EncoderLoadError as e:
            raise PreprocessError(str(e)) from e
        if p is not None:
            out["clip"] = p
    return out


def _precomputed_hashes(ctx: Context, folder: str, flag: str) -> dict[str, str]:
    return {ctx.stems[v]: file_hash(_precomputed_file(ctx, folder, v, flag)) for v in range(ctx.n_views)}


def _models(ctx: Context) -> dict:
    cfg = ctx.cfg
    m: dict[str, Any] = {}
    if cfg.mask_source == "sam":
        m["sam"] = {"model_type": cfg.sam.model_type, "checkpoint": str(cfg.sam.checkpoint)}
    if cfg.track_source == "sam2":
        m["sam2"] = {"config": cfg.sam2.config, "checkpoint": str(cfg.sam2.checkpoint)}
    if cfg.encoder == "open_clip":
        m["clip"] = {"model": cfg.clip_model, "pretrained": cfg.clip_pretrained}
    return m


def _comparable_config(cfg: PreprocessConfig) -> dict:
    """The config as recorded; checkpoint paths are left out of comparisons (their hashes are inputs)."""
    d = to_dict(cfg)
    d["sam"].pop("checkpoint", None)
    d["sam2"].pop("checkpoint", None)
    d["oracle"].pop("scene_root", None)
    return d


def build_manifest(ctx: Context, injected: set[str] = frozenset()) -> Manifest:
    """The manifest of this config and these inputs (``extra`` gets the encoder once it is built).

    ``injected`` names components passed in already built (``"masks"``,
    ``"tracks"``, ``"encoder"``); their checkpoints are not hashed.
    """
    cfg = ctx.cfg
    inputs: dict[str, Any] = {"images": {s: file_hash(p) for s, p in zip(ctx.stems, ctx.scene.image_paths)}}
    if cfg.mask_source == "precomputed":
        inputs["precomputed_masks"] = _precomputed_hashes(ctx, cfg.masks_dir, "--masks-dir")
    if cfg.track_source == "precomputed":
        inputs["precomputed_tracks"] = _precomputed_hashes(ctx, cfg.tracks_dir, "--tracks-dir")
    inputs["checkpoints"] = {k: file_hash(p) for k, p in _checkpoints(ctx, set(injected)).items()}
    for k in sorted(injected):
        inputs["checkpoints"][k] = "injected"
    extra = {
        "images": list(ctx.stems),
        "image_info": [
            {"stem": s, "file": p.name, "height": h, "width": w, "orig_height": c.height, "orig_width": c.width}
            for s, p, (h, w), c in zip(ctx.stems, ctx.scene.image_paths, ctx.sizes, ctx.scene.cameras)
        ],
        "models": _models(ctx),
        "levels": ["sp", "wp"],
    }
    if cfg.track_source == "sam2":
        extra["video_order"] = video_order(ctx)
    return Manifest(kind=KIND, format_version=FORMAT_VERSION, config=_comparable_config(cfg), inputs=inputs, extra=extra)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def manifest_diff(old: Manifest, new: Manifest) -> list[str]:
    """Dotted keys (``config.*``, ``inputs.*``, ``format_version``) that differ."""
    a = _flatten({"format_version": old.format_version, "config": old.config, "inputs": old.inputs})
    b = _flatten({"format_version": new.format_version, "config": new.config, "inputs": new.inputs})
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


# ---------------------------------------------------------------------------
# Per-file checks


def _fp_array(fp: str) -> np.ndarray:
    return np.array(fp)


def check_image_file(path: Path, fingerprint: str | None, size: tuple[int, int], dim: int | None) -> dict[str, np.ndarray]:
    """Load ``<stem>.npz`` and check keys, dtypes, shapes and fingerprint; ArtifactError names the problem."""
    z = load_npz(path, IMAGE_KEYS)
    f, im, lab, lev = z["features"], z["index_maps"], z["labels"], z["levels"]
    if fingerprint is not None and str(z["fingerprint"]) != fingerprint:
        raise ArtifactError(f"{path} was made with another config / inputs")
    if f.dtype != np.float16 or f.ndim != 2 or (dim is not None and f.shape[1] != dim):
        raise ArtifactError(f"{path}: features {f.dtype} {f.shape}, expected float16 [M, {dim}]")
    M = f.shape[0]
    if lab.dtype != np.int32 or lab.shape != (M,) or lev.dtype != np.int8 or lev.shape != (M,):
        raise ArtifactError(f"{path}: labels {lab.dtype} {lab.shape} / levels {lev.dtype} {lev.shape} for M={M}")
    if im.dtype != np.int32 or im.shape != (2, *size):
        raise ArtifactError(f"{path}: index_maps {im.dtype} {im.shape}, expected int32 (2, {size[0]}, {size[1]})")
    if im.size and (im.min() < -1 or im.max() >= M):
        raise ArtifactError(f"{path}: index_maps reference rows outside [-1, {M})")
    if M and ((lev < 0).any() or (lev > 1).any()):
        raise ArtifactError(f"{path}: levels outside {{0, 1}}")
    if not np.isfinite(f).all():
        raise ArtifactError(f"{path}: non-finite features")
    return z


def pack_tracks(masks: np.ndarray) -> np.ndarray:
    """``[K, H, W]`` bool -> ``[K, ceil(H W / 8)]`` uint8."""
    return np.packbits(masks.reshape(masks.shape[0], -1), axis=1)


def unpack_tracks(bits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[K, ceil(H W / 8)]`` uint8 -> ``[K, H, W]`` bool."""
    H, W = size
    return np.unpackbits(bits, axis=1, count=H * W).reshape(bits.shape[0], H, W).astype(bool)


def read_tracks(
    path: Path, fingerprint: str | None, size: tuple[int, int], unpack: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load and check ``tracks/<stem>.npz`` -> ``(track_masks [K, H, W] bool, track_ids [K] int32)``.

    With ``unpack=False`` the masks are returned bit-packed (``[K, ceil(H W / 8)]`` uint8).
    """
    z = load_npz(path, TRACK_KEYS)
    if fingerprint is not None and str(z["fingerprint"]) != fingerprint:
        raise ArtifactError(f"{path} was made with another config / inputs")
    K = z["track_ids"].shape[0]
    nbytes = (size[0] * size[1] + 7) // 8
    if tuple(z["size"].tolist()) != tuple(size) or z["track_bits"].shape != (K, nbytes) or z["track_bits"].dtype != np.uint8:
        raise ArtifactError(f"{path}: tracks of the wrong shape for an image of {size}")
    bits = z["track_bits"]
    return (unpack_tracks(bits, size) if unpack else bits), z["track_ids"].astype(np.int32)


# ---------------------------------------------------------------------------
# The stage


@dataclass
class Components:
    """Already built models to use instead of building them from the config (tests, notebooks)."""

    mask_source: MaskSource | None = None
    """``(view, image uint8 [H, W, 3]) -> RawMasks``."""
    tracker: Sam2Tracker | None = None
    """Used by the ``"sam2"`` track source."""
    encoder: ImageTextEncoder | None = None

    def injected(self) -> set[str]:
        return {
            n
            for n, c in (("masks", self.mask_source), ("tracks", self.tracker), ("encoder", self.encoder))
            if c is not None
        }


@dataclass
class PreprocessResult:
    """What a run did."""

    out: Path
    manifest: Manifest
    shard: tuple[int, int]
    processed: list[str] = field(default_factory=list)
    """Stems written by this run."""
    skipped: list[str] = field(default_factory=list)
    """Stems of this shard already complete."""
    redone: dict[str, str] = field(default_factory=dict)
    """Stems whose existing file was rejected, with the reason."""
    tracks_computed: bool = False
    missing: list[str] = field(default_factory=list)
    """Stems of any shard still incomplete after this run."""

    @property
    def complete(self) -> bool:
        return not self.missing


def _progress(it, total: int, desc: str, enabled: bool):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit="img")


class Preprocessor:
    """Runs stage 1 on one scene into one artifact folder. See the module docs."""

    def __init__(
        self,
        scene_root: str | Path,
        out: str | Path,
        cfg: PreprocessConfig | None = None,
        options: RunOptions | None = None,
        components: Components | None = None,
    ) -> None:
        self.cfg = cfg or PreprocessConfig()
        self.opts = options or RunOptions()
        self.components = components or Components()
        self.out = check_out_dir(out)
        self.shard = parse_shard(self.opts.shard)
        if self.opts.steps not in ("all", "tracks", "images", "verify"):
            raise PreprocessError(f"--steps must be all, tracks, images or verify, got '{self.opts.steps}'")
        if self.cfg.mask_source not in MASK_SOURCES:
            raise PreprocessError(f"unknown --mask-source '{self.cfg.mask_source}' (known: {sorted(MASK_SOURCES)})")
        if self.cfg.track_source not in TRACK_SOURCES:
            raise PreprocessError(f"unknown --track-source '{self.cfg.track_source}' (known: {sorted(TRACK_SOURCES)})")
        if self.components.encoder is None:
            check_encoder(self.cfg.encoder)
        self.ctx = make_context(scene_root, self.cfg, self.opts.device)
        self._mask_source: MaskSource | None = self.components.mask_source
        self._encoder: ImageTextEncoder | None = self.components.encoder
        self.manifest = build_manifest(self.ctx, self.components.injected())
        self.fingerprint = self.manifest.fingerprint()

    # -- lazily built components
    @property
    def mask_source(self) -> MaskSource:
        if self._mask_source is None:
            self._mask_source = MASK_SOURCES[self.cfg.mask_source](self.ctx)
        return self._mask_source

    @property
    def encoder(self) -> ImageTextEncoder:
        if self._encoder is None:
            self._encoder = build_stage_encoder(self.ctx, self.opts.encode_batch)
        return self._encoder

    # -- paths
    def image_path(self, view: int) -> Path:
        return self.out / f"{self.ctx.stems[view]}.npz"

    def track_path(self, view: int) -> Path:
        return self.out / "tracks" / f"{self.ctx.stems[view]}.npz"

    def my_views(self) -> list[int]:
        i, n = self.shard
        return [v for v in range(self.ctx.n_views) if v % n == i]

    # -- manifest
    def _check_manifest(self) -> str:
        """Compare with the folder's manifest: ``"absent"``, ``"equal"`` or ``"replace"`` (with --overwrite).

        A different manifest without ``overwrite`` raises a one-line error naming the differing keys.
        """
        path = self.out / "manifest.json"
        if not path.exists():
            return "absent"
        try:
            old = Manifest.load(self.out)
        except ArtifactError as e:
            if self.opts.overwrite:
                return "replace"
            raise PreprocessError(f"{e}; pass --overwrite to redo the folder or choose a new --out") from e
        if old.kind != KIND:
            raise PreprocessError(f"{path} is a '{old.kind}' artifact, not preprocess: choose another --out")
        diff = manifest_diff(old, self.manifest)
        if not diff:
            if not isinstance(old.extra.get("encoder"), dict) or "dim" not in old.extra["encoder"]:
                return "replace"  # same config and inputs, but written without the encoder facts
            self.manifest.extra["encoder"] = old.extra["encoder"]
            return "equal"
        if self.opts.overwrite:
            return "replace"
        shown = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
        raise PreprocessError(
            f"{self.out} was preprocessed with a different config or inputs ({shown}); "
            "pass --overwrite to redo it or choose a new --out"
        )

    def _write_manifest(self) -> None:
        """Write the manifest with the encoder's spec (builds the encoder)."""
        enc = self.encoder
        self.manifest.extra["encoder"] = encoder_spec(self.cfg.encoder, enc, **encoder_options(self.ctx))
        self.out.mkdir(parents=True, exist_ok=True)
        self.manifest.save(self.out)

    # -- tracks
    def tracks_missing(self) -> list[int]:
        missing = []
        for v in range(self.ctx.n_views):
            try:
                read_tracks(self.track_path(v), self.fingerprint, self.ctx.sizes[v], unpack=False)
            except ArtifactError:
                missing.append(v)
        return missing

    def compute_tracks(self) -> None:
        """Run the track source over all views and write ``tracks/<stem>.npz`` for each."""
        src = TRACK_SOURCES[self.cfg.track_source]
        lazy_masks: MaskSource = lambda view, image: self.mask_source(view, image)  # noqa: E731 (built only if used)
        it = src(self.ctx, lazy_masks, self.components.tracker)
        written = set()
        for view, masks, ids in _progress(it, self.ctx.n_views, "tracks", self.opts.progress):
            H, W = self.ctx.sizes[view]
            if masks.shape[1:] != (H, W):
                raise PreprocessError(f"track source '{self.cfg.track_source}' gave {masks.shape[1:]} for view {view} of {(H, W)}")
            save_npz_atomic(
                self.track_path(view),
                track_bits=pack_tracks(masks),
                track_ids=np.asarray(ids, dtype=np.int32),
                size=np.array([H, W], dtype=np.int32),
                fingerprint=_fp_array(self.fingerprint),
            )
            written.add(view)
        if len(written) != self.ctx.n_views:
            raise PreprocessError(f"track source '{self.cfg.track_source}' covered {len(written)} of {self.ctx.n_views} views")

    def _ensure_tracks(self, result: PreprocessResult) -> None:
        if not self.tracks_missing():
            return
        if self.shard[0] != 0 and self.opts.steps != "tracks":
            deadline = time.monotonic() + self.opts.wait_for_tracks
            while time.monotonic() < deadline:
                time.sleep(min(10.0, max(0.1, deadline - time.monotonic())))
                if not self.tracks_missing():
                    return
            raise PreprocessError(
                f"tracks in {self.out / 'tracks'} are not complete: run shard 0 or --steps tracks first "
                "(or give --wait-for-tracks seconds)"
            )
        self.compute_tracks()
        result.tracks_computed = True

    # -- images
    def image_done(self, view: int) -> str | None:
        """None if ``<stem>.npz`` is complete and current, else the reason it is not."""
        path = self.image_path(view)
        if not path.exists():
            return "missing"
        dim = self.manifest.extra.get("encoder", {}).get("dim")
        try:
            check_image_file(path, self.fingerprint, self.ctx.sizes[view], dim)
        except ArtifactError as e:
            return str(e)
        return None

    def process_image(self, view: int) -> dict[str, np.ndarray]:
        """Compute the arrays of one image (nothing written)."""
        image = self.ctx.image(view)  # [H, W, 3] float32
        image_u8 = np.round(image * 255.0).astype(np.uint8)
        lm = level_masks(self.ctx, self.mask_source, view, image_u8)
        masks = np.ascontiguousarray(lm.masks.astype(bool))  # [M, H, W]
        feats = self.encoder.encode_masks(
            torch.from_numpy(image), torch.from_numpy(masks), view=view, batch_size=self.opts.encode_batch
        )  # [M, D]
        feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        tmasks, tids = read_tracks(self.track_path(view), self.fingerprint, self.ctx.sizes[view])
        labels = label_index_maps(lm.index_maps, masks.shape[0], tmasks, tids, self.cfg.sam2.iou_threshold)
        return {
            "features": feats.cpu().numpy().astype(np.float16),
            "index_maps": np.ascontiguousarray(lm.index_maps.astype(np.int32)),
            "labels": labels.astype(np.int32),
            "levels": lm.levels.astype(np.int8),
            "fingerprint": _fp_array(self.fingerprint),
        }

    def run(self, on_image_done: Callable[[str], None] | None = None) -> PreprocessResult:
        """Run the configured steps; ``on_image_done(stem)`` is called after each image is written."""
        result = PreprocessResult(out=self.out, manifest=self.manifest, shard=self.shard)
        steps = self.opts.steps
        state = self._check_manifest()
        if steps == "verify":
            if state != "equal":
                raise PreprocessError(f"{self.out}: no manifest.json of this config to verify")
            result.missing = self._incomplete()
            return result
        todo = []
        if steps in ("all", "images"):
            for v in self.my_views():
                reason = self.image_done(v)
                if reason is None:
                    result.skipped.append(self.ctx.stems[v])
                else:
                    todo.append(v)
                    if reason != "missing":
                        result.redone[self.ctx.stems[v]] = reason
        if state != "equal":
            self._write_manifest()
        if steps == "tracks" or todo:
            self._ensure_tracks(result)
        dim = int(self.manifest.extra["encoder"]["dim"])
        for v in _progress(todo, len(todo), f"images {self.shard[0]}/{self.shard[1]}", self.opts.progress):
            arrays = self.process_image(v)
            if arrays["features"].shape[1] != dim:
                raise PreprocessError(
                    f"encoder gives {arrays['features'].shape[1]}-d features, the manifest records {dim}-d"
                )
            save_npz_atomic(self.image_path(v), **arrays)
            result.processed.append(self.ctx.stems[v])
            if on_image_done is not None:
                on_image_done(self.ctx.stems[v])
        result.missing = self._incomplete()
        return result

    def _incomplete(self) -> list[str]:
        return [self.ctx.stems[v] for v in range(self.ctx.n_views) if self.image_done(v) is not None]


def run_preprocess(
    scene_root: str | Path,
    out: str | Path,
    cfg: PreprocessConfig | None = None,
    options: RunOptions | None = None,
    components: Components | None = None,
    on_image_done: Callable[[str], None] | None = None,
) -> PreprocessResult:
    """Run stage 1 on ``scene_root`` into ``out`` (see the module docs)."""
    return Preprocessor(scene_root, out, cfg, options, components).run(on_image_done)


# ---------------------------------------------------------------------------
# Reading the artifact


def verify_artifact(folder: str | Path) -> list[str]:
    """Stems listed in the manifest whose ``<stem>.npz`` is missing, corrupt or stale (empty = complete)."""
    folder = Path(folder)
    m = Manifest.load(folder, kind=KIND)
    fp = m.fingerprint()
    dim = m.extra.get("encoder", {}).get("dim")
    bad = []
    for info in m.extra.get("image_info", []):
        try:
            check_image_file(folder / f"{info['stem']}.npz", fp, (info["height"], info["width"]), dim)
        except ArtifactError:
            bad.append(info["stem"])
    return bad


def load_preprocessed(folder: str | Path) -> tuple[Manifest, dict[str, dict[str, np.ndarray]]]:
    """Read a complete preprocess artifact, validated, for the next stage.

    Returns:
        ``(manifest, {stem: {"features": [M, D] float16, "index_maps": [2, H, W] int32,
        "labels": [M] int32, "levels": [M] int8}})`` in the manifest's image order.
    Raises:
        ArtifactError: not a preprocess folder, format version unknown, or an
            image file missing / corrupt / stale / inconsistent (named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"preprocessed folder not found: {folder}")
    m = Manifest.load(folder, kind=KIND)
    if m.format_version != FORMAT_VERSION:
        raise ArtifactError(f"{folder}: preprocess format {m.format_version}, this code reads {FORMAT_VERSION}")
    enc = m.extra.get("encoder")
    if not isinstance(enc, dict) or "dim" not in enc or "name" not in enc:
        raise ArtifactError(f"{folder / 'manifest.json'}: no encoder name / dim recorded")
    fp = m.fingerprint()
    out: dict[str, dict[str, np.ndarray]] = {}
    for info in m.extra.get("image_info", []):
        z = check_image_file(folder / f"{info['stem']}.npz", fp, (info["height"], info["width"]), int(enc["dim"]))
        out[info["stem"]] = {k: z[k] for k in IMAGE_KEYS if k != "fingerprint"}
    if not out:
        raise ArtifactError(f"{folder}: the manifest lists no images")
    return m, out


__all__ = [
    "Components",
    "Context",
    "ENCODER_OPTIONS",
    "FORMAT_VERSION",
    "MASK_SOURCES",
    "PreprocessConfig",
    "PreprocessError",
    "PreprocessResult",
    "Preprocessor",
    "RunOptions",
    "TRACK_SOURCES",
    "build_manifest",
    "load_preprocessed",
    "make_context",
    "register_mask_source",
    "register_track_source",
    "run_preprocess",
    "target_size",
    "verify_artifact",
]

