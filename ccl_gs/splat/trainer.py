"""RGB Gaussian training (3DGS): SH colour, densification, L1 + D-SSIM.

The trainer is a small object with explicit steps so that the semantic
stage can reuse it (it adds a per-Gaussian feature and a loss term):

* :meth:`Trainer.step` - one optimization step on one training view;
* :meth:`Trainer.evaluate` - held-out PSNR / SSIM;
* :meth:`Trainer.save_checkpoint` / :meth:`Trainer.load_checkpoint` -
  versioned dict checkpoints (parameters, optimizer and strategy state,
  step, RNG), written atomically, so a killed run resumes;
* :func:`run` - the whole job behind ``train.py``: resume or start, train
  with a progress bar, evaluate, write ``point_cloud.ply``, ``metrics.json``
  and the resolved ``config.json``.
"""

from __future__ import annotations

import inspect
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ccl_gs.config import changed_options, diff_keys, from_dict, to_dict  # noqa: F401 (diff_keys re-exported)
from ccl_gs.data.scene import check_test_every
from ccl_gs.interrupt import checkpoint_line, save_on_interrupt
from ccl_gs.io.artifacts import ArtifactError, atomic_path, check_out_dir, read_json, write_json
from ccl_gs.metrics.image import psnr, ssim
from ccl_gs.runtime import CPU_TORCH_THREADS, device_for_run  # noqa: F401 (re-exported)
from ccl_gs.splat._sh import MAX_DEGREE as MAX_SH_DEGREE
from ccl_gs.splat.gaussians import InitConfig, LearningRates, init_gaussians, make_optimizers, render_rgb
from ccl_gs.splat.multiview import MultiViewConfig, WarpConsistency
from ccl_gs.splat.rasterize import LEGACY_RASTER, RasterConfig
from ccl_gs.splat.seeding import focus_point, init_region, random_points, scene_focus, seed_points  # noqa: F401 (re-exported)
from ccl_gs.splat.strategy import DensifyConfig, make_strategy, strategy_state_to_cpu

CHECKPOINT_VERSION = 1
"""Bumped whenever the checkpoint dict layout changes."""


