"""Per-view training targets as a cached, resumable, sharded stage artifact (shared by LERF and 3D-OVS).

A *target stage* encodes every training view of a scene with a few encoders
of the one registry (:mod:`ccl_gs.encoders`) and stores the arrays of each
view in its own file::

    <out>/manifest.json        kind, format version, the comparable config, image hashes,
                               stems / views / size, the stage's geometry, the encoder specs
    <out>/views/<stem>.npz     the view's arrays + ``fingerprint`` (the manifest's)

What differs between stages is a :class:`TargetStage`: its manifest kind
and version, the encoders it needs (role -> registry kind and options), the
comparable form of its config, its geometry (``extra``) and how one view is
encoded. Everything else is here, once:

* a re-run with the same config and inputs skips the views already done
  (a killed run resumes; Ctrl-C stops after the current view with one line);
* ``shard = (i, n)`` encodes the views ``j`` with ``j mod n = i`` (shards run
  in any order or at once);
* a folder of another config, other images or other encoders is refused
  unless ``overwrite``; a folder of another kind is always refused;
* :func:`load_view_targets` refuses a folder that is missing, incomplete,
  of another format, computed for another scene setting, or stale.

The config object of a stage must have the scene fields ``data``,
``format``, ``factor`` and ``test_every`` (the RGB trainers' scene rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ccl_gs.interrupt import RESUME, Interrupted
from ccl_gs.io.artifacts import ArtifactError, Manifest, check_out_dir, file_hash, load_npz, parse_shard, save_npz_atomic

SCENE_KEYS = ("data", "format", "factor", "test_every")
"""Config fields that say which scene, resolution and split the targets are for."""


@dataclass
class TargetsRun:
    """How one run of a target stage goes about it (never changes the outputs)."""

    out: Path = field(default=Path("outputs/scene/targets"), metadata={"help": "Targets folder."})
    shard: str = field(default="0/1", metadata={"help": "i/n: compute the views j with j mod n = i."})
    overwrite: bool = field(default=False, metadata={"help": "Replace a folder of another config or inputs."})
    batch_size: int = field(default=64, metadata={"help": "Crops per encoder batch."})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda if available, else cpu)."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})


@dataclass(frozen=True)
class TargetStage:
    """What one kind of target artifact computes (see the module docstring)."""

    kind: str
    """Manifest kind (``"lerf_targets"``, ``"weakseg_targets"``)."""
    version: int
    """Format version of the folder."""
    title: str
    """Human name in messages (``"LERF targets"``)."""
    command: str
    """The command that computes them (named in messages)."""
    error: type[Exception]
    """Exception raised for every user-facing problem (one-line message)."""
    encoders: Callable[[Any], dict[str, tuple[str, dict[str, Any]]]]
    """``encoders(cfg)`` -> role (``"clip_encoder"``, ``"dino_encoder"``) -> (registry kind, options)."""
    comparable: Callable[[Any], dict[str, Any]]
    """``comparable(cfg)``: the config as recorded and compared (absolute data path, unused options dropped)."""
    geometry: Callable[[Any, int, int], dict[str, Any]]
    """``geometry(cfg, height, width)``: the stage's extra manifest entries (tile grids, sizes)."""
    encode: Callable[..., dict[str, np.ndarray]]
    """``encode(cfg, extra, item, encoders, run)``: the arrays of one view (``item`` from the scene dataset)."""
    batched: tuple[str, ...] = ("clip_encoder",)
    """Roles whose encoder is built with the run's ``batch_size`` (not recorded: it never changes the outputs)."""
    one_size: bool = True
    """Refuse scenes whose training views differ in size."""


# The option rules of the two-encoder (CLIP + DINO) target stages, whose configs share the fields
# ``data``, ``clip_encoder``, ``clip_model``, ``clip_pretrained``, ``dino_encoder``, ``oracle``, ``oracle_dino``.


def clip_options(cfg: Any) -> dict[str, Any]:
    """Options that rebuild a target stage's CLIP encoder (recorded in the manifest's spec)."""
    from ccl_gs.config import to_dict

    if cfg.clip_encoder == "open_clip":
        return {"model_name": cfg.clip_model, "pretrained": cfg.clip_pretrained}
    return {**to_dict(cfg.oracle), "scene_root": str(cfg.oracle.scene_root or cfg.data)}


def oracle_dino_options(cfg: Any) -> dict[str, Any]:
    """Options that rebuild the DINO stand-in of a synthetic scene."""
    from ccl_gs.config import to_dict

    return {**to_dict(cfg.oracle_dino), "scene_root": str(cfg.oracle.scene_root or cfg.data)}


def comparable_config(cfg: Any) -> dict[str, Any]:
    """A target stage's config as it decides reuse: the scene folder resolved, the oracles' options only
    when an oracle is used, and never the oracle's scene folder (a path, not a setting)."""
    from ccl_gs.config import to_dict

    d = to_dict(cfg)
    d["data"] = str(Path(cfg.data).resolve())
    d["oracle"].pop("scene_root", None)
    if cfg.clip_encoder != "oracle":
        d.pop("oracle")
    if cfg.dino_encoder != "oracle_dino":
        d.pop("oracle_dino")
    return d


