"""Stage 3: train the semantic Gaussian field against codebook index maps.

Two schedules, chosen by name in :data:`SCHEDULES`:

* ``"frozen"`` (LangSplat-style, the CPU default): geometry and colour come
  from a finished RGB run (``train.py``) and stay fixed; only the per-Gaussian
  feature and the decoder are optimized.
* ``"joint"`` (the paper's): colour and feature are trained together from
  scratch; the feature is one more per-Gaussian parameter that
  densification clones, splits and prunes with the rest.

Outputs (folder ``--out``): ``field.pt`` (versioned dict: Gaussians incl.
``features [N, d_f]``, decoder weights, codebook prototypes, encoder name),
``point_cloud.ply`` (3DGS layout + ``f_lang_0..7`` + ``proto_<level>``),
``config.json``, ``manifest.json`` (fingerprints of the RGB run and the
codebook, so a stale input is detected), ``metrics.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ccl_gs.config import from_dict, to_dict
from ccl_gs.field.model import DecoderConfig, FeatureDecoder, semantic_loss
from ccl_gs.io.artifacts import ArtifactError, Manifest, atomic_path, file_hash, load_npz, read_json, write_json
from ccl_gs.splat.trainer import RGBTrainConfig, Trainer, device_for_run, load_checkpoint, load_datasets

FIELD_VERSION = 2
"""Bumped when the field checkpoint layout changes (2: decoder heads carry a no-mask logit)."""


@dataclass
class FieldConfig:
    """Options of semantic field training."""

    codebook: Path = field(default=Path("outputs/scene/codebook"), metadata={"help": "Codebook artifact folder (stage 2)."})
    out: Path = field(default=Path("outputs/scene/field"), metadata={"help": "Output folder."})
    rgb_run: Path = field(
        default=Path("outputs/scene/rgb"), metadata={"help": "Finished RGB run (frozen schedule) or its config (joint)."}
    )
    schedule: str = field(default="frozen", metadata={"help": "frozen (features on fixed geometry) | joint (paper)."})
    iterations: int = field(default=1500, metadata={"help": "Feature optimization steps (joint: total steps)."})
    lr_features: float = field(default=2.5e-3, metadata={"help": "Adam lr of the per-Gaussian features (LangSplat's)."})
    lr_decoder: float = field(default=1e-3, metadata={"help": "Adam lr of the decoder (paper: 1e-3)."})
    semantic_weight: float = field(default=1.0, metadata={"help": "Weight of the cross-entropy (joint schedule)."})
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    seed: int = field(default=0, metadata={"help": "Random seed."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})


@dataclass
class CodebookArtifact:
    """What the field needs from stage 2."""

    prototypes: list[Tensor]
    """Per level ``[N_l, D]`` unit-norm prototypes."""
    maps: dict[str, np.ndarray]
    """Image stem -> ``[L, H, W]`` int32 prototype index maps (-1 = none)."""
    manifest: Manifest


def load_codebook(folder: Path) -> CodebookArtifact:
    """The stage-2 artifact through the codebook stage's own loader, plus its per-image index maps."""
    from ccl_gs.codebook.train import load_codebook as load_stage

    folder = Path(folder)
    res = load_stage(folder)  # validates kind, version and completeness
    maps = {}
    for f in sorted(folder.glob("*.npz")):
        if f.name != "codebook.npz":
            maps[f.stem] = load_npz(f, keys=("proto_maps",))["proto_maps"]
    return CodebookArtifact([p.float() for p in res.prototypes], maps, res.manifest)


def target_maps(cb: CodebookArtifact, stem: str, height: int, width: int, n_levels: int) -> Tensor:
    """Index maps of one view at the render size: ``[L, H, W]`` int64 (nearest resize)."""
    if stem not in cb.maps:
        raise ArtifactError(f"codebook artifact has no index map for image '{stem}'")
    m = torch.as_tensor(cb.maps[stem][:n_levels].astype(np.int64))
    if m.shape[-2:] != (height, width):
        m = F.interpolate(m[None].float(), size=(height, width), mode="nearest")[0].long()
    return m


