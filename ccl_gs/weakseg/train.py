"""Training the 3D-OVS field on frozen Gaussians (``python -m ccl_gs.weakseg``).

:func:`run` is the whole job: compute the targets into ``<out>/targets`` when
``--targets`` is not given (the scene settings of the RGB run), read the
scene's class names (``segmentations/classes.txt``, sorted), train, and write
``weakseg.pt`` (Gaussians with their language parameters, the decoder, the
classes, the CLIP encoder spec), ``point_cloud.ply`` (3DGS layout + ``f_lang_*``
+ ``class_id``, each Gaussian's argmax class), ``config.json``,
``manifest.json`` (fingerprints of the targets, the RGB checkpoint and the
class list) and ``metrics.json``. A killed run resumes from ``ckpt/latest.pt``;
Ctrl-C ends the current step, saves and says so (exit 130).

One step (``train_seg.py``):

1. one view of the CLIP subset (a seeded ``--clip-views`` fraction of the
   views, the release's ``clip_input = 0.5``) rendered at the CLIP map size;
   ``--batch-pixels`` random pixels of it give the feature loss and RDA
   (weight ``--relevancy-weight``);
2. ``--patches`` random windows of ``--patch-cells`` x ``--patch-cells`` DINO
   cells (any view), rendered one pixel per cell (the release averages the
   8 x 8 rays of a cell), give FDA (weights ``--dino-pos-weight`` 200,
   ``--dino-neg-weight``, shift 0.7, temperature 0.2);
3. from ``--joint-start`` (a fraction of ``--iterations``; the release: 5000
   of 15000) the colours are trained too with an RGB MSE on the view of 1,
   with a new Adam (the release re-creates its optimizer).

Learning rates decay by ``0.1 ** (1 / iterations)`` per step from their start
values, restarted at the joint stage (the release). ``--iterations`` scales
the whole schedule (default 15000, the release's).
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ccl_gs.config import from_dict, to_dict
from ccl_gs.interrupt import checkpoint_line, save_on_interrupt
from ccl_gs.io.artifacts import ArtifactError, Manifest, atomic_path, check_out_dir, file_hash, read_json, write_json
from ccl_gs.io.view_targets import TargetsRun
from ccl_gs.weakseg.losses import fda_loss, feature_loss, minmax_relevancy, rda_loss
from ccl_gs.weakseg.model import WeaksegHead, WeaksegModelConfig, render_channels, scaled_intrinsics
from ccl_gs.weakseg.targets import WeaksegTargets, WeaksegTargetsConfig, WeaksegTargetsError, compute_targets, load_targets

WEAKSEG_VERSION = 1
"""Format of ``weakseg.pt`` and of its checkpoints."""
RUN_ONLY = ("out", "progress", "checkpoint_every", "threads", "targets", "overwrite")
"""Options that never change the trained field (left out of the manifest)."""


@dataclass
class WeaksegConfig:
    """Options of ``python -m ccl_gs.weakseg``."""

    rgb_run: Path = field(default=Path("outputs/scene/rgb"), metadata={"help": "Finished RGB run (train.py): its Gaussians stay fixed."})
    out: Path = field(default=Path("outputs/scene/weakseg"), metadata={"help": "Output folder."})
    targets: Path | None = field(default=None, metadata={"help": "Targets folder (python -m ccl_gs.weakseg.targets); default: <out>/targets, computed when missing."})
    target: WeaksegTargetsConfig = field(default_factory=WeaksegTargetsConfig)
    classes: Path | None = field(default=None, metadata={"help": "The scene's class names: its 3D-OVS segmentations/ folder (classes.txt) or its LERF-OVS label folder (the union of the frames' categories); default: <scene>/segmentations."})
    model: WeaksegModelConfig = field(default_factory=WeaksegModelConfig)
    iterations: int = field(default=15000, metadata={"help": "Steps; the whole schedule scales with it (the release: 15000)."})
    joint_start: float = field(default=1 / 3, metadata={"help": "Fraction of the steps after which colours train with an RGB loss (the release: 5000 / 15000; 1 = never)."})
    batch_pixels: int = field(default=4096, metadata={"help": "Pixels per step for the feature and RDA losses (the release: 4096 rays)."})
    clip_views: float = field(default=0.5, metadata={"help": "Fraction of the views whose CLIP maps train (seeded; the release: 0.5, unseeded)."})
    patches: int = field(default=8, metadata={"help": "FDA patches per step (the release: 8)."})
    patch_cells: int = field(default=32, metadata={"help": "FDA patch side in DINO cells (the release: 256 px / 8 = 32)."})
    relevancy_weight: float = field(default=1.0, metadata={"help": "RDA weight (the release: 1; office_desk 0.1; 0 = no RDA)."})
    dino_pos_weight: float = field(default=200.0, metadata={"help": "FDA positive weight (the release: 200; 0 with --dino-neg-weight 0 = no FDA)."})
    dino_neg_weight: float = field(default=0.2, metadata={"help": "FDA negative weight (the release: 0.18-0.35 per scene)."})
    dino_shift: float = field(default=0.7, metadata={"help": "Shift of the DINO correlation."})
    temperature: float = field(default=0.2, metadata={"help": "FDA softmax temperature."})
    rda_normalize: bool = field(default=False, metadata={"help": "RDA on the cosine (the fix) instead of the release's unnormalized dot product."})
    lr_features: float = field(default=2e-2, metadata={"help": "Adam lr of the per-Gaussian features and selection logits (the release's volume lr: 0.02)."})
    lr_decoder: float = field(default=1e-4, metadata={"help": "Adam lr of the decoder (the release: 1e-4)."})
    lr_colors: float = field(default=5e-3, metadata={"help": "Adam lr of the colours in the joint stage (the release's appearance lr: 5e-3)."})
    seed: int = field(default=0, metadata={"help": "Random seed."})
    checkpoint_every: int = field(default=250, metadata={"help": "Save a resumable checkpoint every this many steps."})
    threads: int = field(default=1, metadata={"help": "CPU threads of PyTorch."})
    overwrite: bool = field(default=False, metadata={"help": "Discard a finished run of another config in --out."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})

    def validate(self) -> None:
        checks = [
            (self.iterations >= 1, f"--iterations must be >= 1, got {self.iterations}"),
            (0 <= self.joint_start <= 1, f"--joint-start must be in [0, 1], got {self.joint_start}"),
            (self.batch_pixels >= 1 and self.patches >= 0 and self.patch_cells >= 2, "--batch-pixels >= 1, --patches >= 0, --patch-cells >= 2"),
            (0 < self.clip_views <= 1, f"--clip-views must be in (0, 1], got {self.clip_views}"),
            (self.temperature > 0, f"--temperature must be > 0, got {self.temperature}"),
            (self.checkpoint_every >= 1, f"--checkpoint-every must be >= 1, got {self.checkpoint_every}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        self.model.validate()

    @property
    def joint_start_step(self) -> int:
        """First step of the joint (colour) stage; ``iterations`` means never."""
        return self.iterations if self.joint_start >= 1 else int(round(self.joint_start * self.iterations))

    @property
    def use_fda(self) -> bool:
        return self.patches > 0 and (self.dino_pos_weight != 0 or self.dino_neg_weight != 0)


class WeaksegError(RuntimeError):
    """A run cannot start or its inputs do not fit; the message says what to do."""


def scene_classes(cfg: WeaksegConfig, rgb_cfg) -> list[str]:
    """The text set, sorted (the release's class order): ``classes.txt`` of the segmentations folder, or the
    query list of a LERF-OVS label folder (:func:`ccl_gs.metrics.labels.read_class_list`)."""
    from ccl_gs.metrics.labels import LabelError, read_class_list

    seg = Path(cfg.classes) if cfg.classes is not None else Path(rgb_cfg.data) / "segmentations"
    try:
        return read_class_list(seg)
    except LabelError as e:
        raise WeaksegError(f"{e}: the 3D-OVS method needs the scene's class names "
                           "(--classes <segmentations folder or LERF-OVS label folder>)") from None


def text_embeddings(spec: dict[str, Any], classes: list[str]) -> Tensor:
    """Unit text embeddings ``[C, D]`` of the classes with the targets' CLIP encoder (the raw names, no template)."""
    from ccl_gs.encoders import build_encoder
    from ccl_gs.encoders.open_clip import EncoderLoadError

    try:
        enc = build_encoder(spec)
    except (EncoderLoadError, ValueError, KeyError) as e:
        raise WeaksegError(f"cannot rebuild the targets' CLIP encoder: {e}") from None
    return torch.nn.functional.normalize(enc.encode_text(classes).float(), dim=-1)


@dataclass
class ViewCamera:
    """A training view's camera at the RGB run's resolution."""

    viewmat: Tensor  # [4, 4]
    K: Tensor  # [3, 3]
    width: int
    height: int


class WeaksegTrainer:
    """Owns the Gaussians, the head, the optimizers, the data and the RNG of one run; explicit steps."""

    def __init__(self, cfg: WeaksegConfig, params: dict[str, Tensor], cameras: list[ViewCamera], targets: WeaksegTargets,
                 text: Tensor, device: torch.device, raster=None):
        self.cfg, self.device, self.targets, self.cameras = cfg, device, targets, cameras
        self.raster = raster  # the RGB run's RasterConfig: the fixed Gaussians render as they were trained
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        V = len(cameras)
        n_clip = max(1, int(round(cfg.clip_views * V)))
        self.clip_views = sorted(int(i) for i in self.rng.permutation(V)[:n_clip])
        self.text = text.to(device)
        self.head = WeaksegHead(cfg.model, int(targets.clip.shape[-1])).to(device)
        N = params["means"].shape[0]
        g = torch.Generator().manual_seed(cfg.seed)
        lang = {"features": cfg.model.init_std * torch.randn(N, cfg.model.feature_dim, generator=g),
                "selection": cfg.model.init_std * torch.randn(N, 3, generator=g)}
        self.params = torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(device), requires_grad=False) for k, v in params.items()})
        for k, v in lang.items():
            self.params[k] = torch.nn.Parameter(v.to(device))
        self.h, self.w = (int(x) for x in targets.clip.shape[2:4])
        # RDA targets of the CLIP views: [n, 3, h, w, C]
        self.clip = targets.clip[self.clip_views]
        self.relevancy = torch.stack([minmax_relevancy(self.clip[j], text) for j in range(len(self.clip_views))])
        self.step_count = 0
        self.joint = False
        self.opt = self._optimizer()

    def _optimizer(self) -> torch.optim.Optimizer:
        """The release's Adam (betas 0.9, 0.99); the joint stage adds the colours."""
        groups = [{"params": [self.params["features"], self.params["selection"]], "lr": self.cfg.lr_features, "lr0": self.cfg.lr_features},
                  {"params": list(self.head.parameters()), "lr": self.cfg.lr_decoder, "lr0": self.cfg.lr_decoder}]
        if self.joint:
            groups.append({"params": [self.params["sh0"], self.params["shN"]], "lr": self.cfg.lr_colors, "lr0": self.cfg.lr_colors})
        return torch.optim.Adam(groups, betas=(0.9, 0.99))

    def _enter_joint(self) -> None:
        self.joint = True
        for k in ("sh0", "shN"):
            self.params[k].requires_grad_(True)
        self.opt = self._optimizer()

    # -------------------------------------------------------------------------------- renders
    def _clip_camera(self, v: int) -> tuple[Tensor, Tensor]:
        c = self.cameras[v]
        return c.viewmat[None].to(self.device), scaled_intrinsics(c.K, self.w / c.width, self.h / c.height)[None].to(self.device)

    def _patch_cameras(self, views: list[int], corners: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """Cameras that render one pixel per DINO cell of each window (``corners`` in cells)."""
        hd, wd = self.targets.dino_size
        cell = self.targets.dino_cell
        vms, Ks = [], []
        for v, (r0, c0) in zip(views, corners):
            c = self.cameras[v]
            sx, sy = wd / (c.width * cell), hd / (c.height * cell)
            vms.append(c.viewmat)
            Ks.append(scaled_intrinsics(c.K, sx, sy, c0, r0))
        return torch.stack(vms).to(self.device), torch.stack(Ks).to(self.device)

    def sample_patches(self) -> tuple[list[int], list[tuple[int, int]]]:
        """Random views (any) and cell-aligned window corners of the FDA patches."""
        gh, gw = (int(x) for x in self.targets.dino.shape[1:3])
        P = min(self.cfg.patch_cells, gh, gw)
        V = len(self.cameras)
        views = [int(x) for x in torch.randint(0, V, (self.cfg.patches,), generator=self.gen)]
        corners = [(int(torch.randint(0, gh - P + 1, (1,), generator=self.gen)), int(torch.randint(0, gw - P + 1, (1,), generator=self.gen)))
                   for _ in views]
        return views, corners

    # ---------------------------------------------------------------------------------- step
    def losses(self) -> dict[str, Tensor]:
        """The loss terms of one step (weighted as the total sums them)."""
        cfg = self.cfg
        j = int(torch.randint(0, len(self.clip_views), (1,), generator=self.gen))
        v = self.clip_views[j]
        vm, K = self._clip_camera(v)
        if self.joint:  # the colours enter the same render as one more rasterization
            from ccl_gs.splat.gaussians import render_rgb

            rgb, _, _ = render_rgb(self.params, vm, K, self.w, self.h, sh_degree=self._sh_degree(),
                                   raster=self.raster,
                                   background=torch.zeros(3, device=self.device))
        feat, sel = render_channels(self.params, self.head, vm, K, self.w, self.h,
                                    raster=self.raster)  # [1, h, w, D], [1, h, w, 3]
        n = self.h * self.w
        pix = torch.randperm(n, generator=self.gen)[: min(cfg.batch_pixels, n)].to(self.device)
        F_r, w_r = feat[0].reshape(n, -1)[pix], sel[0].reshape(n, 3)[pix]
        clip = self.clip[j].to(self.device).permute(1, 2, 0, 3).reshape(n, 3, -1)[pix]  # [R, 3, D]
        terms = {"feature": feature_loss(F_r, w_r, clip)}
        if cfg.relevancy_weight:
            rel = self.relevancy[j].to(self.device).permute(1, 2, 0, 3).reshape(n, 3, -1)[pix]
            terms["rda"] = cfg.relevancy_weight * rda_loss(F_r, w_r, rel, self.text, cfg.rda_normalize)
        if cfg.use_fda:
            views, corners = self.sample_patches()
            vms, Ks = self._patch_cameras(views, corners)
            P = min(cfg.patch_cells, *self.targets.dino.shape[1:3])
            pf, _ = render_channels(self.params, self.head, vms, Ks, P, P, raster=self.raster)  # [P_n, P, P, D]
            dino = torch.stack([self.targets.dino[vi, r0 : r0 + P, c0 : c0 + P] for vi, (r0, c0) in zip(views, corners)])
            pos, neg = fda_loss(pf.flatten(1, 2), dino.flatten(1, 2).to(self.device), self.text, cfg.temperature, cfg.dino_shift)
            terms["fda_pos"] = cfg.dino_pos_weight * pos
            terms["fda_neg"] = cfg.dino_neg_weight * neg
        if self.joint:
            gt = self.targets.rgb[self.clip_views[j]].to(self.device).float() / 255.0
            terms["rgb"] = ((rgb[0, ..., :3] - gt) ** 2).mean()
        return terms

    def _sh_degree(self) -> int:
        K = 1 + self.params["shN"].shape[1]
        return int(round(math.sqrt(K))) - 1

    def step(self) -> dict[str, float]:
        """One optimization step; returns the loss terms."""
        if not self.joint and self.step_count >= self.cfg.joint_start_step:
            self._enter_joint()
        start = self.cfg.joint_start_step if self.joint else 0
        for g in self.opt.param_groups:
            g["lr"] = g["lr0"] * 0.1 ** ((self.step_count - start) / self.cfg.iterations)
        terms = self.losses()
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training diverged at step {self.step_count}: non-finite loss")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step_count += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    # --------------------------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        keys = ["features", "selection"] + (["sh0", "shN"] if self.joint else [])
        return {"format_version": WEAKSEG_VERSION, "kind": "weakseg_checkpoint", "step": self.step_count, "joint": self.joint,
                "params": {k: self.params[k].detach().cpu() for k in keys}, "head": self.head.state_dict(),
                "opt": self.opt.state_dict(), "gen": self.gen.get_state(), "torch_rng": torch.get_rng_state()}

    def restore(self, st: dict[str, Any]) -> None:
        if st["joint"]:
            self._enter_joint()
        with torch.no_grad():
            for k, v in st["params"].items():
                self.params[k].copy_(v.to(self.device))
        self.head.load_state_dict(st["head"])
        self.opt.load_state_dict(st["opt"])
        self.step_count = int(st["step"])
        self.gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])