@dataclass
class RGBTrainConfig:
    """Options of RGB Gaussian training (``train.py``)."""

    data: Path = field(default=Path("../shared/data/llff_fern"), metadata={"help": "Scene folder."})
    out: Path = field(default=Path("outputs/fern"), metadata={"help": "Output folder."})
    format: str = field(default="auto", metadata={"help": "Scene format: auto | colmap | llff | nerfstudio | blender."})
    factor: int = field(
        default=1, metadata={"help": "Image downscale factor; LLFF/COLMAP read the images_<factor> folder when present."}
    )
    test_every: int = field(default=8, metadata={"help": "Hold out every n-th view (0 = none). Blender keeps its own split at 8."})
    iterations: int = field(default=1500, metadata={"help": "Optimization steps (one view per step); at least 1."})
    max_seconds: float = field(default=0.0, metadata={"help": "Stop training after this many seconds (0 = no limit)."})
    sh_degree: int = field(default=3, metadata={"help": f"Maximum SH degree of the colour (0..{MAX_SH_DEGREE})."})
    sh_degree_interval: int | None = field(
        default=None,
        metadata={"help": "Raise the active SH degree every this many steps (None: min(1000, iterations / 4); 3DGS: 1000)."},
    )
    ssim_lambda: float = field(default=0.2, metadata={"help": "Weight of D-SSIM in the loss (3DGS: 0.2)."})
    random_background: bool = field(
        default=True,
        metadata={
            "help": "Views whose images carry alpha (Blender): composite each training view on a random colour, so "
            "no Gaussian can pass for background in the training views and float in front of the object in others."
        },
    )
    drop_rate: float = field(
        default=0.0,
        metadata={
            "help": "Fraction of the Gaussians left out of each training render, the others' opacity scaled by "
            "1 / (1 - rate) (DropGaussian, a sparse-view regularizer; 0 = off). Evaluation renders all."
        },
    )
    raster: RasterConfig = field(default_factory=RasterConfig)
    multiview: MultiViewConfig = field(default_factory=MultiViewConfig)
    init: InitConfig = field(default_factory=InitConfig)
    lr: LearningRates = field(default_factory=LearningRates)
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    checkpoint_every: int = field(default=250, metadata={"help": "Save a resumable checkpoint every this many steps."})
    save_renders: bool = field(default=True, metadata={"help": "Write held-out renders as PNG next to the metrics."})
    backend: str = field(default="auto", metadata={"help": "Rasterizer backend: auto | torch | gsplat."})
    seed: int = field(default=0, metadata={"help": "Random seed."})
    overwrite: bool = field(default=False, metadata={"help": "Discard an existing run in --out with a different config."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"--iterations must be >= 1, got {self.iterations}")
        check_test_every(self.test_every)
        if self.factor < 1:
            raise ValueError(f"--factor must be >= 1, got {self.factor}")
        if not 0 <= self.sh_degree <= MAX_SH_DEGREE:
            raise ValueError(f"--sh-degree must be in 0..{MAX_SH_DEGREE}, got {self.sh_degree}")
        if self.sh_degree_interval is not None and self.sh_degree_interval < 1:
            raise ValueError(f"--sh-degree-interval must be >= 1, got {self.sh_degree_interval}")
        if self.checkpoint_every < 1:
            raise ValueError(f"--checkpoint-every must be >= 1, got {self.checkpoint_every}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"--drop-rate must be in [0, 1), got {self.drop_rate}")


def _backend(name: str) -> str | None:
    return None if name == "auto" else name


class Trainer:
    """Owns parameters, optimizers and the densification strategy of one run."""

    def __init__(self, cfg: RGBTrainConfig, train_set, scene, extra_dims: dict[str, int] | None = None):
        self.cfg = cfg
        self.train_set = train_set
        self.scene = scene
        self.device = train_set.device if hasattr(train_set, "device") else device_for_run()
        torch.manual_seed(cfg.seed)
        self.scene_scale = float(scene.scene_scale)
        self.init_region = None if scene.points is not None and len(scene.points) else init_region(scene, cfg.init)
        region = self.init_region
        self.init_note = ""

        def seed(g: torch.Generator) -> tuple[Tensor, Tensor]:
            points, colors, self.init_note = seed_points(scene, train_set, region, cfg.init, g)
            return points, colors

        self.params = init_gaussians(
            scene.points,
            scene.point_colors,
            cfg.sh_degree,
            cfg.init,
            extra_dims=extra_dims,
            seed=cfg.seed,
            random_init=None if region is None else seed,
        ).to(self.device)
        self.optimizers = make_optimizers(self.params, cfg.lr, self.scene_scale)
        self.strategy = make_strategy(cfg.densify, cfg.iterations)
        interval = cfg.sh_degree_interval
        self._sh_interval = max(min(1000, cfg.iterations // 4) if interval is None else interval, 1)
        self.strategy.check_sanity(self.params, self.optimizers)
        self.strategy_state = self.strategy.initialize_state(scene_scale=self.scene_scale)
        self.step_count = 0
        self.background = torch.ones(3, device=self.device) if scene.white_background else torch.zeros(3, device=self.device)
        self._order: list[int] = []
        self._rng = np.random.default_rng(cfg.seed)
        self._means_gamma = 0.01 ** (1.0 / max(cfg.iterations, 1))
        self._means_lr0 = cfg.lr.means * self.scene_scale
        self.multiview = WarpConsistency(train_set, cfg.multiview) if cfg.multiview.weight > 0 else None
        self._multiview_start = int(cfg.multiview.start * cfg.iterations)

    # ------------------------------------------------------------------ steps
    @property
    def n_gaussians(self) -> int:
        return int(self.params["means"].shape[0])

    def active_sh_degree(self) -> int:
        return min(self.step_count // self._sh_interval, self.cfg.sh_degree)

    def next_view(self) -> int:
        """Index into the training set; a fresh random permutation each epoch."""
        if not self._order:
            self._order = list(self._rng.permutation(len(self.train_set)))
        return int(self._order.pop())

    def render(
        self,
        item: dict[str, Any],
        render_mode: str = "RGB",
        background: Tensor | None = None,
        opacity_scale: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, dict]:
        """Render one view item (on ``background [3]``, default the scene's; opacities times
        ``opacity_scale [N]`` when given); returns ``colors [1,H,W,3]``, ``alphas [1,H,W,1]``, meta."""
        return render_rgb(
            self.params,
            item["viewmat"][None].to(self.device),
            item["K"][None].to(self.device),
            int(item["width"]),
            int(item["height"]),
            sh_degree=self.active_sh_degree(),
            background=self.background if background is None else background,
            render_mode=render_mode,
            backend=_backend(self.cfg.backend),
            opacity_scale=opacity_scale,
            raster=self.cfg.raster,
        )

    def dropout_scale(self) -> Tensor | None:
        """``[N]`` opacity factors of one training render: 0 for a random ``drop_rate`` share of the
        Gaussians, ``1 / (1 - drop_rate)`` for the rest (None when off). Drawn from torch's generator."""
        rate = self.cfg.drop_rate
        if rate <= 0:
            return None
        keep = torch.rand(self.n_gaussians).to(self.device) >= rate
        return keep.to(torch.float32) / (1.0 - rate)

    def rgb_loss(self, colors: Tensor, target: Tensor) -> Tensor:
        """(1 - lambda) L1 + lambda (1 - SSIM); ``colors``, ``target``: ``[1, H, W, 3]``."""
        l1 = F.l1_loss(colors, target)
        if self.cfg.ssim_lambda <= 0:
            return l1
        return (1 - self.cfg.ssim_lambda) * l1 + self.cfg.ssim_lambda * (1 - ssim(colors, target))

    def training_target(self, item: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """The target image ``[1, H, W, 3]`` of a training step and the background ``[3]`` to render it on.

        With ``random_background`` and a view with alpha, the background is a random colour (drawn from
        torch's generator, which checkpoints carry) and the target is the image re-composited on it.
        """
        target = item["image"].to(self.device)[None]
        alpha = item.get("alpha")
        if not self.cfg.random_background or alpha is None:
            return target, self.background
        background = torch.rand(3).to(self.device)
        return target + (background - self.background) * (1.0 - alpha.to(self.device)[None]), background

    def step(self, extra_loss: Callable[[dict, dict], Tensor] | None = None) -> dict[str, float]:
        """One optimization step on the next training view.

        Args:
            extra_loss: optional ``(item, meta) -> scalar`` added to the RGB loss
                (the semantic stage plugs in here).
        Returns:
            ``{"loss", "psnr", "n"}`` of this step.
        """
        view = self.next_view()
        item = self.train_set[view]
        target, background = self.training_target(item)
        multiview = self.multiview is not None and self.step_count >= self._multiview_start
        colors, _, meta = self.render(
            item, render_mode="RGB+ED" if multiview else "RGB", background=background,
            opacity_scale=self.dropout_scale(),
        )
        depth = colors[0, ..., 3:4]
        colors = colors[..., :3]
        self.strategy.step_pre_backward(self.params, self.optimizers, self.strategy_state, self.step_count, meta)
        loss = self.rgb_loss(colors, target)
        if multiview:
            loss = loss + self.cfg.multiview.weight * self.multiview.loss(view, depth)
        if extra_loss is not None:
            loss = loss + extra_loss(item, meta)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training diverged at step {self.step_count}: non-finite loss; lower the learning rates or resume "
                "from the last checkpoint"
            )
        loss.backward()
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        for g in self.optimizers["means"].param_groups:
            g["lr"] = self._means_lr0 * self._means_gamma ** (self.step_count + 1)
        self.strategy.step_post_backward(
            self.params, self.optimizers, self.strategy_state, self.step_count, meta, packed=False
        )
        self.step_count += 1
        with torch.no_grad():
            p = psnr(colors.detach(), target)
        return {"loss": float(loss.detach()), "psnr": p, "n": self.n_gaussians}

    @torch.no_grad()
    def evaluate(self, test_set, render_dir: Path | None = None) -> dict[str, float | None]:
        """Mean PSNR / SSIM over ``test_set`` (``None`` without test views); optionally writes the renders as PNG."""
        from PIL import Image

        if len(test_set) == 0:
            return {"psnr": None, "ssim": None, "n_views": 0}
        ps, ss = [], []
        for i in range(len(test_set)):
            item = test_set[i]
            target = item["image"].to(self.device)[None]
            colors, _, _ = self.render(item)
            colors = colors[..., :3].clamp(0, 1)
            ps.append(psnr(colors, target))
            ss.append(float(ssim(colors, target)))
            if render_dir is not None:
                render_dir.mkdir(parents=True, exist_ok=True)
                arr = (colors[0].cpu().numpy() * 255 + 0.5).astype(np.uint8)
                name = Path(self.scene.image_paths[int(item["index"])]).stem
                with atomic_path(render_dir / f"{name}.png") as tmp:
                    Image.fromarray(arr).save(tmp, format="PNG")
        return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "n_views": len(ps)}

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """A versioned, self-describing checkpoint dict."""
        return {
            "format_version": CHECKPOINT_VERSION,
            "kind": "gaussians",
            "step": self.step_count,
            "config": to_dict(self.cfg),
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "strategy_state": strategy_state_to_cpu(self.strategy_state),
            "order": list(self._order),
            "rng": self._rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }

    def save_checkpoint(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)

    def load_checkpoint(self, path: Path) -> None:
        """Continue from the checkpoint file ``path`` (see :func:`load_checkpoint`)."""
        self.load_state_dict(load_checkpoint(path))

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (parameters, optimizers, strategy state, step, RNG)."""
        self.params = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(v.to(self.device)) for k, v in ckpt["params"].items()}
        )
        self.optimizers = make_optimizers(self.params, self.cfg.lr, self.scene_scale)
        for k, o in self.optimizers.items():
            o.load_state_dict(ckpt["optimizers"][k])
        self.strategy_state = {
            k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in ckpt["strategy_state"].items()
        }
        self.step_count = int(ckpt["step"])
        self._order = [int(i) for i in ckpt["order"]]
        self._rng.bit_generator.state = ckpt["rng"]
        torch.set_rng_state(ckpt["torch_rng"])


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint, checking its version; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"missing checkpoint: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ArtifactError(f"corrupt checkpoint {path}: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != CHECKPOINT_VERSION:
        raise ArtifactError(
            f"checkpoint {path} has format version {ckpt.get('format_version') if isinstance(ckpt, dict) else '?'}, "
            f"expected {CHECKPOINT_VERSION}"
        )
    return ckpt


# Options that may change between a run and its resumption without invalidating it.
_RESUMABLE_KEYS = {"progress", "overwrite", "max_seconds", "save_renders", "checkpoint_every", "out", "data"}


def check_run_folder(cfg: RGBTrainConfig) -> str:
    """Decide what to do with ``cfg.out``: ``"fresh"``, ``"resume"`` or ``"done"``.

    Raises:
        ArtifactError: the folder holds a run with a different config and
            ``--overwrite`` was not given.
    """
    out = Path(cfg.out)
    saved = out / "config.json"
    if not saved.exists():
        return "fresh"
    diff = changed_options(with_legacy_defaults(read_json(saved)), cfg, _RESUMABLE_KEYS)
    if diff:
        if cfg.overwrite:
            for f in ("metrics.json", "point_cloud.ply", "ckpt/latest.pt"):
                (out / f).unlink(missing_ok=True)
            return "fresh"
        raise ArtifactError(
            f"{out} holds a run with a different config ({', '.join(diff[:5])}); pass --overwrite or choose a new --out"
        )
    if (out / "metrics.json").exists() and (out / "point_cloud.ply").exists():
        return "done"
    return "resume" if (out / "ckpt" / "latest.pt").exists() else "fresh"


def _reader_takes_factor(fmt: str) -> bool:
    from ccl_gs.data.scene import get_reader

    return "factor" in inspect.signature(get_reader(fmt)).parameters


def load_run_scene(cfg: RGBTrainConfig):
    """Read the scene of a run (LLFF / COLMAP pick their ``images_<factor>`` folder)."""
    from ccl_gs.data import load_scene
    from ccl_gs.data.scene import detect_format

    fmt = detect_format(cfg.data) if cfg.format == "auto" else cfg.format
    return load_scene(cfg.data, fmt, **({"factor": cfg.factor} if _reader_takes_factor(fmt) else {}))


def make_dataset(cfg: RGBTrainConfig, scene, split: str, device: torch.device):
    """The views of ``split`` at the run's resolution (readers without image pyramids downscale on load)."""
    from ccl_gs.data.dataset import SceneDataset

    downscale = 1.0 if _reader_takes_factor(scene.format) else float(cfg.factor)
    return SceneDataset(scene, split, test_every=cfg.test_every, downscale=downscale, device=device)


def load_datasets(cfg: RGBTrainConfig, device: torch.device):
    """Read the scene and build the train / test datasets."""
    scene = load_run_scene(cfg)
    return scene, make_dataset(cfg, scene, "train", device), make_dataset(cfg, scene, "test", device)


def run(cfg: RGBTrainConfig) -> dict[str, Any]:
    """Train (or resume, or reuse) one RGB run; returns the metrics dict."""
    from tqdm import tqdm

    from ccl_gs.io.ply import write_gaussians_ply

    out = check_out_dir(cfg.out)
    status = check_run_folder(cfg)
    if status == "done":
        metrics = read_json(out / "metrics.json")
        metrics["reused"] = True
        return metrics
    device = device_for_run()
    scene, train_set, test_set = load_datasets(cfg, device)
    if len(train_set) == 0:
        raise ArtifactError(f"{cfg.data}: no training views after the split (test_every={cfg.test_every})")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg)
    trainer = Trainer(cfg, train_set, scene)
    if trainer.init_region is not None and status == "fresh":
        print(f"{scene.name}: no sparse points; {trainer.init_note}", file=sys.stderr)
    ckpt_path = out / "ckpt" / "latest.pt"
    seconds_before = 0.0
    if status == "resume":
        trainer.load_checkpoint(ckpt_path)
        seconds_before = _ckpt_seconds(out)
    resumed_from = trainer.step_count
    t0 = time.perf_counter()

    def save() -> None:
        trainer.save_checkpoint(ckpt_path)
        elapsed = seconds_before + time.perf_counter() - t0
        write_json(out / "ckpt" / "progress.json", {"step": trainer.step_count, "seconds": elapsed})

    def save_interrupted() -> str:
        save()
        return checkpoint_line(trainer.step_count, out / "ckpt")

    bar = tqdm(
        total=cfg.iterations, initial=trainer.step_count, disable=not cfg.progress, desc="train rgb", dynamic_ncols=True
    )
    try:
        with save_on_interrupt(save_interrupted) as guard:
            while trainer.step_count < cfg.iterations:
                last = trainer.step()
                bar.update(1)
                if trainer.step_count % 10 == 0:
                    bar.set_postfix(loss=f"{last['loss']:.4f}", psnr=f"{last['psnr']:.2f}", n=last["n"])
                if trainer.step_count % cfg.checkpoint_every == 0 or trainer.step_count == cfg.iterations:
                    save()
                if cfg.max_seconds and seconds_before + time.perf_counter() - t0 >= cfg.max_seconds:
                    save()
                    break
                guard.check()
    finally:
        bar.close()
    seconds = seconds_before + time.perf_counter() - t0
    steps_done = trainer.step_count
    ev = trainer.evaluate(test_set, out / "renders" / "test" if cfg.save_renders else None)
    p = trainer.params
    write_gaussians_ply(
        out / "point_cloud.ply",
        means=p["means"].detach().cpu().numpy(),
        quats=p["quats"].detach().cpu().numpy(),
        log_scales=p["scales"].detach().cpu().numpy(),
        opacity_logits=p["opacities"].detach().cpu().numpy(),
        sh0=p["sh0"].detach().cpu().numpy(),
        shN=p["shN"].detach().cpu().numpy(),
    )
    metrics = {
        "scene": scene.name,
        "format": scene.format,
        "width": int(test_set[0]["width"]) if len(test_set) else int(train_set[0]["width"]),
        "height": int(test_set[0]["height"]) if len(test_set) else int(train_set[0]["height"]),
        "test_views": [int(i) for i in scene.views("test", cfg.test_every)],
        "psnr": ev["psnr"],
        "ssim": ev["ssim"],
        "n_gaussians": trainer.n_gaussians,
        "iterations": steps_done,
        "resumed_from_step": resumed_from,
        "seconds": seconds,
        "seconds_per_iter": seconds / max(steps_done, 1),
        "device": str(device),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def _ckpt_seconds(out: Path) -> float:
    prog = out / "ckpt" / "progress.json"
    return float(read_json(prog)["seconds"]) if prog.exists() else 0.0


def with_legacy_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved RGB config dict with the values that runs saved before an option existed trained with, where
    they differ from today's defaults (``raster``: classic, eps2d 0.3)."""
    return saved if "raster" in saved else {**saved, "raster": dict(LEGACY_RASTER)}


def rgb_config(saved: dict[str, Any]) -> RGBTrainConfig:
    """An RGB run's config from its saved dict (``config.json``, or a later stage's copy of it)."""
    return from_dict(RGBTrainConfig, with_legacy_defaults(saved))


def config_from_json(path: Path) -> RGBTrainConfig:
    """Reload the resolved config saved beside a run's outputs."""
    return rgb_config(read_json(path))

