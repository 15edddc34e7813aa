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

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ccl_gs.encoders.dino import DINO_MODEL
from ccl_gs.encoders.open_clip import DEFAULT_MODEL, DEFAULT_PRETRAINED
from ccl_gs.encoders.oracle import OracleConfig, OracleDinoConfig
from ccl_gs.io.artifacts import parse_shard as _parse_shard
from ccl_gs.io.artifacts import Manifest
from ccl_gs.io.view_targets import TargetsRun, TargetStage, compute_view_targets, load_view_targets
from ccl_gs.io.view_targets import clip_options, comparable_config, oracle_dino_options, targets_main  # noqa: F401
from ccl_gs.io.view_targets import build_manifest as _build_manifest
from ccl_gs.io.view_targets import scene_views as _scene_views
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


class TargetsError(RuntimeError):
    """Targets cannot be computed or used; the message says what to do."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` (:func:`ccl_gs.io.artifacts.parse_shard`, raising :class:`TargetsError`)."""
    return _parse_shard(text, TargetsError)


def dino_options(cfg: TargetsConfig) -> dict[str, Any]:
    """Options that rebuild the DINO encoder."""
    if cfg.dino_encoder == "dino":
        return {"model_name": cfg.dino_model, "checkpoint": cfg.dino_checkpoint, "short_side": cfg.dino_short_side}
    return oracle_dino_options(cfg)


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


def _encoders(cfg: TargetsConfig) -> dict[str, tuple[str, dict[str, Any]]]:
    validate(cfg)
    return {"clip_encoder": (cfg.clip_encoder, clip_options(cfg)), "dino_encoder": (cfg.dino_encoder, dino_options(cfg))}


def _geometry(cfg: TargetsConfig, height: int, width: int) -> dict[str, Any]:
    return {"grids": [g.__dict__ for g in tile_grids(height, width, cfg.pyramid)]}


def _encode_view(cfg: TargetsConfig, extra: dict[str, Any], item: dict[str, Any], encoders: dict[str, Any],
                 run: TargetsRun) -> dict[str, np.ndarray]:
    """The pyramid (``clip_<level> [rows + 1, cols + 1, D]``) and the DINO map (``dino [h, w, E]``) of one view, float16."""
    image, vi = item["image"], int(item["index"])
    arrays: dict[str, np.ndarray] = {}
    for lv, g in enumerate(TileGrid(**g) for g in extra["grids"]):
        emb = encoders["clip_encoder"].encode_tiles(image, g.boxes(), view=vi, batch_size=run.batch_size)  # [rows * cols, D]
        arrays[f"clip_{lv}"] = pad_grid(emb.view(g.rows, g.cols, -1)).half().numpy()
    arrays["dino"] = encoders["dino_encoder"].encode_image(image, view=vi).half().numpy()
    return arrays


STAGE = TargetStage(
    kind=TARGETS_KIND, version=TARGETS_VERSION, title="LERF targets", command="python -m ccl_gs.lerf.targets",
    error=TargetsError, encoders=_encoders, comparable=comparable_config, geometry=_geometry, encode=_encode_view,
)
"""LERF's target stage on the shared per-view machinery (:mod:`ccl_gs.io.view_targets`)."""


def scene_views(cfg: TargetsConfig, device: torch.device | str = "cpu"):
    """The scene and its training views at the run's resolution (the RGB trainers' rule)."""
    return _scene_views(cfg, device)


def build_manifest(cfg: TargetsConfig, scene, views) -> Manifest:
    """The expected manifest of ``cfg`` on these views (without the encoder specs, added when they are built)."""
    return _build_manifest(STAGE, cfg, scene, views)


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


def compute_targets(cfg: TargetsConfig, run: TargetsRun, clip_encoder=None, dino_encoder=None) -> dict[str, Any]:
    """Compute (or resume, or reuse) the targets of ``cfg`` into ``run.out``; returns a summary.

    ``clip_encoder`` / ``dino_encoder``: already built encoders (tests);
    otherwise built from the config through the encoder registry.
    """
    validate(cfg)
    given = {k: v for k, v in (("clip_encoder", clip_encoder), ("dino_encoder", dino_encoder)) if v is not None}
    s = compute_view_targets(STAGE, cfg, run, given)
    return {**s, "clip": s.pop("clip_encoder"), "dino": s.pop("dino_encoder")}


def load_targets(folder: str | Path, cfg: TargetsConfig | None = None) -> Targets:
    """Load a complete, current targets folder.

    ``cfg``: the scene options of the run that will use them; the folder must
    have been computed for the same scene, resolution and split.

    Raises:
        TargetsError: missing, incomplete, stale or for another scene; the
            message names the folder and the command that fixes it.
    """
    man, arrays = load_view_targets(STAGE, folder, cfg, from_dict_targets)
    grids = [TileGrid(**g) for g in man.extra["grids"]]
    clip = [torch.stack([torch.from_numpy(a[f"clip_{lv}"]) for a in arrays]) for lv in range(len(grids))]
    dino = torch.stack([torch.from_numpy(a["dino"]) for a in arrays])
    return Targets(man, grids, clip, dino, list(man.extra["views"]))


def from_dict_targets(d: dict[str, Any]) -> TargetsConfig:
    """A :class:`TargetsConfig` from its recorded (comparable) form."""
    from ccl_gs.config import from_dict

    return from_dict(TargetsConfig, d, strict=False)


def main(argv: list[str] | None = None) -> int:
    return targets_main(TargetsConfig, compute_targets, TargetsError, "lerf targets", "python -m ccl_gs.lerf.targets",
                        __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
