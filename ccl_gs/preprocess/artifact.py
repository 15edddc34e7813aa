"""The stage 1 artifact: its manifest, the per-image and per-view track files, and reading it back.

See :mod:`ccl_gs.preprocess` for the layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ccl_gs.config import to_dict
from ccl_gs.encoders.open_clip import resolve_pretrained
from ccl_gs.io.artifacts import ArtifactError, Manifest, file_hash, load_npz
from ccl_gs.preprocess.config import PreprocessConfig, PreprocessError
from ccl_gs.preprocess.sources import Context, precomputed_file, video_order

KIND = "preprocess"
FORMAT_VERSION = 1
IMAGE_KEYS = ("features", "index_maps", "labels", "levels", "fingerprint")
TRACK_KEYS = ("track_bits", "track_ids", "size", "fingerprint")


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
    return {ctx.stems[v]: file_hash(precomputed_file(ctx, folder, v, flag)) for v in range(ctx.n_views)}


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


def fingerprint_array(fp: str) -> np.ndarray:
    """The manifest fingerprint as stored in every file of the artifact (a 0-d string array)."""
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
