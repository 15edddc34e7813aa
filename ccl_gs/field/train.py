"""Stage 3: train the semantic Gaussian field against the targets of a stage-2 artifact.

The method follows from the artifact ``--supervision`` points to (see
:mod:`ccl_gs.field.methods`): a codebook (CCL-LGS: cross-entropy against
prototype index maps), an autoencoder (LangSplat-style: L1 against 3-d
latents) or the preprocess folder itself (raw features: cosine against the
mask CLIP features).

Two schedules, chosen by name in :data:`SCHEDULES`:

* ``"frozen"`` (LangSplat-style, the CPU default): geometry and colour come
  from a finished RGB run (``train.py``) and stay fixed; only the per-Gaussian
  feature and the decoder are optimized.
* ``"joint"`` (the paper's): colour and feature are trained together from
  scratch; the feature is one more per-Gaussian parameter that
  densification clones, splits and prunes with the rest.

Outputs (folder ``--out``): ``field.pt`` (versioned dict: Gaussians incl.
``features [N, d_f]``, the method's head - decoder weights and codebook
prototypes, or the autoencoder - and the encoder spec), ``point_cloud.ply``
(3DGS layout + ``f_lang_*`` + ``proto_<level>`` for the codebook method),
``config.json``, ``manifest.json`` (fingerprints of the RGB run and the
stage-2 artifact, so a stale input is detected), ``metrics.json``.

While training, ``ckpt/latest.pt`` (the trained parameters, optimizer states,
step and RNG states, with the manifest fingerprint they belong to) and
``ckpt/progress.json`` (step, seconds) are written every ``checkpoint_every``
steps and on Ctrl-C, and removed once the field is written; a killed or
interrupted run resumes from them, a checkpoint of another config or other
inputs is ignored.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ccl_gs.config import from_dict, to_dict
from ccl_gs.field.methods import Supervision, method_of
from ccl_gs.field.model import DecoderConfig
from ccl_gs.interrupt import checkpoint_line, save_on_interrupt
from ccl_gs.io.artifacts import ArtifactError, Manifest, atomic_path, check_out_dir, file_hash, read_json, write_json
from ccl_gs.splat.trainer import (
    RGBTrainConfig,
    Trainer,
    config_from_json,
    device_for_run,
    load_checkpoint,
    load_datasets,
)

log = logging.getLogger(__name__)

FIELD_VERSION = 4
"""Bumped when the field checkpoint layout changes (2: no-mask logit; 3: method heads; 4: baseline coverage logits)."""
CHECKPOINT_VERSION = 1
"""Bumped when the layout of the resumable training checkpoint (``ckpt/latest.pt``) changes."""
RUN_ONLY_OPTIONS = ("checkpoint_every",)
"""Options that never change the trained field: left out of the manifest, so changing one neither
retrains a finished field nor discards a checkpoint."""


@dataclass
class FieldConfig:
    """Options of semantic field training."""

    supervision: Path = field(
        default=Path("outputs/scene/codebook"),
        metadata={"help": "Stage-2 artifact; its kind picks the method: codebook folder (CCL-LGS), "
                          "autoencoder folder (LangSplat-style) or preprocess folder (raw features)."},
    )
    out: Path = field(default=Path("outputs/scene/field"), metadata={"help": "Output folder."})
    rgb_run: Path = field(
        default=Path("outputs/scene/rgb"), metadata={"help": "Finished RGB run (frozen schedule) or its config (joint)."}
    )
    schedule: str = field(default="frozen", metadata={"help": "frozen (features on fixed geometry) | joint (paper)."})
    iterations: int = field(
        default=1500, metadata={"help": "Feature optimization steps (joint: total steps); at least 1."}
    )
    lr_features: float = field(
        default=2.5e-3,
        metadata={"help": "Adam lr of the per-Gaussian features, frozen schedule (LangSplat's); the joint schedule "
                          "uses the RGB run's --lr.extra."},
    )
    lr_decoder: float = field(default=1e-3, metadata={"help": "Adam lr of the decoder (paper: 1e-3)."})
    semantic_weight: float = field(
        default=1.0, metadata={"help": "Weight of the method's language loss next to the RGB loss (joint schedule)."}
    )
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    max_pixels: int = field(
        default=4096, metadata={"help": "Raw / autoencoder methods: covered pixels per level per step in the loss."}
    )
    seed: int = field(default=0, metadata={"help": "Random seed."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})
    checkpoint_every: int = field(
        default=250, metadata={"help": "Save a resumable checkpoint every this many steps (and on Ctrl-C)."}
    )

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"--iterations must be >= 1, got {self.iterations}")
        if self.checkpoint_every < 1:
            raise ValueError(f"--checkpoint-every must be >= 1, got {self.checkpoint_every}")


def render_features(
    params, item: dict[str, Any], device: torch.device, backend: str | None = None, raster=None
) -> Tensor:
    """Rasterize the per-Gaussian features of one view: ``[H, W, d_f]`` (``raster``: the RGB run's
    :class:`~ccl_gs.splat.rasterize.RasterConfig`)."""
    from ccl_gs.splat.rasterize import raster_kwargs, rasterize

    colors, _, _ = rasterize(
        params["means"],
        F.normalize(params["quats"], dim=-1),
        torch.exp(params["scales"]),
        torch.sigmoid(params["opacities"]),
        params["features"],
        item["viewmat"][None].to(device),
        item["K"][None].to(device),
        int(item["width"]),
        int(item["height"]),
        backend=backend,
        **raster_kwargs(raster),
    )
    return colors[0]


class FieldTrainer:
    """Optimizes per-Gaussian features + decoder (frozen schedule) or everything (joint)."""

    def __init__(self, cfg: FieldConfig, rgb_cfg: RGBTrainConfig, supervision: Supervision):
        self.cfg = cfg
        self.supervision = supervision
        self.device = device_for_run()
        self.scene, self.train_set, self.test_set = load_datasets(rgb_cfg, self.device)
        torch.manual_seed(cfg.seed)
        self.head = supervision.make_head(cfg.decoder).to(self.device)
        if hasattr(self.head, "max_pixels"):
            self.head.max_pixels = cfg.max_pixels
        d_f = self.head.feature_dim
        self.rgb_cfg = rgb_cfg
        self.rgb: Trainer | None = None
        if cfg.schedule == "frozen":
            # geometry and colours come from the RGB checkpoint: no RGB trainer (and no starting points) is built;
            # the global seed is set as that trainer would have set it, so the run's random stream is unchanged
            torch.manual_seed(rgb_cfg.seed)
            ckpt = load_checkpoint(Path(cfg.rgb_run) / "ckpt" / "latest.pt")
            g = torch.Generator().manual_seed(cfg.seed)
            params = {k: v.to(self.device) for k, v in ckpt["params"].items()}
            N = params["means"].shape[0]
            params["features"] = (0.01 * torch.randn(N, d_f, generator=g)).to(self.device)
            self.params = torch.nn.ParameterDict(
                {k: torch.nn.Parameter(v, requires_grad=(k == "features")) for k, v in params.items()}
            )
            self.opt_features = torch.optim.Adam([self.params["features"]], lr=cfg.lr_features)
        else:
            self.rgb = Trainer(rgb_cfg, self.train_set, self.scene, extra_dims={"features": d_f})
            self.params = self.rgb.params
            self.opt_features = None
        trainable = [p for p in self.head.parameters() if p.requires_grad]
        self.opt_decoder = torch.optim.Adam(trainable, lr=cfg.lr_decoder) if trainable else None
        self.step_count = 0
        self._rng = np.random.default_rng(cfg.seed)
        self._order: list[int] = []

    def _stem(self, item: dict[str, Any]) -> str:
        return Path(self.scene.image_paths[int(item["index"])]).stem

    def _target(self, item: dict[str, Any]) -> dict[str, Tensor]:
        return self.supervision.target(self._stem(item), int(item["height"]), int(item["width"]), self.device)

    def feature_loss(self, item: dict[str, Any], params=None) -> Tensor:
        """The method's loss of the rendered features of ``item`` against its targets."""
        feats = render_features(params if params is not None else self.params, item, self.device,
                                raster=self.rgb_cfg.raster)
        return self.head.loss(feats, self._target(item))

    def _step_decoder(self) -> None:
        if self.opt_decoder is not None:
            self.opt_decoder.step()
            self.opt_decoder.zero_grad(set_to_none=True)

    def step(self) -> dict[str, float]:
        """One step; returns the semantic loss (and RGB stats in the joint schedule)."""
        if self.cfg.schedule == "joint":
            holder: dict[str, float] = {}

            def extra(item, meta):
                sem = self.feature_loss(item, self.rgb.params)
                holder["sem"] = float(sem.detach())
                return self.cfg.semantic_weight * sem

            stats = self.rgb.step(extra_loss=extra)
            self._step_decoder()
            self.params = self.rgb.params
            self.step_count = self.rgb.step_count
            return {**stats, "sem": holder.get("sem", float("nan"))}
        if not self._order:
            self._order = list(self._rng.permutation(len(self.train_set)))
        item = self.train_set[int(self._order.pop())]
        loss = self.feature_loss(item)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"semantic training diverged at step {self.step_count}: non-finite loss")
        loss.backward()
        self.opt_features.step()
        self.opt_features.zero_grad(set_to_none=True)
        self._step_decoder()
        self.step_count += 1
        return {"sem": float(loss.detach()), "n": int(self.params["means"].shape[0])}

    @torch.no_grad()
    def fit(self, dataset) -> float:
        """The head's fit measure over ``dataset`` (codebook: pixel label accuracy incl. "no mask";
        raw / autoencoder: mean cosine of prediction and target on covered pixels)."""
        total, count = 0.0, 0
        for i in range(len(dataset)):
            item = dataset[i]
            feats = render_features(self.params, item, self.device, raster=self.rgb_cfg.raster)
            s, n = self.head.fit(feats, self._target(item))
            total += s
            count += n
        return total / max(count, 1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "format_version": FIELD_VERSION,
            "kind": "semantic_field",
            "step": self.step_count,
            "config": to_dict(self.cfg),
            "rgb_config": to_dict(self.rgb_cfg),
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "method": self.head.method,
            "head": self.head.get_state(),
            "encoder": dict(self.supervision.encoder_spec),
            "sh_degree": self.rgb_cfg.sh_degree,
            "white_background": bool(self.scene.white_background),
        }

    # ------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        """What :meth:`restore` needs to continue training exactly as an uninterrupted run would.

        Frozen schedule: the features ``[N, d_f]`` (geometry and colour come
        from the RGB checkpoint, an input), their Adam state, the view order
        and the RNG states. Joint schedule: the whole RGB trainer state
        (:meth:`~ccl_gs.splat.trainer.Trainer.state_dict`, features included).
        Both: the head's weights and the decoder's Adam state.
        """
        state: dict[str, Any] = {
            "step": self.step_count,
            "head": {k: v.detach().cpu() for k, v in self.head.state_dict().items()},
            "opt_decoder": self.opt_decoder.state_dict() if self.opt_decoder is not None else None,
        }
        if self.cfg.schedule == "joint":
            state["rgb"] = self.rgb.state_dict()
        else:
            state.update(
                features=self.params["features"].detach().cpu(),
                opt_features=self.opt_features.state_dict(),
                order=list(self._order),
                rng=self._rng.bit_generator.state,
                torch_rng=torch.get_rng_state(),
            )
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`checkpoint_state` of the same config and inputs."""
        self.head.load_state_dict(state["head"])
        if self.opt_decoder is not None:
            self.opt_decoder.load_state_dict(state["opt_decoder"])
        if self.cfg.schedule == "joint":
            self.rgb.load_state_dict(state["rgb"])
            self.params = self.rgb.params
        else:
            with torch.no_grad():
                self.params["features"].copy_(state["features"].to(self.device))
            self.opt_features.load_state_dict(state["opt_features"])
            self._order = [int(i) for i in state["order"]]
            self._rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
        self.step_count = int(state["step"])


