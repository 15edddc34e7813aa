"""Training a LERF run: presets, scene normalization, the optimization loop, checkpoints.

:func:`run` is the whole job behind ``python -m ccl_gs.lerf``: compute the
targets when the run has none, resume or start, train with a progress bar,
evaluate held-out RGB, write ``lerf.pt`` (the trained model and what
queries need), ``metrics.json``, ``config.json`` and ``manifest.json``.
A killed run resumes from ``ckpt/latest.pt``; Ctrl-C saves a checkpoint
and says how to resume.

Optimizers (``lerf_config.py``): proposal nets Adam 1e-2 (constant); the
NeRF field Adam (RAdam in ``lerf-lite``) 1e-2 -> 1e-3 over 30k steps; the
language field RAdam 1e-2 (eps 1e-15, weight decay 1e-9) -> 1e-3 over 4000
steps (7000 in ``lerf-lite``); exponential decay, no warm-up.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ccl_gs.config import changed_options, from_dict, to_dict
from ccl_gs.interrupt import checkpoint_line, save_on_interrupt
from ccl_gs.io.artifacts import ArtifactError, Manifest, atomic_path, check_out_dir, read_json, write_json
from ccl_gs.lerf.fields import LanguageFieldConfig
from ccl_gs.lerf.model import LerfModel, LerfModelConfig, NerfactoConfig, RayBatch
from ccl_gs.lerf.pyramid import dino_lookup, random_scale_targets
from ccl_gs.lerf.sampling import camera_rays
from ccl_gs.lerf.targets import Targets, TargetsConfig, TargetsRun, compute_targets, load_targets
from ccl_gs.splat.trainer import focus_point

LERF_VERSION = 1
"""Format of ``lerf.pt`` and of the checkpoints."""


@dataclass
class OptimConfig:
    """Optimizers and schedules (``lerf_config.py``)."""

    fields_optimizer: str = field(default="adam", metadata={"help": "NeRF field optimizer: adam | radam."})
    fields_lr: float = field(default=1e-2, metadata={"help": "NeRF field learning rate."})
    fields_lr_final: float = field(default=1e-3, metadata={"help": "NeRF field final learning rate."})
    fields_decay_steps: int = field(default=30000, metadata={"help": "Steps of the NeRF field decay."})
    proposal_lr: float = field(default=1e-2, metadata={"help": "Proposal nets learning rate (constant)."})
    lerf_lr: float = field(default=1e-2, metadata={"help": "Language field learning rate (RAdam)."})
    lerf_lr_final: float = field(default=1e-3, metadata={"help": "Language field final learning rate."})
    lerf_decay_steps: int = field(default=4000, metadata={"help": "Steps of the language field decay."})
    lerf_weight_decay: float = field(default=1e-9, metadata={"help": "Language field weight decay."})
    eps: float = field(default=1e-15, metadata={"help": "Adam / RAdam epsilon."})


@dataclass
class LerfTrainConfig:
    """Options of ``python -m ccl_gs.lerf`` (a preset fills the defaults, flags override)."""

    data: Path = field(default=Path("data/scene"), metadata={"help": "Scene folder."})
    out: Path = field(default=Path("outputs/scene/lerf"), metadata={"help": "Output folder of the run."})
    format: str = field(default="auto", metadata={"help": "Scene format: auto | colmap | llff | nerfstudio | blender."})
    factor: int = field(default=1, metadata={"help": "Image downscale factor (as train.py)."})
    test_every: int = field(default=8, metadata={"help": "Hold out every n-th view (0 = none)."})
    preset: str = field(default="cpu", metadata={"help": "Preset the defaults come from: lerf | lerf-lite | cpu."})
    targets: Path | None = field(default=None, metadata={"help": "Targets folder (python -m ccl_gs.lerf.targets); default: <out>/targets, computed when missing."})
    target: TargetsConfig = field(default_factory=TargetsConfig)
    iterations: int = field(default=30000, metadata={"help": "Training steps."})
    rays_per_batch: int = field(default=4096, metadata={"help": "Rays per step."})
    model: LerfModelConfig = field(default_factory=LerfModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval_chunk: int = field(default=4096, metadata={"help": "Rays per chunk when rendering whole images."})
    checkpoint_every: int = field(default=500, metadata={"help": "Save a resumable checkpoint every this many steps."})
    max_seconds: float = field(default=0.0, metadata={"help": "Stop training after this many seconds (0 = no limit)."})
    threads: int = field(default=0, metadata={"help": "CPU threads of PyTorch (0 = all cores; the NeRF runs alone)."})
    save_renders: bool = field(default=True, metadata={"help": "Write held-out renders as PNG."})
    seed: int = field(default=0, metadata={"help": "Random seed."})
    overwrite: bool = field(default=False, metadata={"help": "Discard an existing run in --out with a different config."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})


def _preset_lerf() -> LerfTrainConfig:
    return LerfTrainConfig(preset="lerf")


def _preset_lite() -> LerfTrainConfig:
    cfg = LerfTrainConfig(preset="lerf-lite")
    cfg.model.language = LanguageFieldConfig(grid_levels=[16], grid_min_res=[16], grid_max_res=[512])
    cfg.model.lerf_samples = 12
    cfg.optim.fields_optimizer = "radam"
    cfg.optim.lerf_decay_steps = 7000
    return cfg


def _preset_cpu() -> LerfTrainConfig:
    """Small sizes for CPU, chosen by measurement (``bench/bench_lerf.py``)."""
    cfg = LerfTrainConfig(preset="cpu", iterations=1500, rays_per_batch=1024, checkpoint_every=250)
    cfg.model.nerf = NerfactoConfig(levels=12, max_res=512, log2_table=16, proposal_samples=[64, 32],
                                    proposal_max_res=[64, 128], proposal_log2_table=14, nerf_samples=24,
                                    proposal_warmup=1000, anneal_steps=500)
    cfg.model.language = LanguageFieldConfig(grid_levels=[8], grid_min_res=[16], grid_max_res=[128], log2_table=15,
                                             clip_hidden=128, clip_layers=2, dino_hidden=128)
    cfg.model.lerf_samples = 8
    cfg.optim.fields_decay_steps = 1500
    cfg.optim.lerf_decay_steps = 1500
    return cfg


PRESETS: dict[str, Callable[[], LerfTrainConfig]] = {"lerf": _preset_lerf, "lerf-lite": _preset_lite, "cpu": _preset_cpu}
"""Named configs: the published ``lerf`` and ``lerf-lite`` sizes (for CUDA) and a small ``cpu`` one."""


def validate(cfg: LerfTrainConfig) -> None:
    """Refuse bad option values before any work (one line each)."""
    checks = [
        (cfg.preset in PRESETS, f"unknown --preset '{cfg.preset}' (known: {', '.join(PRESETS)})"),
        (cfg.iterations >= 1, f"--iterations must be >= 1, got {cfg.iterations}"),
        (cfg.rays_per_batch >= 1, f"--rays-per-batch must be >= 1, got {cfg.rays_per_batch}"),
        (cfg.factor >= 1, f"--factor must be >= 1, got {cfg.factor}"),
        (cfg.test_every >= 0, f"--test-every must be >= 0, got {cfg.test_every}"),
        (cfg.checkpoint_every >= 1, f"--checkpoint-every must be >= 1, got {cfg.checkpoint_every}"),
        (cfg.optim.fields_optimizer in ("adam", "radam"), f"--optim.fields-optimizer must be adam or radam, got '{cfg.optim.fields_optimizer}'"),
        (cfg.model.lerf_samples >= 1, f"--model.lerf-samples must be >= 1, got {cfg.model.lerf_samples}"),
        (0 < cfg.model.nerf.near < cfg.model.nerf.far, "--model.nerf.near must be > 0 and below --model.nerf.far"),
        (cfg.eval_chunk >= 1, f"--eval-chunk must be >= 1, got {cfg.eval_chunk}"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)


# ---------------------------------------------------------------------------------------- scene
@dataclass
class Normalization:
    """World -> scene-normalized coordinates: ``(p - center) * scale``."""

    center: list[float]
    scale: float

    def c2w(self, c2w: np.ndarray) -> np.ndarray:
        """``[..., 4, 4]`` camera-to-world in normalized coordinates (rotation columns made unit)."""
        out = np.array(c2w, dtype=np.float64, copy=True)
        R = out[..., :3, :3]
        out[..., :3, :3] = R / np.linalg.norm(R, axis=-2, keepdims=True)
        out[..., :3, 3] = (out[..., :3, 3] - np.asarray(self.center)) * self.scale
        return out

    def to_world(self, x: np.ndarray) -> np.ndarray:
        """Normalized points ``[..., 3]`` -> world."""
        return x / self.scale + np.asarray(self.center)


def scene_normalization(scene) -> Normalization:
    """Centre the scene on what the cameras look at and put the cameras at radius <= 1 (nerfstudio's scale rule).

    The centre is the point closest to all optical axes; when the axes are
    nearly parallel (forward-facing captures) it is the median of the
    sparse points, or a point at the median depth bound in front of the
    cameras, or the camera centroid.
    """
    o = scene.camera_centers
    d = scene.camtoworlds[:, :3, 2]
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    center = focus_point(scene)
    if center is None and scene.points is not None and len(scene.points) > 0:
        center = np.median(np.asarray(scene.points, np.float64), axis=0)
    elif center is None and scene.bounds is not None:
        center = o.mean(0) + d.mean(0) * float(np.median(scene.bounds.mean(1)))
    elif center is None:
        center = o.mean(0)
    radius = float(np.linalg.norm(o - center, axis=1).max())
    return Normalization([float(v) for v in center], 1.0 / radius if radius > 0 else 1.0)


@dataclass
class TrainImages:
    """Training views stacked for ray sampling."""

    images: Tensor  # [V, H, W, 3]
    c2w: Tensor  # [V, 4, 4] normalized
    Ks: Tensor  # [V, 3, 3]
    indices: list[int]

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])


def stack_views(dataset, norm: Normalization) -> TrainImages:
    """Stack the views of a dataset (one size) with normalized camera-to-world matrices."""
    st = dataset.stacked()
    c2w = norm.c2w(np.linalg.inv(st["viewmats"].cpu().numpy().astype(np.float64)))
    return TrainImages(st["images"].cpu(), torch.from_numpy(c2w).float(), st["Ks"].cpu(), list(dataset.indices))


def ray_batch(c2w: Tensor, K: Tensor, rows: Tensor, cols: Tensor, height: int) -> RayBatch:
    """Rays of pixels with the language scale factor ``H / fy`` of each ray's camera."""
    o, d = camera_rays(c2w, K, rows, cols)
    fy = K[..., 1, 1] if K.ndim == 3 else K[1, 1].expand(rows.shape[0])
    return RayBatch(o, d, height / fy)


# ----------------------------------------------------------------------------------- optimization
def _decay(lr0: float, lr1: float, steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        u = min(max(step / max(steps, 1), 0.0), 1.0)
        return math.exp((1 - u) * math.log(lr0) + u * math.log(lr1)) / lr0

    return factor


def make_optimizers(model: LerfModel, cfg: OptimConfig) -> tuple[dict[str, torch.optim.Optimizer], dict[str, Any]]:
    """The three parameter groups with their optimizers and schedulers."""
    field_opt = torch.optim.RAdam if cfg.fields_optimizer == "radam" else torch.optim.Adam
    opts = {
        "proposal": torch.optim.Adam(model.proposals.parameters(), lr=cfg.proposal_lr, eps=cfg.eps),
        "fields": field_opt(model.nerf.parameters(), lr=cfg.fields_lr, eps=cfg.eps),
        "lerf": torch.optim.RAdam(model.language.parameters(), lr=cfg.lerf_lr, eps=cfg.eps, weight_decay=cfg.lerf_weight_decay),
    }
    scheds = {
        "fields": torch.optim.lr_scheduler.LambdaLR(opts["fields"], _decay(cfg.fields_lr, cfg.fields_lr_final, cfg.fields_decay_steps)),
        "lerf": torch.optim.lr_scheduler.LambdaLR(opts["lerf"], _decay(cfg.lerf_lr, cfg.lerf_lr_final, cfg.lerf_decay_steps)),
    }
    return opts, scheds


class LerfTrainer:
    """Owns the model, optimizers, data and RNG of one run; explicit steps."""

    def __init__(self, cfg: LerfTrainConfig, train: TrainImages, targets: Targets, white_background: bool) -> None:
        if targets.views != train.indices:
            raise ArtifactError("the targets cover other training views than this run; recompute them")
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.train, self.targets = train, targets
        self.model = LerfModel(cfg.model, int(targets.clip[0].shape[-1]), int(targets.dino.shape[-1]), white_background)
        self.opts, self.scheds = make_optimizers(self.model, cfg.optim)
        self.step_count = 0

    def sample(self) -> tuple[RayBatch, dict[str, Tensor]]:
        """A random batch of training rays and their targets."""
        R, t = self.cfg.rays_per_batch, self.train
        v = torch.randint(0, t.images.shape[0], (R,), generator=self.gen)
        r = torch.randint(0, t.height, (R,), generator=self.gen)
        c = torch.randint(0, t.width, (R,), generator=self.gen)
        clip, scale = random_scale_targets(self.targets.grids, self.targets.clip, v, r, c, generator=self.gen)
        tg = {"rgb": t.images[v, r, c], "clip": clip, "scale": scale,
              "dino": dino_lookup(self.targets.dino, v, r, c, t.height, t.width)}
        return ray_batch(t.c2w[v], t.Ks[v], r, c, t.height), tg

    def step(self) -> dict[str, float]:
        """One optimization step; returns the loss terms and the batch PSNR."""
        self.model.train()
        rays, tg = self.sample()
        out = self.model(rays, step=self.step_count, language=True)
        terms = self.model.losses(out, rays, tg)
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training diverged at step {self.step_count}: non-finite loss; resume from the last checkpoint"
            )
        loss.backward()
        for o in self.opts.values():
            o.step()
            o.zero_grad(set_to_none=True)
        for s in self.scheds.values():
            s.step()
        self.step_count += 1
        with torch.no_grad():
            mse = float(((out["rgb"] - tg["rgb"]) ** 2).mean())
        return {**{k: float(v.detach()) for k, v in terms.items()}, "psnr": -10 * math.log10(max(mse, 1e-10))}

    def state_dict(self) -> dict[str, Any]:
        return {
            "format_version": LERF_VERSION, "kind": "lerf_checkpoint", "step": self.step_count,
            "config": to_dict(self.cfg), "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
            "schedulers": {k: s.state_dict() for k, s in self.scheds.items()},
            "gen": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
        }

    def save_checkpoint(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)

    def load_checkpoint(self, path: Path) -> None:
        ck = _load(path, "lerf_checkpoint")
        self.model.load_state_dict(ck["model"])
        for k, o in self.opts.items():
            o.load_state_dict(ck["optimizers"][k])
        for k, s in self.scheds.items():
            s.load_state_dict(ck["schedulers"][k])
        self.step_count = int(ck["step"])
        self.gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])