def scene_views(cfg: Any, device: torch.device | str = "cpu"):
    """The scene and its training views at the run's resolution (the RGB trainers' rule)."""
    from ccl_gs.splat.trainer import load_run_scene, make_dataset

    scene = load_run_scene(cfg)
    return scene, make_dataset(cfg, scene, "train", device)


def build_manifest(stage: TargetStage, cfg: Any, scene, views) -> Manifest:
    """The expected manifest of ``cfg`` on these views (without the encoder specs, added when they are built)."""
    stems = [Path(scene.image_paths[i]).stem for i in views.indices]
    if len(set(stems)) != len(stems):
        raise stage.error(f"{cfg.data}: training images share file stems; targets are stored per stem")
    sizes = {(c.width, c.height) for c in views.cameras}
    if stage.one_size and len(sizes) != 1:
        raise stage.error(f"{cfg.data}: training views differ in size {sorted(sizes)}; {stage.title} need one size")
    (w, h), = sorted(sizes)[:1]
    inputs = {"images": {s: file_hash(scene.image_paths[i]) for s, i in zip(stems, views.indices)}}
    extra = {"stems": stems, "views": list(views.indices), "width": w, "height": h, **stage.geometry(cfg, h, w)}
    return Manifest(stage.kind, stage.version, stage.comparable(cfg), inputs, extra)


def view_file(out: Path, stem: str) -> Path:
    """The file of one view's arrays."""
    return Path(out) / "views" / f"{stem}.npz"


def view_done(path: Path, fingerprint: str) -> bool:
    """Whether ``path`` holds a complete view of the folder with ``fingerprint``."""
    if not path.is_file():
        return False
    try:
        return str(load_npz(path, ("fingerprint",))["fingerprint"]) == fingerprint
    except ArtifactError:
        return False


