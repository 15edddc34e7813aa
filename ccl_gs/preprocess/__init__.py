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

Modules
=======

* :mod:`~ccl_gs.preprocess.config`: :class:`PreprocessConfig`, :class:`RunOptions`, :class:`PreprocessError`;
* :mod:`~ccl_gs.preprocess.sources`: the scene :class:`Context` and the mask, track and encoder registries;
* :mod:`~ccl_gs.preprocess.artifact`: the manifest, the per-file formats and checks, reading the artifact back;
* :mod:`~ccl_gs.preprocess.runner`: :class:`Preprocessor` and :func:`run_preprocess`.

Every name is importable from ``ccl_gs.preprocess`` itself.
"""

from __future__ import annotations

from ccl_gs.preprocess.artifact import (
    FORMAT_VERSION,
    IMAGE_KEYS,
    KIND,
    TRACK_KEYS,
    build_manifest,
    check_image_file,
    load_preprocessed,
    manifest_diff,
    pack_tracks,
    read_tracks,
    unpack_tracks,
    verify_artifact,
)
from ccl_gs.preprocess.config import PreprocessConfig, PreprocessError, RunOptions, parse_shard, target_size
from ccl_gs.preprocess.runner import Components, PreprocessResult, Preprocessor, run_preprocess
from ccl_gs.preprocess.sources import (
    ENCODER_OPTIONS,
    MASK_SOURCES,
    TRACK_SOURCES,
    Context,
    MaskSource,
    TrackSource,
    build_stage_encoder,
    check_encoder,
    encoder_options,
    level_masks,
    make_context,
    register_mask_source,
    register_track_source,
    video_order,
)

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