def _load(path: Path, kind: str) -> dict[str, Any]:
    """Read a torch file of ``kind`` and format :data:`LERF_VERSION`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"missing file: {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ArtifactError(f"corrupt checkpoint {path}: {type(e).__name__}") from e
    if not isinstance(ck, dict) or ck.get("kind") != kind or ck.get("format_version") != LERF_VERSION:
        got = f"{ck.get('kind')} v{ck.get('format_version')}" if isinstance(ck, dict) else type(ck).__name__
        raise ArtifactError(f"{path} is not a {kind} of format {LERF_VERSION} (found {got})")
    return ck


@torch.no_grad()
def render_image(model: LerfModel, c2w: Tensor, K: Tensor, height: int, width: int, chunk: int,
                 language: bool = False) -> dict[str, Tensor]:
    """Render a whole image: ``rgb [H, W, 3]``, ``depth [H, W]``, ``accumulation [H, W]``; with ``language``
    also the top-k language samples ``lerf_enc [H * W, k, E]``, ``lerf_weights``, ``lerf_t [H * W, k]`` and
    ``scale_factor [H * W]``."""
    model.eval()
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    keys = ["rgb", "depth", "accumulation"] + (["lerf_enc", "lerf_weights", "lerf_t"] if language else [])
    parts: dict[str, list[Tensor]] = {k: [] for k in keys + ["scale_factor"]}
    for s in range(0, rows.shape[0], chunk):
        rays = ray_batch(c2w, K, rows[s : s + chunk], cols[s : s + chunk], height)
        out = model(rays, step=None, language=language)
        for k in keys:
            parts[k].append(out[k])
        parts["scale_factor"].append(rays.scale_factor)
    res = {k: torch.cat(v) for k, v in parts.items()}
    for k in ("rgb", "depth", "accumulation"):
        res[k] = res[k].view(height, width, -1).squeeze(-1) if k != "rgb" else res[k].view(height, width, 3)
    return res


# ------------------------------------------------------------------------------------------- run
_RESUMABLE = {"progress", "overwrite", "max_seconds", "save_renders", "checkpoint_every", "out", "data", "threads",
              "eval_chunk", "targets", "target"}


def run_status(cfg: LerfTrainConfig) -> str:
    """``"fresh"``, ``"resume"`` or ``"done"`` for ``cfg.out``; a run of another config is refused without --overwrite."""
    out = check_out_dir(cfg.out)
    if not (out / "config.json").exists():
        return "fresh"
    diff = changed_options(read_json(out / "config.json"), cfg, _RESUMABLE)
    if diff:
        if not cfg.overwrite:
            raise ArtifactError(f"{out} holds a LERF run with a different config ({', '.join(diff[:5])}); "
                                "pass --overwrite or choose a new --out")
        for f in ("metrics.json", "lerf.pt", "manifest.json", "ckpt/latest.pt"):
            (out / f).unlink(missing_ok=True)
        return "fresh"
    if (out / "metrics.json").exists() and (out / "lerf.pt").exists():
        return "done"
    return "resume" if (out / "ckpt" / "latest.pt").exists() else "fresh"


def targets_folder(cfg: LerfTrainConfig) -> Path:
    return Path(cfg.targets) if cfg.targets is not None else Path(cfg.out) / "targets"


def scene_target_config(cfg: LerfTrainConfig) -> TargetsConfig:
    """The run's targets options with its scene settings."""
    return dataclasses.replace(cfg.target, data=cfg.data, format=cfg.format, factor=cfg.factor, test_every=cfg.test_every)


