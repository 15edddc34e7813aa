"""Stage 1 sources, chosen by name: mask sources, track sources and encoders, over a prepared scene (:class:`Context`).

See :mod:`ccl_gs.preprocess` for the stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ccl_gs.config import to_dict
from ccl_gs.data.scene import Scene, load_image, load_scene
from ccl_gs.encoders import ENCODERS, ImageTextEncoder, load_plugins
from ccl_gs.io.artifacts import ArtifactError, load_npz
from ccl_gs.masks.merge import two_level_masks
from ccl_gs.masks.propagate import Sam2Tracker, order_views, propagate_tracks, select_first_masks
from ccl_gs.masks.types import LevelMasks, RawMasks
from ccl_gs.preprocess.config import PreprocessConfig, PreprocessError, target_size


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


def precomputed_file(ctx: Context, folder: str, view: int, flag: str) -> Path:
    """``<scene>/<folder>/<stem>.npz`` of ``view``; a missing file raises PreprocessError naming ``flag``."""
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
        path = precomputed_file(ctx, ctx.cfg.masks_dir, view, "--masks-dir")
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
        path = precomputed_file(ctx, ctx.cfg.tracks_dir, view, "--tracks-dir")
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