# ------------------------------------------------------------------------------------------ run
def targets_folder(cfg: WeaksegConfig) -> Path:
    return Path(cfg.targets) if cfg.targets is not None else Path(cfg.out) / "targets"


def scene_target_config(cfg: WeaksegConfig, rgb_cfg) -> WeaksegTargetsConfig:
    """The run's targets options with the RGB run's scene settings."""
    return dataclasses.replace(cfg.target, data=rgb_cfg.data, format=rgb_cfg.format, factor=rgb_cfg.factor,
                               test_every=rgb_cfg.test_every)


def check_targets_encoders(targets: WeaksegTargets, tcfg: WeaksegTargetsConfig, folder: Path) -> None:
    """Refuse targets computed with other encoders than the run asks for."""
    for role, want in (("clip_encoder", tcfg.clip_encoder), ("dino_encoder", tcfg.dino_encoder)):
        got = targets.manifest.extra.get(role, {}).get("kind")
        if got != want:
            raise WeaksegError(f"targets in {folder} were computed with {role.replace('_', ' ')} '{got}', this run asks for "
                               f"'{want}' (--target.{role.replace('_', '-')}); recompute them or pass the matching option")


def run_manifest(cfg: WeaksegConfig, targets: WeaksegTargets, rgb_ckpt: Path, classes: list[str]) -> Manifest:
    config = {k: v for k, v in to_dict(cfg).items() if k not in RUN_ONLY}
    config.pop("target", None)  # what matters of it is in the targets' fingerprint
    return Manifest("weakseg", WEAKSEG_VERSION, config,
                    {"targets": targets.manifest.fingerprint(), "rgb_ckpt": file_hash(rgb_ckpt), "classes": classes})


