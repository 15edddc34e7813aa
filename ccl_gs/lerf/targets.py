"""LERF's training targets as a stage artifact: the CLIP pyramid and the DINO map of every training view.

    python -m ccl_gs.lerf.targets --data SCENE --out DIR [--clip-encoder open_clip|oracle] [--dino-encoder dino|oracle_dino]

writes ``DIR/views/<stem>.npz`` per training view (``clip_<level>``:
``[rows + 1, cols + 1, D]`` float16 padded tile embeddings of each pyramid
level, ``dino``: ``[h, w, E]`` float16, ``fingerprint``) and
``DIR/manifest.json`` (kind ``lerf_targets``: the resolved config, the
hashes of the images, the encoders' specs, the tile grids). Files are
written atomically and a re-run skips the views already done with the same
fingerprint, so a killed run resumes; ``--shard i/n`` computes the views
``j`` with ``j mod n = i`` (run the shards in any order or at once, then any
run without ``--shard`` finds everything done). A folder of another config
or other inputs is refused unless ``--overwrite``.

Encoders come from the one registry (:mod:`ccl_gs.encoders`): CLIP through
open_clip (``--clip-model``, ``--clip-pretrained``) or the synthetic oracle
(on square tiles, no mask); DINO ViT-S/8 through timm (``--dino-checkpoint``)
or the synthetic DINO stand-in.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ccl_gs.config import add_arguments, from_args, to_dict
from ccl_gs.encoders.dino import DINO_MODEL
from ccl_gs.encoders.open_clip import DEFAULT_MODEL, DEFAULT_PRETRAINED, EncoderLoadError
from ccl_gs.encoders.oracle import OracleConfig, OracleDinoConfig
from ccl_gs.interrupt import RESUME, Interrupted
from ccl_gs.interrupt import report as report_interrupt
from ccl_gs.io.artifacts import parse_shard as _parse_shard
from ccl_gs.io.artifacts import ArtifactError, Manifest, check_out_dir, file_hash, load_npz, save_npz_atomic
from ccl_gs.lerf.pyramid import PyramidConfig, TileGrid, pad_grid, tile_grids

TARGETS_KIND = "lerf_targets"
TARGETS_VERSION = 1
CLIP_ENCODERS = ("open_clip", "oracle")
DINO_ENCODERS = ("dino", "oracle_dino")


@dataclass
class TargetsConfig:
    """What decides the content of a targets folder (recorded in its manifest)."""

    data: Path = field(default=Path("data/scene"), metadata={"help": "Scene folder."})
    format: str = field(default="auto", metadata={"help": "Scene format: auto | colmap | llff | nerfstudio | blender."})
    factor: int = field(default=1, metadata={"help": "Image downscale factor (as train.py)."})
    test_every: int = field(default=8, metadata={"help": "Hold out every n-th view (as train.py); targets cover the training views."})
    clip_encoder: str = field(default="open_clip", metadata={"help": "CLIP encoder: open_clip | oracle."})
    clip_model: str = field(default=DEFAULT_MODEL, metadata={"help": "open_clip model name."})
    clip_pretrained: str = field(default=DEFAULT_PRETRAINED, metadata={"help": "open_clip tag or local checkpoint file."})
    dino_encoder: str = field(default="dino", metadata={"help": "DINO encoder: dino | oracle_dino."})
    dino_model: str = field(default=DINO_MODEL, metadata={"help": "timm model name of DINO."})
    dino_checkpoint: str | None = field(default=None, metadata={"help": "Local DINO weights (dino_deitsmall8_pretrain.pth); default: timm's cache."})
    dino_short_side: int = field(default=500, metadata={"help": "DINO input: shorter image side in pixels (LERF: 500)."})
    oracle: OracleConfig = field(default_factory=OracleConfig)
    oracle_dino: OracleDinoConfig = field(default_factory=OracleDinoConfig)
    pyramid: PyramidConfig = field(default_factory=PyramidConfig)


@dataclass
class TargetsRun:
    """How one run goes about it (never changes the outputs)."""

    out: Path = field(default=Path("outputs/scene/lerf_targets"), metadata={"help": "Targets folder."})
    shard: str = field(default="0/1", metadata={"help": "i/n: compute the views j with j mod n = i."})
    overwrite: bool = field(default=False, metadata={"help": "Replace a folder of another config or inputs."})
    batch_size: int = field(default=64, metadata={"help": "Tiles per encoder batch."})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda if available, else cpu)."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})


class TargetsError(RuntimeError):
    """Targets cannot be computed or used; the message says what to do."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` (:func:`ccl_gs.io.artifacts.parse_shard`, raising :class:`TargetsError`)."""
    return _parse_shard(text, TargetsError)


