"""SAM2 video propagation of first-frame masks, and track labels by IoU.

CCL-LGS ties masks of different views together through a video tracker:
``K`` masks of the first view are propagated through the views (taken as a
video along the camera path) with SAM2, and every mask of every level in every
view receives the label ``y`` of the propagated mask it overlaps best
(IoU > 0.5), or ``-1``. The contrastive codebook pulls prototypes of equal
labels together and pushes different labels apart.

Pieces, each usable alone:

* :func:`order_views` - a video order of the views (greedy nearest camera
  centre, starting from view 0).
* :class:`Sam2Tracker` - an explicit-state generator API over SAM2's video
  predictor, in SAM2's own style::

      tracker = Sam2Tracker.from_config(Sam2Config(checkpoint=Path("sam2.1_hiera_large.pt")))
      state = tracker.init_state(frames)             # V x [H, W, 3] uint8
      tracker.add_masks(state, 0, first_masks)       # [K, H, W] bool -> ids 1..K
      for frame_idx, track_ids, masks in tracker.propagate(state):
          ...                                        # [K] int32, [K, H, W] bool

* :func:`mask_iou` / :func:`label_masks` - vectorized IoU of all masks against
  all tracks and the best-IoU labelling (any masks, one matrix product), and
  :func:`label_index_maps`, the same labels for non-overlapping masks given as
  index maps via pixel-pair counts (what stage 1 uses; far cheaper at 1080 px).

Frames are handed to SAM2 in memory: SAM2 1.1.0's ``init_state`` only accepts
a JPEG folder or an MP4 path, so :meth:`Sam2Tracker.init_state` replaces the
frame loader that ``init_state`` calls (for the duration of that one call) by
one returning the frames already resized and normalized exactly as SAM2's JPEG
loader does. No lossy JPEG round trip, no temporary files.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

SAM2_MEAN = (0.485, 0.456, 0.406)
SAM2_STD = (0.229, 0.224, 0.225)
"""Normalization SAM2's frame loaders apply (ImageNet statistics)."""


class Sam2Error(RuntimeError):
    """SAM2 cannot be built or run (missing checkpoint, bad config, bad frames)."""


@dataclass
class Sam2Config:
    """SAM2 video predictor used to propagate first-view masks through the views."""

    config: str = field(
        default="configs/sam2.1/sam2.1_hiera_l.yaml",
        metadata={"help": "SAM2 config name inside the sam2 package (sam2.1 hiera t/s/b+/l)"},
    )
    checkpoint: Path | None = field(
        default=None,
        metadata={"help": "SAM2 checkpoint file (e.g. sam2.1_hiera_large.pt); required by the 'sam2' track source"},
    )
    hydra_overrides: list[str] = field(
        default_factory=list,
        metadata={"help": "extra hydra overrides for the SAM2 config (e.g. ++model.image_size=512)"},
    )
    iou_threshold: float = field(
        default=0.5, metadata={"help": "a mask takes a track's label when their IoU exceeds this"}
    )
    max_tracks: int = field(
        default=0,
        metadata={"help": "at most this many first-view wp masks are tracked, largest first (0 = all)"},
    )
    offload_video_to_cpu: bool = field(
        default=False, metadata={"help": "keep the video frames in CPU memory during propagation (saves GPU memory)"}
    )
    offload_state_to_cpu: bool = field(
        default=False,
        metadata={"help": "keep SAM2's per-frame memory in CPU memory (long videos, many tracks; slower)"},
    )


