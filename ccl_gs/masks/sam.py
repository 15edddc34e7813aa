"""SAM candidate masks at three granularities (subpart / part / whole).

The official ``segment_anything`` package (1.0) is driven directly: every point
prompt of a grid yields SAM's three multimask outputs, which are kept apart as
subpart (output 0), part (1) and whole (2) instead of being flattened into one
list as :class:`segment_anything.SamAutomaticMaskGenerator` does. This is what
LangSplat's fork of segment-anything does (its ``_process_batch`` splits
``masks[:, 0 / 1 / 2]`` into ``data_s / data_m / data_l``), without the fork.

Per granularity, the generator's own steps are applied in its order:

1. predicted IoU ``> pred_iou_thresh`` (0.7 in LangSplat ``preprocess.py``;
   SAM's default is 0.88);
2. stability score ``>= stability_score_thresh`` (0.85 in LangSplat; SAM 0.95),
   with SAM's offset 1.0 on the mask logits;
3. masks whose box touches an inner crop edge are dropped;
4. box NMS per crop at ``box_nms_thresh`` (0.7), scored by predicted IoU;
5. with several crops (``crop_n_layers=1`` in LangSplat), box NMS across crops
   at ``crop_nms_thresh`` (0.7) preferring masks from smaller crops;
6. holes and islands below ``min_mask_region_area`` (100 in LangSplat) are
   removed, followed by box NMS preferring unchanged masks.

All NMS calls use :func:`torchvision.ops.batched_nms` with the granularity as
category, so the three granularities never suppress each other here; they meet
in :func:`ccl_gs.masks.merge.two_level_masks`. Scores are predicted IoU x
stability (LangSplat ``masks_update``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np
import torch
from torch import Tensor

from ccl_gs.masks.types import RawMasks

if TYPE_CHECKING:
    from segment_anything.modeling import Sam

CHECKPOINT_FLAG = "--sam-checkpoint"
"""The command-line flag named in checkpoint errors."""
CHECKPOINT_FILES = {
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
}
"""Official checkpoint file names (https://github.com/facebookresearch/segment-anything#model-checkpoints)."""


class SamCheckpointError(RuntimeError):
    """The SAM checkpoint is missing, unreadable or does not fit the model type."""


@dataclass
class SamConfig:
    """SAM automatic mask generation at three granularities (defaults: LangSplat ``preprocess.py``)."""

    model_type: Literal["vit_h", "vit_l", "vit_b"] = field(
        default="vit_h", metadata={"help": "SAM backbone, as in segment_anything.sam_model_registry."}
    )
    checkpoint: Path = field(
        default=Path("ckpts/sam_vit_h_4b8939.pth"),
        metadata={"help": "Path of the official SAM checkpoint for model_type."},
    )
    points_per_side: int = field(
        default=32, metadata={"help": "Point prompts per image side (32 x 32 grid, CCL-LGS Sec. 3.2)."}
    )
    points_per_batch: int = field(
        default=64, metadata={"help": "Point prompts decoded together (memory vs speed only)."}
    )
    pred_iou_thresh: float = field(
        default=0.7, metadata={"help": "Keep masks whose predicted IoU is above this; 0 disables."}
    )
    stability_score_thresh: float = field(
        default=0.85, metadata={"help": "Keep masks whose stability score is at least this; 0 disables."}
    )
    stability_score_offset: float = field(
        default=1.0, metadata={"help": "Logit offset of the stability score (SAM default)."}
    )
    box_nms_thresh: float = field(
        default=0.7, metadata={"help": "Box IoU threshold of the per-crop, per-granularity NMS."}
    )
    crop_n_layers: int = field(
        default=1, metadata={"help": "Extra layers of image crops (layer i has (2^i)^2 crops); 0 = whole image only."}
    )
    crop_nms_thresh: float = field(
        default=0.7, metadata={"help": "Box IoU threshold of the NMS between crops."}
    )
    crop_overlap_ratio: float = field(
        default=512 / 1500, metadata={"help": "Overlap of neighbouring crops, as a fraction of the image side."}
    )
    crop_n_points_downscale_factor: int = field(
        default=1, metadata={"help": "Points per side in crop layer i are divided by this^i."}
    )
    min_mask_region_area: int = field(
        default=100, metadata={"help": "Holes and islands smaller than this (pixels) are removed; 0 disables."}
    )


# ---------------------------------------------------------------------------
# Models


def load_sam(
    cfg: SamConfig,
    device: str | torch.device = "cpu",
    builder: Callable[[], "Sam"] | None = None,
    flag: str = CHECKPOINT_FLAG,
) -> "Sam":
    """Build a SAM model and load its checkpoint.

    The model is built by ``segment_anything.sam_model_registry[cfg.model_type]``
    (or ``builder``, e.g. :func:`build_tiny_sam` in tests) without weights, then
    the state dict is read here (``map_location="cpu"``, ``weights_only=True``)
    and loaded strictly.

    Raises:
        SamCheckpointError: missing / unreadable / mismatching checkpoint; the
            one-line message names the file and ``flag``.
    """
    from segment_anything import sam_model_registry

    path = Path(cfg.checkpoint)
    if not path.is_file():
        hint = CHECKPOINT_FILES.get(cfg.model_type, "the SAM checkpoint")
        raise SamCheckpointError(
            f"SAM checkpoint not found: {path} (download {hint} from "
            f"https://github.com/facebookresearch/segment-anything#model-checkpoints and pass it with {flag})"
        )
    if builder is None:
        if cfg.model_type not in sam_model_registry:
            raise ValueError(f"unknown SAM model type '{cfg.model_type}'; choose from vit_h, vit_l, vit_b")
        registry_builder = sam_model_registry[cfg.model_type]
        builder = lambda: registry_builder(checkpoint=None)  # noqa: E731
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, zip errors, truncated files ...
        raise SamCheckpointError(f"cannot read SAM checkpoint {path} ({flag}): {type(e).__name__}: {e}") from e
    model = builder()
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SamCheckpointError(
            f"SAM checkpoint {path} ({flag}) does not fit model type '{cfg.model_type}': {first}"
        ) from e
    return model.to(device).eval()


def build_tiny_sam(img_size: int = 64, embed_dim: int = 32, seed: int = 0) -> "Sam":
    """A tiny random-weight SAM of the real ``segment_anything`` classes (tests, smoke runs).

    Image encoder: one ViT block, patch 16; prompt encoder and mask decoder at
    width ``embed_dim``. Runs a 64 x 64 image with a few dozen prompts in well
    under a second on CPU.
    """
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        patch = 16
        grid = img_size // patch
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=img_size,
                patch_size=patch,
                embed_dim=embed_dim,
                depth=1,
                num_heads=2,
                mlp_ratio=2.0,
                out_chans=embed_dim,
                window_size=0,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=embed_dim,
                image_embedding_size=(grid, grid),
                input_image_size=(img_size, img_size),
                mask_in_chans=4,
            ),
            mask_decoder=MaskDecoder(
                transformer_dim=embed_dim,
                transformer=TwoWayTransformer(depth=1, embedding_dim=embed_dim, mlp_dim=2 * embed_dim, num_heads=2),
                num_multimask_outputs=3,
                iou_head_depth=2,
                iou_head_hidden_dim=embed_dim,
            ),
        )
    finally:
        torch.random.set_rng_state(gen_state)
    return sam.eval()