def clip_options(cfg: TargetsConfig) -> dict[str, Any]:
    """Options that rebuild the CLIP encoder (recorded in the manifest's spec)."""
    if cfg.clip_encoder == "open_clip":
        return {"model_name": cfg.clip_model, "pretrained": cfg.clip_pretrained}
    return {**to_dict(cfg.oracle), "scene_root": str(cfg.oracle.scene_root or cfg.data)}


def dino_options(cfg: TargetsConfig) -> dict[str, Any]:
    """Options that rebuild the DINO encoder."""
    if cfg.dino_encoder == "dino":
        return {"model_name": cfg.dino_model, "checkpoint": cfg.dino_checkpoint, "short_side": cfg.dino_short_side}
    return {**to_dict(cfg.oracle_dino), "scene_root": str(cfg.oracle.scene_root or cfg.data)}


def validate(cfg: TargetsConfig) -> None:
    """Refuse bad option values before any work (one line each)."""
    if cfg.clip_encoder not in CLIP_ENCODERS:
        raise TargetsError(f"unknown --clip-encoder '{cfg.clip_encoder}' (known: {', '.join(CLIP_ENCODERS)})")
    if cfg.dino_encoder not in DINO_ENCODERS:
        raise TargetsError(f"unknown --dino-encoder '{cfg.dino_encoder}' (known: {', '.join(DINO_ENCODERS)})")
    if cfg.factor < 1:
        raise TargetsError(f"--factor must be >= 1, got {cfg.factor}")
    if cfg.test_every < 0:
        raise TargetsError(f"--test-every must be >= 0, got {cfg.test_every}")
    try:
        cfg.pyramid.validate()
    except ValueError as e:
        raise TargetsError(str(e)) from None


def _comparable(cfg: TargetsConfig) -> dict[str, Any]:
    d = to_dict(cfg)
    d["data"] = str(Path(cfg.data).resolve())
    d["oracle"].pop("scene_root", None)
    if cfg.clip_encoder != "oracle":
        d.pop("oracle")
    if cfg.dino_encoder != "oracle_dino":
        d.pop("oracle_dino")
    return d


def scene_views(cfg: TargetsConfig, device: torch.device | str = "cpu"):
    """The scene and its training views at the run's resolution (the RGB trainers' rule)."""
    from ccl_gs.splat.trainer import load_run_scene, make_dataset

    scene = load_run_scene(cfg)
    return scene, make_dataset(cfg, scene, "train", device)


def build_manifest(cfg: TargetsConfig, scene, views) -> Manifest:
    """The expected manifest of ``cfg`` on these views (without the encoder specs, added when they are built)."""
    stems = [Path(scene.image_paths[i]).stem for i in views.indices]
    if len(set(stems)) != len(stems):
        raise TargetsError(f"{cfg.data}: training images share file stems; targets are stored per stem")
    sizes = {(c.width, c.height) for c in views.cameras}
    if len(sizes) != 1:
        raise TargetsError(f"{cfg.data}: training views differ in size {sorted(sizes)}; LERF's pyramid needs one size")
    (w, h), = sizes
    grids = tile_grids(h, w, cfg.pyramid)
    inputs = {"images": {s: file_hash(scene.image_paths[i]) for s, i in zip(stems, views.indices)}}
    extra = {"stems": stems, "views": list(views.indices), "width": w, "height": h,
             "grids": [g.__dict__ for g in grids]}
    return Manifest(TARGETS_KIND, TARGETS_VERSION, _comparable(cfg), inputs, extra)


@dataclass
class Targets:
    """Loaded targets of every training view, stacked (what LERF training reads)."""

    manifest: Manifest
    grids: list[TileGrid]
    clip: list[Tensor]
    """Per level ``[V, rows + 1, cols + 1, D]`` float16."""
    dino: Tensor
    """``[V, h, w, E]`` float16."""
    views: list[int]
    """Scene view index of each row."""

    @property
    def clip_spec(self) -> dict[str, Any]:
        return self.manifest.extra["clip_encoder"]

    @property
    def dino_spec(self) -> dict[str, Any]:
        return self.manifest.extra["dino_encoder"]


def _view_file(out: Path, stem: str) -> Path:
    return out / "views" / f"{stem}.npz"