def run(cfg: LerfTrainConfig) -> dict[str, Any]:
    """Train (or resume, or reuse) one LERF run; returns the metrics dict."""
    from tqdm import tqdm

    from ccl_gs.metrics.image import psnr
    from ccl_gs.runtime import device_for_run
    from ccl_gs.splat.trainer import load_run_scene, make_dataset

    validate(cfg)
    out = Path(cfg.out)
    status = run_status(cfg)
    if status == "done":
        return {**read_json(out / "metrics.json"), "reused": True}
    device = device_for_run("cpu")
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    scene = load_run_scene(cfg)
    tcfg = scene_target_config(cfg)
    tdir = targets_folder(cfg)
    if cfg.targets is None:  # the run's own targets: computed, resumed or reused
        compute_targets(tcfg, TargetsRun(out=tdir, progress=cfg.progress))
    targets = load_targets(tdir, tcfg)
    norm = scene_normalization(scene)
    train = stack_views(make_dataset(cfg, scene, "train", device), norm)
    test_set = make_dataset(cfg, scene, "test", device)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg)
    trainer = LerfTrainer(cfg, train, targets, scene.white_background)
    ckpt = out / "ckpt" / "latest.pt"
    seconds_before = 0.0
    if status == "resume":
        trainer.load_checkpoint(ckpt)
        prog = out / "ckpt" / "progress.json"
        seconds_before = float(read_json(prog)["seconds"]) if prog.exists() else 0.0

    def save(elapsed: float) -> None:
        trainer.save_checkpoint(ckpt)
        write_json(out / "ckpt" / "progress.json", {"step": trainer.step_count, "seconds": elapsed})

    t0 = time.perf_counter()
    bar = tqdm(total=cfg.iterations, initial=trainer.step_count, disable=not cfg.progress, desc="train lerf",
               dynamic_ncols=True)

    def save_interrupted() -> str:
        bar.close()
        save(seconds_before + time.perf_counter() - t0)
        return checkpoint_line(trainer.step_count, ckpt.parent)

    with save_on_interrupt(save_interrupted) as guard:  # Ctrl-C: the current step ends, is saved, and we stop
        while trainer.step_count < cfg.iterations:
            last = trainer.step()
            bar.update(1)
            if trainer.step_count % 10 == 0:
                bar.set_postfix(psnr=f"{last['psnr']:.2f}", clip=f"{last.get('clip', 0):.3f}", dino=f"{last.get('dino', 0):.3f}")
            elapsed = seconds_before + time.perf_counter() - t0
            if trainer.step_count % cfg.checkpoint_every == 0 or trainer.step_count == cfg.iterations:
                save(elapsed)
            if cfg.max_seconds and elapsed >= cfg.max_seconds:
                save(elapsed)
                break
            guard.check()
    bar.close()
    seconds = seconds_before + time.perf_counter() - t0
    ps = []
    for i in range(len(test_set)):
        item = test_set[i]
        c2w = torch.from_numpy(norm.c2w(np.linalg.inv(item["viewmat"].cpu().numpy().astype(np.float64)))).float()
        r = render_image(trainer.model, c2w, item["K"].cpu(), int(item["height"]), int(item["width"]), cfg.eval_chunk)
        pred = r["rgb"].clamp(0, 1)
        ps.append(psnr(pred[None], item["image"].cpu()[None]))
        if cfg.save_renders:
            from PIL import Image

            name = Path(scene.image_paths[int(item["index"])]).stem
            with atomic_path(out / "renders" / "test" / f"{name}.png") as tmp:
                Image.fromarray((pred.numpy() * 255 + 0.5).astype(np.uint8)).save(tmp, format="PNG")
    final = {
        "format_version": LERF_VERSION, "kind": "lerf", "model_config": to_dict(cfg.model),
        "model": trainer.model.state_dict(), "clip_dim": trainer.model.language.clip_dim,
        "dino_dim": trainer.model.language.dino_dim, "white_background": bool(scene.white_background),
        "normalization": dataclasses.asdict(norm), "clip_encoder": targets.clip_spec, "dino_encoder": targets.dino_spec,
        "step": trainer.step_count,
    }
    with atomic_path(out / "lerf.pt") as tmp:
        torch.save(final, tmp)
    Manifest("lerf", LERF_VERSION, to_dict(cfg), {"targets": targets.manifest.fingerprint(), "targets_dir": str(tdir)},
             {"clip_encoder": targets.clip_spec, "dino_encoder": targets.dino_spec}).save(out)
    metrics = {
        "scene": scene.name, "preset": cfg.preset, "width": train.width, "height": train.height,
        "test_views": [int(i) for i in scene.views("test", cfg.test_every)],
        "psnr": float(np.mean(ps)) if ps else None, "iterations": trainer.step_count, "seconds": seconds,
        "seconds_per_iter": seconds / max(trainer.step_count, 1), "rays_per_batch": cfg.rays_per_batch,
        "device": str(device), "threads": torch.get_num_threads(),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def config_for(preset: str) -> LerfTrainConfig:
    """The config of a named preset (a ValueError names the choices)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown --preset '{preset}' (known: {', '.join(PRESETS)})")
    return PRESETS[preset]()


def load_config(path: Path) -> LerfTrainConfig:
    """Reload the resolved config saved beside a run."""
    return from_dict(LerfTrainConfig, read_json(path))