def render_features(params, item: dict[str, Any], device: torch.device, backend: str | None = None) -> Tensor:
    """Rasterize the per-Gaussian features of one view: ``[H, W, d_f]``."""
    from ccl_gs.splat.rasterize import rasterize

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
    )
    return colors[0]


class FieldTrainer:
    """Optimizes per-Gaussian features + decoder (frozen schedule) or everything (joint)."""

    def __init__(self, cfg: FieldConfig, rgb_cfg: RGBTrainConfig, codebook: CodebookArtifact):
        self.cfg = cfg
        self.codebook = codebook
        self.device = device_for_run()
        self.scene, self.train_set, self.test_set = load_datasets(rgb_cfg, self.device)
        torch.manual_seed(cfg.seed)
        sizes = [p.shape[0] for p in codebook.prototypes]  # one codebook per level (shared ones are stored twice)
        self.decoder = FeatureDecoder(cfg.decoder, sizes).to(self.device)
        self.rgb = Trainer(rgb_cfg, self.train_set, self.scene, extra_dims={"features": cfg.decoder.feature_dim})
        if cfg.schedule == "frozen":
            ckpt = load_checkpoint(Path(cfg.rgb_run) / "ckpt" / "latest.pt")
            g = torch.Generator().manual_seed(cfg.seed)
            params = {k: v.to(self.device) for k, v in ckpt["params"].items()}
            N = params["means"].shape[0]
            params["features"] = (0.01 * torch.randn(N, cfg.decoder.feature_dim, generator=g)).to(self.device)
            self.params = torch.nn.ParameterDict(
                {k: torch.nn.Parameter(v, requires_grad=(k == "features")) for k, v in params.items()}
            )
            self.opt_features = torch.optim.Adam([self.params["features"]], lr=cfg.lr_features)
        else:
            self.params = self.rgb.params
            self.opt_features = None
        self.opt_decoder = torch.optim.Adam(self.decoder.parameters(), lr=cfg.lr_decoder)
        self.step_count = 0
        self._rng = np.random.default_rng(cfg.seed)
        self._order: list[int] = []

    def _stem(self, item: dict[str, Any]) -> str:
        return Path(self.scene.image_paths[int(item["index"])]).stem

    def feature_loss(self, item: dict[str, Any], params=None) -> Tensor:
        """Cross-entropy of the decoded rendered features of ``item`` vs its index maps."""
        feats = render_features(params if params is not None else self.params, item, self.device)
        targets = target_maps(
            self.codebook, self._stem(item), int(item["height"]), int(item["width"]), self.decoder.n_levels
        ).to(self.device)
        return semantic_loss(self.decoder(feats), targets)

    def step(self) -> dict[str, float]:
        """One step; returns the semantic loss (and RGB stats in the joint schedule)."""
        if self.cfg.schedule == "joint":
            holder: dict[str, float] = {}

            def extra(item, meta):
                sem = self.feature_loss(item, self.rgb.params)
                holder["sem"] = float(sem)
                return self.cfg.semantic_weight * sem

            stats = self.rgb.step(extra_loss=extra)
            self.opt_decoder.step()
            self.opt_decoder.zero_grad(set_to_none=True)
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
        self.opt_decoder.step()
        self.opt_features.zero_grad(set_to_none=True)
        self.opt_decoder.zero_grad(set_to_none=True)
        self.step_count += 1
        return {"sem": float(loss.detach()), "n": int(self.params["means"].shape[0])}

    @torch.no_grad()
    def pixel_accuracy(self, dataset) -> float:
        """Fraction of pixels whose decoded index (a prototype or "no mask") equals the target, over ``dataset``."""
        hit, tot = 0, 0
        for i in range(len(dataset)):
            item = dataset[i]
            feats = render_features(self.params, item, self.device)
            idx = self.decoder.decode_indices(feats)
            t = target_maps(
                self.codebook, self._stem(item), int(item["height"]), int(item["width"]), self.decoder.n_levels
            ).to(self.device)
            hit += int((idx == t).sum())
            tot += int(t.numel())
        return hit / max(tot, 1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "format_version": FIELD_VERSION,
            "kind": "semantic_field",
            "step": self.step_count,
            "config": to_dict(self.cfg),
            "rgb_config": to_dict(self.rgb.cfg),
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "decoder": self.decoder.state_dict(),
            "decoder_config": to_dict(self.cfg.decoder),
            "n_prototypes": self.decoder.n_prototypes,
            "prototypes": [p.cpu() for p in self.codebook.prototypes],
            "encoder": dict(self.codebook.manifest.extra.get("encoder", {})),
            "sh_degree": self.rgb.cfg.sh_degree,
            "white_background": bool(self.scene.white_background),
        }