def _done(path: Path, fingerprint: str) -> bool:
    if not path.is_file():
        return False
    try:
        return str(load_npz(path, ("fingerprint",))["fingerprint"]) == fingerprint
    except ArtifactError:
        return False


def compute_targets(cfg: TargetsConfig, run: TargetsRun, clip_encoder=None, dino_encoder=None) -> dict[str, Any]:
    """Compute (or resume, or reuse) the targets of ``cfg`` into ``run.out``; returns a summary.

    ``clip_encoder`` / ``dino_encoder``: already built encoders (tests);
    otherwise built from the config through the encoder registry.
    """

    from ccl_gs.encoders import build_encoder, encoder_spec
    from ccl_gs.runtime import device_for_run

    validate(cfg)
    shard = parse_shard(run.shard)
    out = check_out_dir(run.out)
    device = device_for_run(run.device)
    scene, views = scene_views(cfg)
    man = build_manifest(cfg, scene, views)
    old = None
    if (out / "manifest.json").is_file():
        old = Manifest.load(out)
        if old.kind != TARGETS_KIND:
            raise TargetsError(f"{out} holds a '{old.kind}' artifact, not LERF targets; choose another --out")
        if old.fingerprint() != man.fingerprint():
            if not run.overwrite:
                changed = sorted(k for k in set(old.config) | set(man.config) if old.config.get(k) != man.config.get(k))
                if old.inputs != man.inputs:
                    changed.append("images")
                raise TargetsError(
                    f"{out} holds targets of another config or inputs ({', '.join(changed) or 'version'}); "
                    "pass --overwrite or choose another --out"
                )
            (out / "manifest.json").unlink()
            old = None
    fp = man.fingerprint()
    stems = man.extra["stems"]
    todo = [j for j in range(len(stems)) if j % shard[1] == shard[0] and not _done(_view_file(out, stems[j]), fp)]
    try:
        if clip_encoder is None:
            clip_encoder = build_encoder(cfg.clip_encoder, **clip_options(cfg), device=device, batch_size=run.batch_size)
        if dino_encoder is None:
            dino_encoder = build_encoder(cfg.dino_encoder, **dino_options(cfg), device=device)
    except EncoderLoadError as e:
        raise TargetsError(str(e)) from e
    man.extra["clip_encoder"] = encoder_spec(cfg.clip_encoder, clip_encoder, **clip_options(cfg))
    man.extra["dino_encoder"] = encoder_spec(cfg.dino_encoder, dino_encoder, **dino_options(cfg))
    if old is not None:
        for key in ("clip_encoder", "dino_encoder"):
            if old.extra.get(key, {}).get("name") != man.extra[key]["name"]:
                raise TargetsError(
                    f"{out} was computed with {key} '{old.extra.get(key, {}).get('name')}', this run builds "
                    f"'{man.extra[key]['name']}'; pass --overwrite or choose another --out"
                )
    else:
        out.mkdir(parents=True, exist_ok=True)
        man.save(out)
    grids = [TileGrid(**g) for g in man.extra["grids"]]
    try:
        _encode_views(todo, views, stems, grids, clip_encoder, dino_encoder, out, fp, run, shard)
    except KeyboardInterrupt:
        kept = sum(_done(_view_file(out, s), fp) for s in stems)
        raise Interrupted(f"interrupted: {kept} of {len(stems)} views kept in {out}; {RESUME}") from None
    missing = [s for s in stems if not _done(_view_file(out, s), fp)]
    return {"out": str(out), "views": len(stems), "computed": len(todo), "missing": missing,
            "clip": man.extra["clip_encoder"]["name"], "dino": man.extra["dino_encoder"]["name"]}


def _encode_views(todo: list[int], views, stems: list[str], grids: list[TileGrid], clip_encoder, dino_encoder,
                  out: Path, fp: str, run: TargetsRun, shard: tuple[int, int]) -> None:
    """Encode the pyramid and DINO map of each view in ``todo`` into its file (atomic, one file per view)."""
    from tqdm import tqdm

    for j in tqdm(todo, desc=f"lerf targets {shard[0]}/{shard[1]}", disable=not run.progress, dynamic_ncols=True):
        item = views[j]
        image = item["image"]
        vi = int(item["index"])
        arrays: dict[str, np.ndarray] = {}
        with torch.no_grad():
            for lv, g in enumerate(grids):
                emb = clip_encoder.encode_tiles(image, g.boxes(), view=vi, batch_size=run.batch_size)  # [rows * cols, D]
                if not torch.isfinite(emb).all():
                    raise TargetsError(f"CLIP encoder gave non-finite embeddings on {stems[j]} level {lv}")
                arrays[f"clip_{lv}"] = pad_grid(emb.view(g.rows, g.cols, -1)).half().numpy()
            dino = dino_encoder.encode_image(image, view=vi)
            if not torch.isfinite(dino).all():
                raise TargetsError(f"DINO encoder gave non-finite features on {stems[j]}")
            arrays["dino"] = dino.half().numpy()
        save_npz_atomic(_view_file(out, stems[j]), fingerprint=np.array(fp), **arrays)


