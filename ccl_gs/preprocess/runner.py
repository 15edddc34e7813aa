"""Running stage 1: tracks for all views, then one file per image, resumable and sharded (:class:`Preprocessor`).

See :mod:`ccl_gs.preprocess` for resuming, changes and shards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ccl_gs.encoders import ImageTextEncoder, encoder_spec
from ccl_gs.interrupt import RESUME, Interrupted
from ccl_gs.io.artifacts import ArtifactError, Manifest, check_out_dir, save_npz_atomic
from ccl_gs.masks.propagate import Sam2Tracker, label_index_maps
from ccl_gs.preprocess.artifact import (
    KIND,
    build_manifest,
    check_image_file,
    fingerprint_array,
    manifest_diff,
    pack_tracks,
    read_tracks,
)
from ccl_gs.preprocess.config import PreprocessConfig, PreprocessError, RunOptions, parse_shard
from ccl_gs.preprocess.sources import (
    MASK_SOURCES,
    TRACK_SOURCES,
    MaskSource,
    build_stage_encoder,
    check_encoder,
    encoder_options,
    level_masks,
    make_context,
)


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
                fingerprint=fingerprint_array(self.fingerprint),
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
            "fingerprint": fingerprint_array(self.fingerprint),
        }

    def run(self, on_image_done: Callable[[str], None] | None = None) -> PreprocessResult:
        """Run the configured steps; ``on_image_done(stem)`` is called after each image is written.

        Raises:
            ccl_gs.interrupt.Interrupted: Ctrl-C; the images already written
                are kept (each file is written atomically) and a re-run
                resumes with the others.
        """
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
        tracks_ready = False
        try:
            if state != "equal":
                self._write_manifest()
            if steps == "tracks" or todo:
                self._ensure_tracks(result)
            tracks_ready = True
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
        except KeyboardInterrupt:
            raise Interrupted(self._interrupted_line(result, todo, tracks_ready)) from None
        result.missing = self._incomplete()
        return result

    def _incomplete(self) -> list[str]:
        return [self.ctx.stems[v] for v in range(self.ctx.n_views) if self.image_done(v) is not None]

    def _interrupted_line(self, result: PreprocessResult, todo: list[int], tracks_ready: bool) -> str:
        """The line of a run stopped by Ctrl-C: what ``out`` keeps (finished files) and how to go on.

        ``todo`` are the views this run set out to write, in order; those past
        ``result.processed`` are checked on disk (Ctrl-C may have come between
        writing an image and counting it).
        """
        i, n = self.shard
        of_shard = "" if n == 1 else f" of shard {i}/{n}"
        unsure = [v for v in todo[len(result.processed):] if self.image_path(v).exists()]
        done = len(result.skipped) + len(result.processed) + sum(self.image_done(v) is None for v in unsure)
        kept = f"{done} of {len(self.my_views())} images{of_shard} kept in {self.out}"
        if not tracks_ready:
            kept = f"tracks unfinished (computed again on the re-run), {kept}"
        return f"interrupted: {kept}; {RESUME}"


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
