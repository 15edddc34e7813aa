"""3D-OVS's training targets as a stage artifact: multi-scale per-pixel CLIP maps and DINO token maps.

    python -m ccl_gs.weakseg.targets --data SCENE --out DIR [--clip-encoder open_clip|oracle] [--dino-encoder dino|oracle_dino]

Per training view (``DIR/views/<stem>.npz``, the shared machinery of
:mod:`ccl_gs.io.view_targets`: manifest, resume, ``--shard i/n``, refusal of
other configs / inputs / encoders):

``clip`` ``[3, h, w, D]`` float16
    per-pixel CLIP image embedding at three crop scales (the release's
    ``extract_clip_feature.py``): the view resized to ``(int(W / d), int(H / d))``
    with ``d = --clip-downsample`` (8), crop sides ``min(w, h) // k`` for
    ``k`` in ``--crop-divisors`` (5, 7, 10: large, medium, small), stride
    ``side // 4``, windows at ``k * stride`` (the last one may overrun and is
    clipped), each side pushed outward by a random ``0 .. side // 4``
    (``--jitter``; seeded per view by ``--seed``, the release's is
    unseeded), clamped to the image; the crop's embedding is assigned to
    its whole rectangle, the encoder sees its central square (CLIP's
    resize-shorter-side + centre-crop, a quirk of the release kept); a
    pixel's feature is the mean over the crops covering it, L2-normalized.
``rgb`` ``[h, w, 3]`` uint8
    the view at the same size (the RGB term of the joint stage).
``dino`` ``[gh, gw, E]`` float16 and ``dino_cell`` (pixels per cell)
    DINO ViT-B/8 last-block tokens (``--dino-facet tokens``) of the view
    resized to ``1 / --dino-downsample`` (5), fed at its own size.
``dino_size`` ``[2]`` int (rows, columns of the DINO input image).

Encoders come from the one registry (:mod:`ccl_gs.encoders`): CLIP through
open_clip or the synthetic oracle (the mixture of ground-truth classes
under the seen square); DINO through timm (the same encoder class as
LERF's, model ``vit_base_patch8_224.dino``) or the synthetic DINO stand-in.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ccl_gs.encoders.open_clip import DEFAULT_MODEL, DEFAULT_PRETRAINED
from ccl_gs.encoders.oracle import OracleConfig, OracleDinoConfig
from ccl_gs.io.artifacts import Manifest
from ccl_gs.io.view_targets import TargetsRun, TargetStage, compute_view_targets, load_view_targets
from ccl_gs.io.view_targets import clip_options, comparable_config, oracle_dino_options, targets_main  # noqa: F401

TARGETS_KIND = "weakseg_targets"
TARGETS_VERSION = 1
CLIP_ENCODERS = ("open_clip", "oracle")
DINO_ENCODERS = ("dino", "oracle_dino")
DINO_B8 = "vit_base_patch8_224.dino"
"""timm name of DINO ViT-B/8 (``torch.hub``'s ``dino_vitb8``, the release's)."""
N_SCALES = 3


class WeaksegTargetsError(RuntimeError):
    """Targets cannot be computed or used; the message says what to do."""


@dataclass
class WeaksegTargetsConfig:
    """What decides the content of a 3D-OVS targets folder (recorded in its manifest)."""

    data: Path = field(default=Path("data/scene"), metadata={"help": "Scene folder."})
    format: str = field(default="auto", metadata={"help": "Scene format: auto | colmap | llff | nerfstudio | blender."})
    factor: int = field(default=1, metadata={"help": "Image downscale factor (as train.py)."})
    test_every: int = field(default=0, metadata={"help": "Hold out every n-th view (as train.py; 3D-OVS trains on all: 0)."})
    clip_encoder: str = field(default="open_clip", metadata={"help": "CLIP encoder: open_clip | oracle."})
    clip_model: str = field(default=DEFAULT_MODEL, metadata={"help": "open_clip model name (the release: ViT-B/16)."})
    clip_pretrained: str = field(default=DEFAULT_PRETRAINED, metadata={"help": "open_clip tag or local checkpoint file (the release: openai)."})
    clip_downsample: float = field(default=8.0, metadata={"help": "CLIP maps at 1/d of the images (the release: 8)."})
    crop_divisors: list[int] = field(default_factory=lambda: [5, 7, 10], metadata={"help": "Crop side = min(w, h) // k per scale (large, medium, small)."})
    jitter: bool = field(default=True, metadata={"help": "Push each crop side outward by a random 0 .. side // 4 (the release)."})
    seed: int = field(default=0, metadata={"help": "Seed of the crop jitter (per view)."})
    dino_encoder: str = field(default="dino", metadata={"help": "DINO encoder: dino | oracle_dino."})
    dino_model: str = field(default=DINO_B8, metadata={"help": "timm model name of DINO (the release: ViT-B/8)."})
    dino_checkpoint: str | None = field(default=None, metadata={"help": "Local DINO weights (dino_vitbase8_pretrain.pth); default: timm's cache."})
    dino_facet: str = field(default="tokens", metadata={"help": "DINO feature: tokens (last block output, the release) | key."})
    dino_downsample: float = field(default=5.0, metadata={"help": "DINO input at 1/d of the images (the release: 5)."})
    oracle: OracleConfig = field(default_factory=OracleConfig)
    oracle_dino: OracleDinoConfig = field(default_factory=OracleDinoConfig)


def dino_options(cfg: WeaksegTargetsConfig) -> dict[str, Any]:
    """Options that rebuild the DINO encoder."""
    if cfg.dino_encoder == "dino":
        return {"model_name": cfg.dino_model, "checkpoint": cfg.dino_checkpoint, "short_side": 0, "facet": cfg.dino_facet}
    return oracle_dino_options(cfg)


def validate(cfg: WeaksegTargetsConfig) -> None:
    """Refuse bad option values before any work (one line each)."""
    checks = [
        (cfg.clip_encoder in CLIP_ENCODERS, f"unknown --clip-encoder '{cfg.clip_encoder}' (known: {', '.join(CLIP_ENCODERS)})"),
        (cfg.dino_encoder in DINO_ENCODERS, f"unknown --dino-encoder '{cfg.dino_encoder}' (known: {', '.join(DINO_ENCODERS)})"),
        (cfg.factor >= 1, f"--factor must be >= 1, got {cfg.factor}"),
        (cfg.test_every >= 0, f"--test-every must be >= 0, got {cfg.test_every}"),
        (cfg.clip_downsample >= 1 and cfg.dino_downsample >= 1, "--clip-downsample and --dino-downsample must be >= 1"),
        (len(cfg.crop_divisors) == N_SCALES and all(k >= 1 for k in cfg.crop_divisors),
         f"--crop-divisors needs {N_SCALES} values >= 1, got {cfg.crop_divisors}"),
        (cfg.dino_facet in ("tokens", "key"), f"--dino-facet must be tokens or key, got '{cfg.dino_facet}'"),
    ]
    for ok, msg in checks:
        if not ok:
            raise WeaksegTargetsError(msg)


def scaled_size(height: int, width: int, downsample: float) -> tuple[int, int]:
    """``(int(H / d), int(W / d))``, at least 1 (the release's ``img_wh``)."""
    return max(int(height / downsample), 1), max(int(width / downsample), 1)


def crop_sides(height: int, width: int, divisors: list[int]) -> list[int]:
    """Crop side per scale: ``min(w, h) // k`` (at least 1)."""
    return [max(min(height, width) // k, 1) for k in divisors]


def window_starts(length: int, side: int, stride: int) -> np.ndarray:
    """Start positions ``k * stride`` for ``k = 0 .. (L - side) // stride + [remainder > 0]`` (the release's grid)."""
    if length <= side:
        return np.zeros(1, np.int64)
    n = (length - side) // stride + 1 + int((length - side) % stride > 0)
    return np.arange(n, dtype=np.int64) * stride


def crop_boxes(height: int, width: int, side: int, rng: np.random.Generator | None) -> np.ndarray:
    """The jittered, clamped crop rectangles of one scale: ``[M, 4]`` int64 ``(row0, col0, row1, col1)``, end-exclusive.

    ``rng`` None: no jitter. Jitter: each side moves outward by an
    independent integer in ``[0, side // 4]`` (inclusive, Python's ``randint``).
    """
    stride = max(side // 4, 1)
    rows, cols = window_starts(height, side, stride), window_starts(width, side, stride)
    r0 = np.repeat(rows, len(cols))
    c0 = np.tile(cols, len(rows))
    box = np.stack([r0, c0, r0 + side, c0 + side], 1)
    if rng is not None:
        j = rng.integers(0, side // 4 + 1, size=box.shape)
        box = box + j * np.array([-1, -1, 1, 1])
    box[:, [0, 2]] = box[:, [0, 2]].clip(0, height)
    box[:, [1, 3]] = box[:, [1, 3]].clip(0, width)
    return box


def seen_square(boxes: np.ndarray) -> np.ndarray:
    """The central square of each rectangle ``[M, 4]``: what CLIP's resize + centre crop keeps."""
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    s = np.minimum(h, w)
    r0 = boxes[:, 0] + (h - s) // 2
    c0 = boxes[:, 1] + (w - s) // 2
    return np.stack([r0, c0, r0 + s, c0 + s], 1)


def encode_squares(encoder, image: Tensor, squares: np.ndarray, view: int, batch_size: int) -> Tensor:
    """Embed square boxes ``[M, 4]`` inside ``image [H, W, 3]`` (grouped by side for :meth:`encode_tiles`): ``[M, D]``."""
    out = torch.empty(len(squares), encoder.dim)
    sides = squares[:, 2] - squares[:, 0]
    for s in np.unique(sides):
        idx = np.nonzero(sides == s)[0]
        out[torch.from_numpy(idx)] = encoder.encode_tiles(image, torch.from_numpy(squares[idx]), view=view,
                                                          batch_size=batch_size).float()
    return out


def pixel_mean(boxes: np.ndarray, emb: Tensor, height: int, width: int) -> Tensor:
    """Mean embedding of the rectangles ``[M, 4]`` covering each pixel: ``[H, W, D]`` (0 where none covers)."""
    acc = torch.zeros(height, width, emb.shape[1])
    cnt = torch.zeros(height, width, 1)
    for (r0, c0, r1, c1), e in zip(boxes.tolist(), emb):
        acc[r0:r1, c0:c1] += e
        cnt[r0:r1, c0:c1] += 1
    return acc / cnt.clamp_min(1)


def resize_image(image: Tensor, height: int, width: int) -> Tensor:
    """``[H, W, 3]`` float in [0, 1] -> ``[height, width, 3]`` with PIL's Lanczos filter (the release's loader)."""
    from PIL import Image

    if tuple(image.shape[:2]) == (height, width):
        return image.float().cpu()
    arr = (image.float().cpu().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    out = Image.fromarray(arr).resize((width, height), Image.LANCZOS)
    return torch.from_numpy(np.asarray(out).astype(np.float32) / 255.0)


def feature_cell(encoder) -> int:
    """Input pixels per feature cell of a dense encoder (a ViT's patch, the DINO stand-in's stride)."""
    cell = getattr(encoder, "cell", None) or getattr(encoder, "stride", None)
    if not cell:
        raise WeaksegTargetsError(f"dense encoder {encoder.name} does not say its cell size")
    return int(cell)


def _encoders(cfg: WeaksegTargetsConfig) -> dict[str, tuple[str, dict[str, Any]]]:
    validate(cfg)
    return {"clip_encoder": (cfg.clip_encoder, clip_options(cfg)), "dino_encoder": (cfg.dino_encoder, dino_options(cfg))}


def _geometry(cfg: WeaksegTargetsConfig, height: int, width: int) -> dict[str, Any]:
    h, w = scaled_size(height, width, cfg.clip_downsample)
    return {"clip_size": [h, w], "crop_sides": crop_sides(h, w, cfg.crop_divisors),
            "dino_size": list(scaled_size(height, width, cfg.dino_downsample))}


def _encode_view(cfg: WeaksegTargetsConfig, extra: dict[str, Any], item: dict[str, Any], encoders: dict[str, Any],
                 run: TargetsRun) -> dict[str, np.ndarray]:
    vi = int(item["index"])
    h, w = extra["clip_size"]
    small = resize_image(item["image"], h, w)
    rng = np.random.default_rng([cfg.seed, vi]) if cfg.jitter else None
    maps = []
    for side in extra["crop_sides"]:
        boxes = crop_boxes(h, w, side, rng)
        emb = encode_squares(encoders["clip_encoder"], small, seen_square(boxes), vi, run.batch_size)  # [M, D]
        maps.append(torch.nn.functional.normalize(pixel_mean(boxes, emb, h, w), dim=-1))
    hd, wd = extra["dino_size"]
    dino_in = resize_image(item["image"], hd, wd)
    dino = encoders["dino_encoder"].encode_image(dino_in, view=vi)  # [gh, gw, E]
    return {"clip": torch.stack(maps).half().numpy(), "rgb": (small.numpy() * 255 + 0.5).astype(np.uint8),
            "dino": dino.half().numpy(), "dino_cell": np.array(feature_cell(encoders["dino_encoder"])),
            "dino_size": np.array([hd, wd])}


STAGE = TargetStage(
    kind=TARGETS_KIND, version=TARGETS_VERSION, title="3D-OVS targets", command="python -m ccl_gs.weakseg.targets",
    error=WeaksegTargetsError, encoders=_encoders, comparable=comparable_config, geometry=_geometry, encode=_encode_view,
)
"""The 3D-OVS target stage on the shared per-view machinery (:mod:`ccl_gs.io.view_targets`)."""


@dataclass
class WeaksegTargets:
    """Loaded targets of every training view (what :mod:`ccl_gs.weakseg.train` reads)."""

    manifest: Manifest
    clip: Tensor
    """``[V, 3, h, w, D]`` float16, unit per pixel (0 where no crop covers)."""
    rgb: Tensor
    """``[V, h, w, 3]`` uint8."""
    dino: Tensor
    """``[V, gh, gw, E]`` float16."""
    dino_cell: int
    dino_size: tuple[int, int]
    views: list[int]
    stems: list[str]

    @property
    def clip_spec(self) -> dict[str, Any]:
        return self.manifest.extra["clip_encoder"]

    @property
    def dino_spec(self) -> dict[str, Any]:
        return self.manifest.extra["dino_encoder"]


def from_dict_targets(d: dict[str, Any]) -> WeaksegTargetsConfig:
    """A :class:`WeaksegTargetsConfig` from its recorded (comparable) form."""
    from ccl_gs.config import from_dict

    return from_dict(WeaksegTargetsConfig, d, strict=False)


def compute_targets(cfg: WeaksegTargetsConfig, run: TargetsRun, clip_encoder=None, dino_encoder=None) -> dict[str, Any]:
    """Compute (or resume, or reuse) the targets of ``cfg`` into ``run.out``; returns a summary."""
    validate(cfg)
    given = {k: v for k, v in (("clip_encoder", clip_encoder), ("dino_encoder", dino_encoder)) if v is not None}
    s = compute_view_targets(STAGE, cfg, run, given)
    return {**s, "clip": s.pop("clip_encoder"), "dino": s.pop("dino_encoder")}


def load_targets(folder: str | Path, cfg: WeaksegTargetsConfig | None = None) -> WeaksegTargets:
    """Load a complete, current targets folder (``cfg``: the scene options of the run that reads it)."""
    man, arrays = load_view_targets(STAGE, folder, cfg, from_dict_targets)
    a0 = arrays[0]
    return WeaksegTargets(
        man, torch.stack([torch.from_numpy(a["clip"]) for a in arrays]), torch.stack([torch.from_numpy(a["rgb"]) for a in arrays]),
        torch.stack([torch.from_numpy(a["dino"]) for a in arrays]), int(a0["dino_cell"]),
        (int(a0["dino_size"][0]), int(a0["dino_size"][1])), list(man.extra["views"]), list(man.extra["stems"]),
    )


def main(argv: list[str] | None = None) -> int:
    return targets_main(WeaksegTargetsConfig, compute_targets, WeaksegTargetsError, "3D-OVS targets", "python -m ccl_gs.weakseg.targets",
                        __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