def order_views(centers: np.ndarray, start: int = 0) -> list[int]:
    """A video order of the views: greedy nearest camera centre.

    Starting at view ``start``, repeatedly step to the nearest (Euclidean,
    camera centres) view not visited yet; ties go to the lower index. For
    captures taken along a path (LLFF, LERF, 3D-OVS) this recovers the path,
    so consecutive frames overlap as SAM2's memory expects. O(V^2), fine for
    the hundreds of views of a scene.

    Args:
        centers: ``[V, 3]`` camera centres in world coordinates.
        start: the first view (its masks seed the tracks).
    Returns:
        A permutation of ``range(V)`` beginning with ``start``.
    """
    centers = np.asarray(centers, dtype=np.float64)
    V = centers.shape[0]
    if V == 0:
        return []
    if not 0 <= start < V:
        raise ValueError(f"start view {start} out of range for {V} views")
    d = np.linalg.norm(centers[:, None, :] - centers[None, :, :], axis=-1)  # [V, V]
    visited = np.zeros(V, dtype=bool)
    order = [start]
    visited[start] = True
    cur = start
    for _ in range(V - 1):
        row = np.where(visited, np.inf, d[cur])
        cur = int(np.argmin(row))  # argmin returns the first (lowest index) minimum
        order.append(cur)
        visited[cur] = True
    return order


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every mask of ``a`` with every mask of ``b`` (one matrix product).

    Args:
        a: ``[M, H, W]`` bool.
        b: ``[K, H, W]`` bool.
    Returns:
        ``[M, K]`` float32 IoU (0 where both masks are empty).
    """
    M, K = a.shape[0], b.shape[0]
    if M == 0 or K == 0:
        return torch.zeros(M, K)
    af = a.reshape(M, -1).float()
    bf = b.reshape(K, -1).float()
    inter = af @ bf.T  # [M, K]
    union = af.sum(1, keepdim=True) + bf.sum(1)[None, :] - inter
    return inter / union.clamp_min(1.0)


def label_masks(
    masks: np.ndarray,  # [M, H, W] bool
    track_masks: np.ndarray,  # [K, H, W] bool
    track_ids: np.ndarray,  # [K] int32
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """Label each mask with the id of its best-IoU track, if that IoU > ``iou_threshold``.

    Args:
        masks: ``[M, H, W]`` bool masks of one view (any level).
        track_masks: ``[K, H, W]`` bool propagated masks of the same view.
        track_ids: ``[K]`` int track ids (>= 1).
    Returns:
        ``[M]`` int32 labels in ``track_ids`` or -1.
    """
    M = masks.shape[0]
    if M == 0 or track_masks.shape[0] == 0:
        return np.full(M, -1, dtype=np.int32)
    if masks.shape[1:] != track_masks.shape[1:]:
        raise ValueError(f"masks {masks.shape[1:]} and track masks {track_masks.shape[1:]} differ in size")
    iou = mask_iou(torch.from_numpy(np.ascontiguousarray(masks)), torch.from_numpy(np.ascontiguousarray(track_masks)))
    best, arg = iou.max(1)  # [M], [M]
    ids = torch.from_numpy(np.asarray(track_ids, dtype=np.int32))[arg]
    return torch.where(best > iou_threshold, ids, torch.full_like(ids, -1)).numpy().astype(np.int32)


def label_index_maps(
    index_maps: np.ndarray,  # [L, H, W] int32
    n_masks: int,
    track_masks: np.ndarray,  # [K, H, W] bool
    track_ids: np.ndarray,  # [K] int32
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """:func:`label_masks` for masks given as per-level index maps (the fast path).

    Masks of one level do not overlap, so mask ``m`` is the set of pixels where
    ``index_maps[l] == m`` (each row appears in one level's map only) and every
    intersection count is a ``bincount`` over (mask, track) pixel pairs:
    O(L x sum of track areas) instead of the O(M x K x H x W) of a mask-by-mask
    product. Gives exactly :func:`label_masks`'s labels for the masks
    ``index_maps[l] == m``.

    Args:
        index_maps: ``[L, H, W]`` int, row of the mask covering each pixel, -1 for none.
        n_masks: ``M``, the number of rows.
        track_masks: ``[K, H, W]`` bool.
        track_ids: ``[K]`` int track ids.
    Returns:
        ``[M]`` int32 labels in ``track_ids`` or -1.
    """
    M, K = int(n_masks), track_masks.shape[0]
    if M == 0 or K == 0:
        return np.full(M, -1, dtype=np.int32)
    if index_maps.shape[1:] != track_masks.shape[1:]:
        raise ValueError(f"index maps {index_maps.shape[1:]} and track masks {track_masks.shape[1:]} differ in size")
    L = index_maps.shape[0]
    flat = np.ascontiguousarray(index_maps).reshape(L, -1).astype(np.int64) + 1  # [L, P], 0 = no mask
    trf = np.ascontiguousarray(track_masks, dtype=bool).reshape(K, -1)  # [K, P]
    area_m = np.bincount(flat.ravel(), minlength=M + 1)[1 : M + 1]  # [M]
    area_t = np.count_nonzero(trf, axis=1)  # [K]
    tk, pix = np.nonzero(trf)  # (track, pixel) pairs
    inter = np.zeros((M + 1) * K, dtype=np.int64)
    for level in range(L):
        inter += np.bincount(flat[level, pix] * K + tk, minlength=(M + 1) * K)
    inter = inter.reshape(M + 1, K)[1:].astype(np.float64)  # [M, K]
    union = area_m[:, None] + area_t[None, :] - inter
    iou = (inter / np.maximum(union, 1.0)).astype(np.float32)
    arg = iou.argmax(1)
    best = iou[np.arange(M), arg]
    ids = np.asarray(track_ids, dtype=np.int32)[arg]
    return np.where(best > iou_threshold, ids, -1).astype(np.int32)


def build_sam2_video_predictor(
    config_name: str,
    ckpt_path: str | Path | None,
    device: str | torch.device = "cpu",
    hydra_overrides: Sequence[str] = (),
    require_checkpoint: bool = True,
) -> Any:
    """Build SAM2's video predictor with SAM2's own builder.

    A missing checkpoint raises :class:`Sam2Error` naming the file and the
    ``--sam2-checkpoint`` flag. ``require_checkpoint=False`` with
    ``ckpt_path=None`` gives random weights (tests only).
    """
    if ckpt_path is None and require_checkpoint:
        raise Sam2Error("no SAM2 checkpoint given: pass --sam2-checkpoint <file> (e.g. sam2.1_hiera_large.pt)")
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        raise Sam2Error(f"SAM2 checkpoint not found: {ckpt_path} (set --sam2-checkpoint)")
    try:
        from sam2.build_sam import build_sam2_video_predictor as _build
    except ImportError as e:  # pragma: no cover - sam2 is a dependency
        raise Sam2Error(f"the sam2 package is not installed ({e})") from e
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return _build(
            config_name,
            str(ckpt_path) if ckpt_path is not None else None,
            device=str(device),
            hydra_overrides_extra=list(hydra_overrides),
        )
    except (HydraException, OmegaConfBaseException) as e:
        raise Sam2Error(f"cannot build SAM2 from config '{config_name}': {str(e).splitlines()[0]}") from e
    except (RuntimeError, KeyError) as e:
        if ckpt_path is not None:
            raise Sam2Error(f"SAM2 checkpoint {ckpt_path} does not fit config '{config_name}': {e}") from e
        raise


_LOADER_LOCK = threading.Lock()


@contextlib.contextmanager
def _frames_in_memory(frames: Tensor, height: int, width: int) -> Iterator[None]:
    """Make SAM2's ``init_state`` take ``frames`` instead of reading a video path."""
    import sam2.sam2_video_predictor as svp

    def loader(**kwargs: Any) -> tuple[Tensor, int, int]:
        dev = kwargs.get("compute_device", frames.device)
        out = frames if kwargs.get("offload_video_to_cpu") else frames.to(dev)
        return out, height, width

    with _LOADER_LOCK:
        original = svp.load_video_frames
        svp.load_video_frames = loader
        try:
            yield
        finally:
            svp.load_video_frames = original


def sam2_frames(frames: Sequence[np.ndarray], image_size: int) -> Tensor:
    """Frames as SAM2's JPEG loader prepares them.

    Each frame is resized (PIL's default filter, bicubic) to
    ``image_size x image_size``, scaled to [0, 1] and normalized with
    :data:`SAM2_MEAN` / :data:`SAM2_STD`.

    Args:
        frames: ``V`` arrays ``[H, W, 3]`` uint8.
    Returns:
        ``[V, 3, S, S]`` float32, S = ``image_size``.
    """
    from PIL import Image

    out = torch.empty(len(frames), 3, image_size, image_size)
    mean = torch.tensor(SAM2_MEAN)[:, None, None]
    std = torch.tensor(SAM2_STD)[:, None, None]
    for i, f in enumerate(frames):
        im = Image.fromarray(np.asarray(f, dtype=np.uint8)).resize((image_size, image_size))
        t = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
        out[i] = (t - mean) / std
    return out


class Sam2Tracker:
    """Propagates masks through a sequence of frames with SAM2's video predictor.

    The state is an explicit object (SAM2's inference state plus the frame
    sizes), so a caller can add masks, propagate, and stop half way.
    """

    def __init__(self, predictor: Any, offload_video_to_cpu: bool = False, offload_state_to_cpu: bool = False) -> None:
        self.predictor = predictor
        self.offload_video_to_cpu = offload_video_to_cpu
        self.offload_state_to_cpu = offload_state_to_cpu

    @classmethod
    def from_config(
        cls, cfg: Sam2Config, device: str | torch.device | None = None, require_checkpoint: bool = True
    ) -> "Sam2Tracker":
        """Build the predictor named by ``cfg`` on ``device`` (CUDA if available by default)."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        predictor = build_sam2_video_predictor(
            cfg.config, cfg.checkpoint, device, cfg.hydra_overrides, require_checkpoint=require_checkpoint
        )
        return cls(predictor, cfg.offload_video_to_cpu, cfg.offload_state_to_cpu)

    @property
    def device(self) -> torch.device:
        return self.predictor.device

    def init_state(self, frames: Sequence[np.ndarray]) -> dict:
        """Start a video of ``frames`` (in video order).

        Args:
            frames: ``V`` arrays ``[H_v, W_v, 3]`` uint8. Frames may differ in
                size; SAM2 runs at the size of frame 0 and outputs are resized
                to each frame's own size.
        Returns:
            The state: ``{"sam2": <SAM2 inference state>, "sizes": [(H, W)] * V, "track_ids": []}``.
        """
        if len(frames) == 0:
            raise Sam2Error("no frames to propagate through")
        for i, f in enumerate(frames):
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                raise Sam2Error(f"frame {i}: expected uint8 [H, W, 3], got {f.dtype} {f.shape}")
        sizes = [(int(f.shape[0]), int(f.shape[1])) for f in frames]
        H, W = sizes[0]
        tensor = sam2_frames(frames, int(self.predictor.image_size))
        with torch.inference_mode(), _frames_in_memory(tensor, H, W):
            inner = self.predictor.init_state(
                video_path="<in-memory>",
                offload_video_to_cpu=self.offload_video_to_cpu,
                offload_state_to_cpu=self.offload_state_to_cpu,
            )
        return {"sam2": inner, "sizes": sizes, "track_ids": []}

    def add_masks(
        self,
        state: dict,
        frame_idx: int,
        masks: np.ndarray,  # [K, H, W] bool
        track_ids: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Seed tracks with masks on one frame.

        Args:
            masks: ``[K, H, W]`` bool at frame ``frame_idx``'s size.
            track_ids: ``K`` ids (>= 1); by default the next free ids
                ``n+1 .. n+K`` after those already added.
        Returns:
            ``[K]`` int32 track ids.
        """
        n0 = len(state["track_ids"])
        K = masks.shape[0]
        ids = np.arange(n0 + 1, n0 + K + 1, dtype=np.int32) if track_ids is None else np.asarray(track_ids, np.int32)
        if ids.shape != (K,) or (ids < 1).any():
            raise ValueError(f"need {K} track ids >= 1, got {ids.tolist()}")
        if masks.shape[1:] != state["sizes"][frame_idx]:
            raise ValueError(f"masks of size {masks.shape[1:]} for frame {frame_idx} of size {state['sizes'][frame_idx]}")
        H, W = state["sizes"][0]
        with torch.inference_mode():
            for k in range(K):
                m = torch.from_numpy(np.ascontiguousarray(masks[k]))
                if m.shape != (H, W):
                    m = F.interpolate(m[None, None].float(), size=(H, W), mode="nearest")[0, 0] > 0.5
                self.predictor.add_new_mask(state["sam2"], frame_idx=frame_idx, obj_id=int(ids[k]), mask=m)
        state["track_ids"].extend(int(i) for i in ids)
        return ids

    def propagate(self, state: dict, start_frame_idx: int | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Propagate the seeded tracks forward through the frames.

        Yields:
            ``(frame_idx, track_ids [K] int32, masks [K, H, W] bool)`` per frame,
            in frame order from the first seeded frame; ``H, W`` is that frame's size.
        """
        if not state["track_ids"]:
            raise Sam2Error("no masks added: call add_masks before propagate")
        with torch.inference_mode():
            for frame_idx, obj_ids, logits in self.predictor.propagate_in_video(
                state["sam2"], start_frame_idx=start_frame_idx
            ):
                H, W = state["sizes"][frame_idx]
                logits = logits[:, 0].float()  # [K, H0, W0]
                if logits.shape[-2:] != (H, W):
                    logits = F.interpolate(logits[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
                yield frame_idx, np.asarray(obj_ids, dtype=np.int32), (logits > 0).cpu().numpy()


def select_first_masks(masks: np.ndarray, max_tracks: int = 0) -> np.ndarray:
    """The first-view masks to track: non-empty ones, largest first, at most ``max_tracks`` (0 = all).

    Args:
        masks: ``[M, H, W]`` bool (the wp-level masks of the first view).
    Returns:
        ``[K]`` int64 row indices into ``masks``.
    """
    area = masks.reshape(masks.shape[0], -1).sum(1)
    idx = np.argsort(-area, kind="stable")
    idx = idx[area[idx] > 0]
    return idx[:max_tracks] if max_tracks > 0 else idx


def propagate_tracks(
    tracker: Sam2Tracker,
    frames: Sequence[np.ndarray],
    first_masks: np.ndarray,
    order: Sequence[int],
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Track ``first_masks`` of view ``order[0]`` through all views in ``order``.

    A generator, so a caller can write each view's tracks as they come
    without holding all of them.

    Args:
        frames: ``V`` arrays ``[H_v, W_v, 3]`` uint8, indexed by view.
        first_masks: ``[K, H, W]`` bool masks of view ``order[0]``; they get ids 1..K.
        order: a permutation of the views (see :func:`order_views`).
    Yields:
        ``(view, track_masks [K_v, H_v, W_v] bool, track_ids [K_v] int32)`` for
        every view, in video order, holding the tracks non-empty in that view.
    """
    V = len(frames)
    if sorted(order) != list(range(V)):
        raise ValueError("order must be a permutation of the views")
    if first_masks.shape[0] == 0:
        for v in order:
            h, w = frames[v].shape[:2]
            yield v, np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.int32)
        return
    state = tracker.init_state([frames[v] for v in order])
    tracker.add_masks(state, 0, first_masks)
    for t, ids, masks in tracker.propagate(state):
        keep = masks.reshape(masks.shape[0], -1).any(1)
        yield order[t], np.ascontiguousarray(masks[keep]), ids[keep].astype(np.int32)