SCHEDULES = ("frozen", "joint")


def field_inputs(cfg: FieldConfig) -> dict[str, str]:
    """Fingerprints of the inputs (the manifest's ``inputs``): stale inputs force a redo."""
    method = method_of(cfg.supervision)
    out = {method.artifact_kind: Manifest.load(cfg.supervision).fingerprint()}
    if cfg.schedule == "frozen":
        out["rgb_ckpt"] = file_hash(Path(cfg.rgb_run) / "ckpt" / "latest.pt")
    return out


def check_current(field_dir: Path) -> None:
    """Refuse a trained field whose inputs changed or vanished since it was trained.

    Raises:
        ArtifactError: the stage-2 artifact or RGB checkpoint it was trained
            from is missing or differs from the fingerprint in its manifest.
    """
    field_dir = Path(field_dir)
    man = Manifest.load(field_dir, kind="semantic_field")
    cfg = from_dict(FieldConfig, read_json(field_dir / "config.json"))
    try:
        now = field_inputs(cfg)
    except (ArtifactError, OSError) as e:
        raise ArtifactError(f"field {field_dir} was trained from inputs that are gone ({e})") from e
    changed = sorted(k for k in set(now) | set(man.inputs) if now.get(k) != man.inputs.get(k))
    if changed:
        raise ArtifactError(
            f"field {field_dir} is stale: its input(s) {', '.join(changed)} changed since training; "
            f"re-run `python -m ccl_gs.field` (--supervision {cfg.supervision})"
        )