def load_targets(folder: str | Path, cfg: TargetsConfig | None = None) -> Targets:
    """Load a complete, current targets folder.

    ``cfg``: the scene options of the run that will use them; the folder must
    have been computed for the same scene, resolution and split.

    Raises:
        TargetsError: missing, incomplete, stale or for another scene; the
            message names the folder and the command that fixes it.
    """
    folder = Path(folder)
    try:
        man = Manifest.load(folder, kind=TARGETS_KIND)
    except ArtifactError as e:
        raise TargetsError(f"no LERF targets at {folder} ({e}); run python -m ccl_gs.lerf.targets first") from None
    if man.format_version != TARGETS_VERSION:
        raise TargetsError(f"{folder}: targets of format {man.format_version}, expected {TARGETS_VERSION}; recompute them")
    if cfg is not None:
        want = {"data": str(Path(cfg.data).resolve()), "format": cfg.format, "factor": cfg.factor, "test_every": cfg.test_every}
        diff = [k for k, v in want.items() if man.config.get(k) != v]
        if diff:
            raise TargetsError(
                f"targets in {folder} were computed for another scene setting ({', '.join(diff)}: "
                f"{', '.join(str(man.config.get(k)) for k in diff)}); recompute them for this run"
            )
        scene, views = scene_views(from_dict_targets(man.config))
        now = build_manifest(from_dict_targets(man.config), scene, views)
        if now.inputs != man.inputs:
            raise TargetsError(f"targets in {folder} are stale: the scene's images changed; recompute them (--overwrite)")
    fp = man.fingerprint()
    stems = man.extra["stems"]
    files = [_view_file(folder, s) for s in stems]
    missing = [s for s, f in zip(stems, files) if not _done(f, fp)]
    if missing:
        raise TargetsError(
            f"targets in {folder} are incomplete ({len(missing)} of {len(stems)} views missing, e.g. {missing[0]}); "
            "re-run python -m ccl_gs.lerf.targets with the same options"
        )
    grids = [TileGrid(**g) for g in man.extra["grids"]]
    clip: list[list[Tensor]] = [[] for _ in grids]
    dino = []
    for f in files:
        z = load_npz(f, tuple(f"clip_{lv}" for lv in range(len(grids))) + ("dino",))
        for lv in range(len(grids)):
            clip[lv].append(torch.from_numpy(z[f"clip_{lv}"]))
        dino.append(torch.from_numpy(z["dino"]))
    return Targets(man, grids, [torch.stack(c) for c in clip], torch.stack(dino), list(man.extra["views"]))


def from_dict_targets(d: dict[str, Any]) -> TargetsConfig:
    """A :class:`TargetsConfig` from its recorded (comparable) form."""
    from ccl_gs.config import from_dict

    return from_dict(TargetsConfig, d, strict=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ccl_gs.lerf.targets", description=__doc__.split("\n")[0])
    add_arguments(parser, TargetsConfig)
    add_arguments(parser, TargetsRun)
    ns = vars(parser.parse_args(argv))
    run_keys = {f for f in TargetsRun.__dataclass_fields__}
    run = from_args(TargetsRun, argparse.Namespace(**{k: v for k, v in ns.items() if k in run_keys}))
    cfg = from_args(TargetsConfig, argparse.Namespace(**{k: v for k, v in ns.items() if k not in run_keys}))
    try:
        s = compute_targets(cfg, run)
    except KeyboardInterrupt as e:
        return report_interrupt(e)
    except (TargetsError, ArtifactError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    state = "complete" if not s["missing"] else f"{len(s['missing'])} views left for other shards"
    print(f"lerf targets: {s['views']} views ({s['computed']} computed now), {state} -> {s['out']}  "
          f"[clip {s['clip']}, dino {s['dino']}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