# ---------------------------------------------------------------------------
# The mask source


@dataclass
class _Candidates:
    """Masks of one crop (or image) kept so far, as RLEs plus per-mask tensors."""

    rles: list[dict]
    boxes: Tensor  # [K, 4] xyxy, image frame
    iou: Tensor  # [K] float32
    stability: Tensor  # [K] float32
    granularity: Tensor  # [K] int64
    crop_boxes: Tensor  # [K, 4] xyxy of the crop each mask came from

    @classmethod
    def empty(cls) -> "_Candidates":
        z = torch.zeros(0)
        return cls([], torch.zeros(0, 4), z, z, torch.zeros(0, dtype=torch.int64), torch.zeros(0, 4))

    @classmethod
    def cat(cls, parts: list["_Candidates"]) -> "_Candidates":
        if not parts:
            return cls.empty()
        return cls(
            [r for p in parts for r in p.rles],
            torch.cat([p.boxes for p in parts]),
            torch.cat([p.iou for p in parts]),
            torch.cat([p.stability for p in parts]),
            torch.cat([p.granularity for p in parts]),
            torch.cat([p.crop_boxes for p in parts]),
        )

    def select(self, keep: Tensor) -> "_Candidates":
        idx = keep.nonzero().squeeze(1) if keep.dtype == torch.bool else keep
        il = idx.tolist()
        return _Candidates(
            [self.rles[i] for i in il], self.boxes[idx], self.iou[idx], self.stability[idx],
            self.granularity[idx], self.crop_boxes[idx],
        )