SCHEDULES = ("frozen", "joint")


def field_inputs(cfg: FieldConfig) -> dict[str, str]:
    """Fingerprints of the inputs (the manifest's ``inputs``): stale inputs force a redo."""
    cb = Manifest.load(cfg.codebook, kind="codebook")
    out = {"codebook": cb.fingerprint()}
    if cfg.schedule == "frozen":
        out["rgb_ckpt"] = file_hash(Path(cfg.rgb_run) / "ckpt" / "latest.pt")
    return out


def run_field(cfg: FieldConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train the semantic field (or reuse a current one); returns metrics."""
    from tqdm import tqdm

    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"--schedule must be one of {SCHEDULES}, got '{cfg.schedule}'")
    out = Path(cfg.out)
    rgb_cfg_path = Path(cfg.rgb_run) / "config.json"
    if not rgb_cfg_path.exists():
        raise ArtifactError(f"missing RGB run config {rgb_cfg_path}; run train.py first or fix --rgb-run")
    rgb_cfg = from_dict(RGBTrainConfig, read_json(rgb_cfg_path))
    inputs = field_inputs(cfg)
    manifest = Manifest(kind="semantic_field", format_version=FIELD_VERSION, config=to_dict(cfg), inputs=inputs)
    if (out / "manifest.json").exists() and (out / "field.pt").exists() and (out / "metrics.json").exists():
        old = Manifest.load(out)
        if old.fingerprint() == manifest.fingerprint():
            m = read_json(out / "metrics.json")
            m["reused"] = True
            return m
    codebook = load_codebook(cfg.codebook)
    if cfg.schedule == "joint":
        rgb_cfg.iterations = cfg.iterations
        rgb_cfg.out = out / "joint_rgb"
    trainer = FieldTrainer(cfg, rgb_cfg, codebook)
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.iterations, disable=not cfg.progress, desc=f"train field ({cfg.schedule})", dynamic_ncols=True)
    while trainer.step_count < cfg.iterations:
        stats = trainer.step()
        bar.update(1)
        if trainer.step_count % 10 == 0:
            bar.set_postfix({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in stats.items()})
        if on_step is not None:
            on_step(trainer.step_count)
    bar.close()
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg)
    if cfg.schedule == "joint":
        write_json(out / "joint_rgb" / "config.json", rgb_cfg)
    with atomic_path(out / "field.pt") as tmp:
        torch.save(trainer.state_dict(), tmp)
    from ccl_gs.field.export import export_field_ply

    export_field_ply(out / "point_cloud.ply", trainer.params, trainer.decoder)
    metrics = {
        "schedule": cfg.schedule,
        "iterations": trainer.step_count,
        "seconds": seconds,
        "n_gaussians": int(trainer.params["means"].shape[0]),
        "train_label_accuracy": trainer.pixel_accuracy(trainer.train_set),
        "test_label_accuracy": trainer.pixel_accuracy(trainer.test_set) if len(trainer.test_set) else float("nan"),
    }
    write_json(out / "metrics.json", metrics)
    manifest.extra = {"encoder": trainer.state_dict()["encoder"]}
    manifest.save(out)
    return metrics