def field_manifest(cfg: FieldConfig) -> Manifest:
    """The manifest of a field trained with ``cfg`` from the current inputs (``extra`` is filled at the end)."""
    config = {k: v for k, v in to_dict(cfg).items() if k not in RUN_ONLY_OPTIONS}
    return Manifest(kind="semantic_field", format_version=FIELD_VERSION, config=config, inputs=field_inputs(cfg))


def save_checkpoint(folder: Path, trainer: FieldTrainer, fingerprint: str, seconds: float) -> None:
    """Write ``folder/latest.pt`` (the trainer's :meth:`~FieldTrainer.checkpoint_state`) and ``progress.json``, atomically."""
    state = {"format_version": CHECKPOINT_VERSION, "fingerprint": fingerprint, **trainer.checkpoint_state()}
    with atomic_path(folder / "latest.pt") as tmp:
        torch.save(state, tmp)
    write_json(folder / "progress.json", {"step": trainer.step_count, "seconds": seconds})


def resume_checkpoint(folder: Path, trainer: FieldTrainer, fingerprint: str) -> float:
    """Restore ``trainer`` from ``folder/latest.pt`` if it belongs to ``fingerprint``; returns the seconds trained so far.

    A missing, unreadable or foreign checkpoint leaves the trainer at step 0 (and returns 0).
    """
    path = folder / "latest.pt"
    if not path.is_file():
        return 0.0
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or foreign file: start over
        log.warning("ignoring unreadable checkpoint %s: %s", path, e)
        return 0.0
    if not isinstance(state, dict) or state.get("format_version") != CHECKPOINT_VERSION:
        log.warning("ignoring checkpoint %s of another format", path)
        return 0.0
    if state.get("fingerprint") != fingerprint:
        log.info("checkpoint %s belongs to another config or other inputs; starting over", path)
        return 0.0
    trainer.restore(state)
    prog = folder / "progress.json"
    return float(read_json(prog)["seconds"]) if prog.is_file() else 0.0