class SamMaskSource:
    """Candidate masks of one image at three granularities from SAM.

    Args:
        model_or_cfg: a loaded ``segment_anything.modeling.Sam`` or a
            :class:`SamConfig` (the model is then loaded with :func:`load_sam`).
        cfg: generation settings when a model is given (default :class:`SamConfig`).
        device: device for loading from a config (default: CUDA if available).

    Example::

        source = SamMaskSource(SamConfig(checkpoint=Path("sam_vit_h_4b8939.pth")))
        raw = source(image)        # image: [H, W, 3] uint8 RGB
        raw.masks.shape            # [M, H, W] bool; raw.granularity [M] in {0, 1, 2}
    """

    def __init__(
        self,
        model_or_cfg: "Sam | SamConfig",
        cfg: SamConfig | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        from segment_anything import SamPredictor
        from segment_anything.utils.amg import build_all_layer_point_grids

        if isinstance(model_or_cfg, SamConfig):
            self.cfg = model_or_cfg
            if device is None:
                device = "cuda" if torch.cuda.is_available() else "cpu"
            model = load_sam(self.cfg, device)
        else:
            self.cfg = cfg or SamConfig()
            model = model_or_cfg
        self.model = model
        self.predictor = SamPredictor(model)
        self.point_grids = build_all_layer_point_grids(
            self.cfg.points_per_side, self.cfg.crop_n_layers, self.cfg.crop_n_points_downscale_factor
        )

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> RawMasks:
        """Masks of ``image`` (``[H, W, 3]`` uint8 RGB) -> :class:`RawMasks` (``[M, H, W]`` bool)."""
        from segment_anything.utils.amg import generate_crop_boxes, rle_to_mask
        from torchvision.ops import batched_nms, box_area

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"SamMaskSource expects an [H, W, 3] uint8 RGB image, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        cfg = self.cfg
        crop_boxes, layer_idxs = generate_crop_boxes((h, w), cfg.crop_n_layers, cfg.crop_overlap_ratio)
        data = _Candidates.cat(
            [self._process_crop(image, box, layer) for box, layer in zip(crop_boxes, layer_idxs)]
        )
        if len(crop_boxes) > 1 and len(data.rles):
            keep = batched_nms(
                data.boxes.float(), 1.0 / box_area(data.crop_boxes).float(), data.granularity, cfg.crop_nms_thresh
            )
            data = data.select(keep)
        if cfg.min_mask_region_area > 0 and len(data.rles):
            data = self._remove_small_regions(data)

        masks = (
            np.stack([rle_to_mask(r) for r in data.rles]).astype(bool)
            if data.rles
            else np.zeros((0, h, w), dtype=bool)
        )
        iou = data.iou.float().numpy()
        stab = data.stability.float().numpy()
        return RawMasks(
            masks=masks,
            granularity=data.granularity.numpy().astype(np.int8),
            scores=(iou * stab).astype(np.float32),
            predicted_iou=iou.astype(np.float32),
            stability=stab.astype(np.float32),
        )

    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer: int) -> _Candidates:
        from segment_anything.utils.amg import batch_iterator, uncrop_boxes_xyxy
        from torchvision.ops import batched_nms

        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        ch, cw = crop.shape[:2]
        self.predictor.set_image(crop)
        points = self.point_grids[layer] * np.array([[cw, ch]])
        parts = [
            self._process_batch(pts, (ch, cw), crop_box, image.shape[:2])
            for (pts,) in batch_iterator(self.cfg.points_per_batch, points)
        ]
        self.predictor.reset_image()
        data = _Candidates.cat(parts)
        if not data.rles:
            return data
        keep = batched_nms(data.boxes.float(), data.iou.float(), data.granularity, self.cfg.box_nms_thresh)
        data = data.select(keep)
        data.boxes = uncrop_boxes_xyxy(data.boxes, crop_box)
        data.crop_boxes = torch.tensor([crop_box], dtype=torch.float32).expand(len(data.rles), 4).clone()
        return data

    def _process_batch(
        self, points: np.ndarray, crop_size: tuple[int, int], crop_box: list[int], image_size: tuple[int, int]
    ) -> _Candidates:
        """Decode a batch of point prompts (``points`` ``[B, 2]`` xy in crop pixels); keep all three outputs."""
        from segment_anything.utils.amg import (
            batched_mask_to_box,
            calculate_stability_score,
            is_box_near_crop_edge,
            mask_to_rle_pytorch,
            uncrop_masks,
        )

        cfg = self.cfg
        orig_h, orig_w = image_size
        dev = self.predictor.device
        coords = torch.as_tensor(self.predictor.transform.apply_coords(points, crop_size), device=dev)
        labels = torch.ones(coords.shape[0], dtype=torch.int, device=dev)
        logits, iou_preds, _ = self.predictor.predict_torch(
            coords[:, None, :], labels[:, None], multimask_output=True, return_logits=True
        )  # [B, 3, h, w], [B, 3]
        n_out = logits.shape[1]
        logits = logits.flatten(0, 1)
        iou = iou_preds.flatten(0, 1)
        gran = torch.arange(n_out, device=dev).repeat(coords.shape[0])

        keep = torch.ones_like(iou, dtype=torch.bool)
        if cfg.pred_iou_thresh > 0.0:
            keep &= iou > cfg.pred_iou_thresh
        logits, iou, gran = logits[keep], iou[keep], gran[keep]
        thr = self.model.mask_threshold
        stab = calculate_stability_score(logits, thr, cfg.stability_score_offset)
        if cfg.stability_score_thresh > 0.0:
            keep = stab >= cfg.stability_score_thresh
            logits, iou, gran, stab = logits[keep], iou[keep], gran[keep], stab[keep]
        binary = logits > thr
        boxes = batched_mask_to_box(binary)
        keep = ~is_box_near_crop_edge(boxes, crop_box, [0, 0, orig_w, orig_h])
        binary, boxes, iou, gran, stab = binary[keep], boxes[keep], iou[keep], gran[keep], stab[keep]
        rles = mask_to_rle_pytorch(uncrop_masks(binary, crop_box, orig_h, orig_w)) if binary.shape[0] else []
        return _Candidates(
            rles, boxes.float().cpu(), iou.float().cpu(), stab.float().cpu(), gran.cpu(),
            torch.zeros(len(rles), 4),
        )

    def _remove_small_regions(self, data: _Candidates) -> _Candidates:
        """SAM's hole / island clean-up, then box NMS preferring unchanged masks (per granularity)."""
        from segment_anything.utils.amg import batched_mask_to_box, mask_to_rle_pytorch, remove_small_regions, rle_to_mask
        from torchvision.ops import batched_nms

        area = self.cfg.min_mask_region_area
        new_masks, unchanged = [], []
        for rle in data.rles:
            m = rle_to_mask(rle)
            m, changed_holes = remove_small_regions(m, area, mode="holes")
            m, changed_islands = remove_small_regions(m, area, mode="islands")
            new_masks.append(torch.as_tensor(m))
            unchanged.append(float(not (changed_holes or changed_islands)))
        masks = torch.stack(new_masks)
        boxes = batched_mask_to_box(masks)
        nms_thresh = max(self.cfg.box_nms_thresh, self.cfg.crop_nms_thresh)
        keep = batched_nms(boxes.float(), torch.tensor(unchanged), data.granularity, nms_thresh)
        for i in keep.tolist():
            if unchanged[i] == 0.0:
                data.rles[i] = mask_to_rle_pytorch(masks[i : i + 1])[0]
                data.boxes[i] = boxes[i].float()
        return data.select(keep)