def compute_view_targets(stage: TargetStage, cfg: Any, run: TargetsRun,
                         encoders: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compute (or resume, or reuse) the targets of ``cfg`` into ``run.out``; returns a summary.

    ``encoders``: already built encoders by role (tests); the missing roles
    are built from the config through the encoder registry.

    Returns:
        ``{"out", "views", "computed", "missing", <role>: encoder name ...}``.
    Raises:
        stage.error: bad shard, a folder of another kind / config / encoder,
            an encoder that cannot be built (the message names the flag).
        ccl_gs.interrupt.Interrupted: Ctrl-C (the views done are kept).
    """
    from tqdm import tqdm

    from ccl_gs.encoders import build_encoder, encoder_spec
    from ccl_gs.encoders.open_clip import EncoderLoadError
    from ccl_gs.runtime import device_for_run

    shard = parse_shard(run.shard, stage.error)
    out = check_out_dir(run.out)
    device = device_for_run(run.device)
    scene, views = scene_views(cfg)
    man = build_manifest(stage, cfg, scene, views)
    old = None
    if (out / "manifest.json").is_file():
        old = Manifest.load(out)
        if old.kind != stage.kind:
            raise stage.error(f"{out} holds a '{old.kind}' artifact, not {stage.title}; choose another --out")
        if old.fingerprint() != man.fingerprint():
            if not run.overwrite:
                changed = sorted(k for k in set(old.config) | set(man.config) if old.config.get(k) != man.config.get(k))
                if old.inputs != man.inputs:
                    changed.append("images")
                raise stage.error(
                    f"{out} holds targets of another config or inputs ({', '.join(changed) or 'version'}); "
                    "pass --overwrite or choose another --out"
                )
            (out / "manifest.json").unlink()
            old = None
    fp = man.fingerprint()
    stems = man.extra["stems"]
    todo = [j for j in range(len(stems)) if j % shard[1] == shard[0] and not view_done(view_file(out, stems[j]), fp)]
    built = dict(encoders or {})
    wanted = stage.encoders(cfg)
    try:
        for role, (kind, options) in wanted.items():
            if role not in built:
                extra_opts = {"batch_size": run.batch_size} if role in stage.batched else {}
                built[role] = build_encoder(kind, **options, device=device, **extra_opts)
    except EncoderLoadError as e:
        raise stage.error(str(e)) from e
    for role, (kind, options) in wanted.items():
        man.extra[role] = encoder_spec(kind, built[role], **options)
    if old is not None:
        for role in wanted:
            if old.extra.get(role, {}).get("name") != man.extra[role]["name"]:
                raise stage.error(
                    f"{out} was computed with {role} '{old.extra.get(role, {}).get('name')}', this run builds "
                    f"'{man.extra[role]['name']}'; pass --overwrite or choose another --out"
                )
    else:
        out.mkdir(parents=True, exist_ok=True)
        man.save(out)
    try:
        for j in tqdm(todo, desc=f"{stage.title} {shard[0]}/{shard[1]}", disable=not run.progress, dynamic_ncols=True):
            with torch.no_grad():
                arrays = stage.encode(cfg, man.extra, views[j], built, run)
            for key, arr in arrays.items():
                if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                    raise stage.error(f"the encoders gave non-finite values for '{key}' of view {stems[j]}")
            save_npz_atomic(view_file(out, stems[j]), fingerprint=np.array(fp), **arrays)
    except KeyboardInterrupt:
        kept = sum(view_done(view_file(out, s), fp) for s in stems)
        raise Interrupted(f"interrupted: {kept} of {len(stems)} views kept in {out}; {RESUME}") from None
    missing = [s for s in stems if not view_done(view_file(out, s), fp)]
    summary = {"out": str(out), "views": len(stems), "computed": len(todo), "missing": missing}
    summary.update({role: man.extra[role]["name"] for role in wanted})
    return summary


def load_view_targets(stage: TargetStage, folder: str | Path, cfg: Any | None = None,
                      from_dict: Callable[[dict[str, Any]], Any] | None = None,
                      keys: tuple[str, ...] | None = None) -> tuple[Manifest, list[dict[str, np.ndarray]]]:
    """Load a complete, current targets folder: its manifest and the arrays of every view (manifest order).

    Args:
        cfg: the scene options of the run that will use them (fields
            :data:`SCENE_KEYS`); the folder must be for the same scene,
            resolution and split, and its images unchanged (needs ``from_dict``,
            which rebuilds the stage config from the manifest's record).
        keys: the arrays to read (default: all but the fingerprint).
    Raises:
        stage.error: missing, incomplete, stale, of another format or for
            another scene; the message names the folder and the fix.
    """
    folder = Path(folder)
    try:
        man = Manifest.load(folder, kind=stage.kind)
    except ArtifactError as e:
        raise stage.error(f"no {stage.title} at {folder} ({e}); run {stage.command} first") from None
    if man.format_version != stage.version:
        raise stage.error(f"{folder}: targets of format {man.format_version}, expected {stage.version}; recompute them")
    if cfg is not None:
        want = {"data": str(Path(cfg.data).resolve()), "format": cfg.format, "factor": cfg.factor,
                "test_every": cfg.test_every}
        diff = [k for k, v in want.items() if man.config.get(k) != v]
        if diff:
            raise stage.error(
                f"targets in {folder} were computed for another scene setting ({', '.join(diff)}: "
                f"{', '.join(str(man.config.get(k)) for k in diff)}); recompute them for this run"
            )
        if from_dict is not None:
            recorded = from_dict(man.config)
            scene, views = scene_views(recorded)
            now = build_manifest(stage, recorded, scene, views)
            if now.inputs != man.inputs:
                raise stage.error(f"targets in {folder} are stale: the scene's images changed; recompute them (--overwrite)")
    fp = man.fingerprint()
    stems = man.extra["stems"]
    files = [view_file(folder, s) for s in stems]
    missing = [s for s, f in zip(stems, files) if not view_done(f, fp)]
    if missing:
        raise stage.error(
            f"targets in {folder} are incomplete ({len(missing)} of {len(stems)} views missing, e.g. {missing[0]}); "
            f"re-run {stage.command} with the same options"
        )
    out = []
    for f in files:
        z = load_npz(f, keys) if keys is not None else load_npz(f)
        out.append({k: v for k, v in z.items() if k != "fingerprint"})
    return man, out


def targets_main(config_cls: type, compute: Callable[[Any, "TargetsRun"], dict[str, Any]], error: type[Exception],
                 label: str, prog: str, description: str, argv: list[str] | None = None) -> int:
    """The CLI of a CLIP + DINO target stage: parse ``config_cls`` and :class:`TargetsRun`, run ``compute``,
    print one summary line (or one error line, exit 2; Ctrl-C: the interrupt report, exit 130)."""
    import argparse
    import sys

    from ccl_gs.config import add_arguments, from_args
    from ccl_gs.interrupt import report as report_interrupt

    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser, config_cls)
    add_arguments(parser, TargetsRun)
    ns = vars(parser.parse_args(argv))
    run_keys = set(TargetsRun.__dataclass_fields__)
    run = from_args(TargetsRun, argparse.Namespace(**{k: v for k, v in ns.items() if k in run_keys}))
    cfg = from_args(config_cls, argparse.Namespace(**{k: v for k, v in ns.items() if k not in run_keys}))
    try:
        s = compute(cfg, run)
    except KeyboardInterrupt as e:
        return report_interrupt(e)
    except (error, ArtifactError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    state = "complete" if not s["missing"] else f"{len(s['missing'])} views left for other shards"
    print(f"{label}: {s['views']} views ({s['computed']} computed now), {state} -> {s['out']}  "
          f"[clip {s['clip']}, dino {s['dino']}]")
    return 0