def run_field(cfg: FieldConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train the semantic field (or reuse a current one, or resume an interrupted one); returns metrics.

    Raises:
        ccl_gs.interrupt.Interrupted: Ctrl-C; the checkpoint of the last whole
            step was saved first, and the same call resumes from it.
    """
    from tqdm import tqdm

    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"--schedule must be one of {SCHEDULES}, got '{cfg.schedule}'")
    out = check_out_dir(cfg.out)
    rgb_cfg_path = Path(cfg.rgb_run) / "config.json"
    if not rgb_cfg_path.exists():
        raise ArtifactError(f"missing RGB run config {rgb_cfg_path}; run train.py first or fix --rgb-run")
    rgb_cfg = config_from_json(rgb_cfg_path)
    manifest = field_manifest(cfg)
    if (out / "manifest.json").exists() and (out / "field.pt").exists() and (out / "metrics.json").exists():
        old = Manifest.load(out)
        if old.fingerprint() == manifest.fingerprint():
            m = read_json(out / "metrics.json")
            m["reused"] = True
            return m
    supervision = method_of(cfg.supervision).supervision(Path(cfg.supervision))
    if (out / "manifest.json").exists():
        (out / "manifest.json").unlink()  # the folder is incomplete until the new manifest lands
    if cfg.schedule == "joint":
        rgb_cfg.iterations = cfg.iterations
        rgb_cfg.out = out / "joint_rgb"
    trainer = FieldTrainer(cfg, rgb_cfg, supervision)
    ckpt = out / "ckpt"
    fingerprint = manifest.fingerprint()
    seconds_before = resume_checkpoint(ckpt, trainer, fingerprint)
    resumed_from = trainer.step_count
    t0 = time.perf_counter()

    def save() -> None:
        save_checkpoint(ckpt, trainer, fingerprint, seconds_before + time.perf_counter() - t0)

    def save_interrupted() -> str:
        save()
        return checkpoint_line(trainer.step_count, ckpt)

    bar = tqdm(total=cfg.iterations, initial=trainer.step_count, disable=not cfg.progress,
               desc=f"train field ({cfg.schedule})", dynamic_ncols=True)
    try:
        with save_on_interrupt(save_interrupted) as guard:
            while trainer.step_count < cfg.iterations:
                stats = trainer.step()
                bar.update(1)
                if trainer.step_count % 10 == 0:
                    bar.set_postfix({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in stats.items()})
                if trainer.step_count % cfg.checkpoint_every == 0 or trainer.step_count == cfg.iterations:
                    save()
                if on_step is not None:
                    on_step(trainer.step_count)
                guard.check()
    finally:
        bar.close()
    seconds = seconds_before + time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg)
    if cfg.schedule == "joint":
        write_json(out / "joint_rgb" / "config.json", rgb_cfg)
    with atomic_path(out / "field.pt") as tmp:
        torch.save(trainer.state_dict(), tmp)
    from ccl_gs.field.export import export_field_ply

    export_field_ply(out / "point_cloud.ply", trainer.params, trainer.head)
    fit = trainer.head.fit_name
    metrics = {
        "method": trainer.head.method,
        "schedule": cfg.schedule,
        "iterations": trainer.step_count,
        "resumed_from_step": resumed_from,
        "seconds": seconds,
        "n_gaussians": int(trainer.params["means"].shape[0]),
        "fit_measure": fit,
        f"train_{fit}": trainer.fit(trainer.train_set),
        f"test_{fit}": trainer.fit(trainer.test_set) if len(trainer.test_set) else None,
    }
    write_json(out / "metrics.json", metrics)
    manifest.extra = {"encoder": trainer.state_dict()["encoder"]}
    manifest.save(out)
    for f in ("latest.pt", "progress.json"):
        (ckpt / f).unlink(missing_ok=True)
    if ckpt.is_dir() and not any(ckpt.iterdir()):
        ckpt.rmdir()
    return metrics