def run(cfg: WeaksegConfig) -> dict[str, Any]:
    """Train (or resume, or reuse) one run; returns the metrics dict.

    Raises:
        WeaksegError, WeaksegTargetsError, ArtifactError, ValueError: one-line user errors.
        ccl_gs.interrupt.Interrupted: Ctrl-C (the last whole step is saved; the same call resumes).
    """
    from tqdm import tqdm

    from ccl_gs.field.export import export_field_ply
    from ccl_gs.runtime import device_for_run
    from ccl_gs.splat.trainer import config_from_json, load_checkpoint, load_run_scene, make_dataset

    cfg.validate()
    out = check_out_dir(cfg.out)
    rgb_cfg_path = Path(cfg.rgb_run) / "config.json"
    rgb_ckpt = Path(cfg.rgb_run) / "ckpt" / "latest.pt"
    if not rgb_cfg_path.is_file() or not rgb_ckpt.is_file():
        raise WeaksegError(f"no finished RGB run at {cfg.rgb_run} (config.json and ckpt/latest.pt of train.py)")
    rgb_cfg = config_from_json(rgb_cfg_path)
    classes = scene_classes(cfg, rgb_cfg)
    device = device_for_run()
    torch.set_num_threads(max(cfg.threads, 1))
    tcfg = scene_target_config(cfg, rgb_cfg)
    tdir = targets_folder(cfg)
    if cfg.targets is None:
        compute_targets(tcfg, TargetsRun(out=tdir, progress=cfg.progress))
    targets = load_targets(tdir, tcfg)
    check_targets_encoders(targets, tcfg, tdir)
    man = run_manifest(cfg, targets, rgb_ckpt, classes)
    fp = man.fingerprint()
    if (out / "manifest.json").is_file() and (out / "weakseg.pt").is_file() and (out / "metrics.json").is_file():
        old = Manifest.load(out)
        if old.fingerprint() == fp:
            return {**read_json(out / "metrics.json"), "reused": True}
        if not cfg.overwrite:
            what = "class list" if old.inputs.get("classes") != classes else "config or inputs"
            raise WeaksegError(f"{out} holds a 3D-OVS run of another {what}; pass --overwrite or choose another --out")
        (out / "manifest.json").unlink()
    scene = load_run_scene(rgb_cfg)
    train_set = make_dataset(rgb_cfg, scene, "train", "cpu")
    if list(train_set.indices) != targets.views:
        raise WeaksegError(f"targets in {tdir} cover other views than the RGB run's training views; recompute them")
    cameras = []
    for i in range(len(train_set)):
        it = train_set[i]
        cameras.append(ViewCamera(it["viewmat"].float().cpu(), it["K"].float().cpu(), int(it["width"]), int(it["height"])))
    params = {k: v.float() for k, v in load_checkpoint(rgb_ckpt)["params"].items()}
    text = text_embeddings(targets.clip_spec, classes)
    trainer = WeaksegTrainer(cfg, params, cameras, targets, text, device, raster=rgb_cfg.raster)
    ckpt = out / "ckpt"
    seconds_before = 0.0
    if (ckpt / "latest.pt").is_file():
        try:
            st = torch.load(ckpt / "latest.pt", map_location="cpu", weights_only=False)
        except Exception:
            st = None
        if isinstance(st, dict) and st.get("fingerprint") == fp and st.get("format_version") == WEAKSEG_VERSION:
            trainer.restore(st)
            prog = ckpt / "progress.json"
            seconds_before = float(read_json(prog)["seconds"]) if prog.is_file() else 0.0
    resumed_from = trainer.step_count
    t0 = time.perf_counter()

    def save() -> None:
        with atomic_path(ckpt / "latest.pt") as tmp:
            torch.save({**trainer.checkpoint_state(), "fingerprint": fp}, tmp)
        write_json(ckpt / "progress.json", {"step": trainer.step_count, "seconds": seconds_before + time.perf_counter() - t0})

    bar = tqdm(total=cfg.iterations, initial=trainer.step_count, disable=not cfg.progress, desc="train 3D-OVS field",
               dynamic_ncols=True)

    def save_interrupted() -> str:
        bar.close()
        save()
        return checkpoint_line(trainer.step_count, ckpt)

    last: dict[str, float] = {}
    with save_on_interrupt(save_interrupted) as guard:
        while trainer.step_count < cfg.iterations:
            last = trainer.step()
            bar.update(1)
            if trainer.step_count % 10 == 0:
                bar.set_postfix({k: f"{v:.4f}" for k, v in last.items()})
            if trainer.step_count % cfg.checkpoint_every == 0 or trainer.step_count == cfg.iterations:
                save()
            guard.check()
    bar.close()
    seconds = seconds_before + time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg)
    final = {"format_version": WEAKSEG_VERSION, "kind": "weakseg", "step": trainer.step_count,
             "params": {k: v.detach().cpu() for k, v in trainer.params.items()}, "head": trainer.head.get_state(),
             "classes": classes, "clip_encoder": targets.clip_spec, "dino_encoder": targets.dino_spec,
             "rgb_config": to_dict(rgb_cfg), "sh_degree": rgb_cfg.sh_degree, "white_background": bool(scene.white_background)}
    with atomic_path(out / "weakseg.pt") as tmp:
        torch.save(final, tmp)
    with torch.no_grad():
        emb = torch.nn.functional.normalize(trainer.head.embed(trainer.params["features"]), dim=-1)
        cls = (emb @ trainer.text.T).argmax(-1).cpu().numpy().astype(np.int32)
    export_field_ply(out / "point_cloud.ply", {k: v for k, v in trainer.params.items() if k != "selection"},
                     extra={"class_id": cls})
    metrics = {"method": "weakseg", "iterations": trainer.step_count, "resumed_from_step": resumed_from,
               "seconds": seconds, "seconds_per_iter": (seconds / max(trainer.step_count - resumed_from, 1)) if trainer.step_count > resumed_from else None,
               "n_gaussians": int(trainer.params["means"].shape[0]), "classes": classes, "clip_size": [trainer.h, trainer.w],
               "dino_grid": list(targets.dino.shape[1:3]), "last_losses": last,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": torch.get_num_threads(),
               "device": str(device)}
    write_json(out / "metrics.json", metrics)
    man.extra = {"clip_encoder": targets.clip_spec}
    man.save(out)
    for f in ("latest.pt", "progress.json"):
        (ckpt / f).unlink(missing_ok=True)
    if ckpt.is_dir() and not any(ckpt.iterdir()):
        ckpt.rmdir()
    return metrics


def load_config(path: Path) -> WeaksegConfig:
    """Reload the resolved config saved beside a run."""
    return from_dict(WeaksegConfig, read_json(path))
