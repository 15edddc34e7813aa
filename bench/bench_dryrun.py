#!/usr/bin/env python
"""Real-size dry runs of SAM, SAM2 and CLIP with random weights on CPU, and a memory estimate of a real scene.

    .venv/bin/python bench/bench_dryrun.py [--threads 2] [--only sam|sam2|clip|estimate] [--tracks 8]

No checkpoints are bundled, so each model is the real class at its real size
with random weights, run at real input sizes through the project's own
wrappers, each part in its own subprocess. Its peak resident memory is the
child's ``ru_maxrss`` from ``os.wait4`` (Python, torch and the imports take
about 0.8 GiB of it; the RSS before the model is built is recorded); its wall
and CPU seconds cover the work after the model is built:

1. ``sam``: ``sam_model_registry["vit_b"](checkpoint=None)`` in
   :class:`ccl_gs.masks.sam.SamMaskSource` (LangSplat thresholds, 32 x 32
   points, ``points_per_batch`` 64, input 1024) on two synthetic 1008 x 756
   images, then :func:`ccl_gs.masks.merge.two_level_masks`. ``--sam-crop-layers``
   defaults to 0 (whole image only) to keep the run near 10 min; the
   project's default (1: four more crops, each one more encoder pass and 1024
   more prompts) is extrapolated from the measured seconds per crop.
2. ``sam2``: ``configs/sam2.1/sam2.1_hiera_t.yaml`` with ``ckpt_path=None``
   through :func:`ccl_gs.masks.propagate.propagate_tracks` (:class:`Sam2Tracker`):
   8 synthetic frames of 1008 x 756 (a scene panning 6 px per frame), the
   ``--tracks`` largest object masks of frame 0 as seeds.
3. ``clip``: :class:`ccl_gs.encoders.open_clip.OpenClipEncoder` with
   ``ViT-B-16, pretrained=None`` encoding 100 masked crops (224 px) of one
   1008 x 756 image with ``encode_masks`` (stage 1's batch of 32).
4. ``estimate`` (no model runs): memory of a 300-view LERF-OVS scene at
   1920 x 1080 from the formulas in :func:`estimate_terms`, with parameter
   counts of the project's default models (built on the ``meta`` device;
   SAM2 on the CPU, its Hiera calls ``.item()`` while building) and
   the project's configs (stage-1 working size, SAM / SAM2 settings, LERF
   tiling, SH degree). The same formulas evaluated at the dry-run sizes are
   printed beside the measured peaks as a check.

With random weights SAM's predicted IoU stays near 0 and its stability score
at 0, so no candidate passes LangSplat's filters: the SAM figures cover the
model (encoder, prompt decoding, upsampling to the image, filters), not the
RLE / NMS / merge of surviving masks (``bench/bench_masks.py`` measures the
merge at 1008 x 756 with 300 candidates).

Writes ``bench/results/dryrun.json`` (``--only`` replaces the parts run and
keeps the others). On a shared machine wall-clock timings are noisy: the
load average and the CPU seconds are recorded beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ccl_gs.io.artifacts import read_json, write_json  # noqa: E402

RESULTS = REPO / "bench" / "results" / "dryrun.json"
MEASURED = ("sam", "sam2", "clip")
PARTS = (*MEASURED, "estimate")
WIDTH, HEIGHT = 1008, 756
"""Dry-run image size (the LLFF photos at factor 4)."""
SAM2_TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"
GIB = 2.0**30
MIB = 2.0**20


# ----------------------------------------------------------------------------------------- inputs
def synthetic_scene(h: int, w: int, n: int, seed: int, shift: tuple[float, float] = (0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """A smooth background with ``n`` coloured ellipses: ``[h, w, 3]`` uint8 and their visible masks ``[n, h, w]`` bool.

    Later ellipses cover earlier ones; ``shift`` (dx, dy pixels) moves every
    ellipse, so frames of one seed with growing shifts form a panning video.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 * np.ones_like(xx)], -1) * 160 + 40
    cx, cy = rng.uniform(0, w, n) + shift[0], rng.uniform(0, h, n) + shift[1]
    rx, ry = rng.uniform(0.03, 0.25, n) * w, rng.uniform(0.03, 0.25, n) * h
    colours = rng.uniform(0, 255, (n, 3))
    owner = np.full((h, w), -1, np.int32)
    for i in range(n):
        inside = ((xx - cx[i]) / rx[i]) ** 2 + ((yy - cy[i]) / ry[i]) ** 2 < 1.0
        img[inside] = colours[i]
        owner[inside] = i
    masks = owner[None] == np.arange(n)[:, None, None]
    return np.clip(img, 0, 255).astype(np.uint8), masks


def _rss_mib() -> float:
    """Current resident memory of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _tensor_bytes(obj: Any, seen: set[int]) -> int:
    """Bytes of the tensor storages reachable from ``obj`` (dicts, lists, tuples), each storage once."""
    if isinstance(obj, torch.Tensor):
        ptr = obj.untyped_storage().data_ptr()
        if ptr in seen:
            return 0
        seen.add(ptr)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v, seen) for v in obj)
    return 0


def _timed(fn: Callable, acc: list[float]) -> Callable:
    """``fn`` appending its wall time per call to ``acc``."""

    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            acc.append(time.perf_counter() - t)

    return wrapper


# ----------------------------------------------------------------------------------------- parts
def run_sam(args: argparse.Namespace) -> dict:
    """SAM ViT-B (random weights) in the project's mask source on two 1008 x 756 images, then the merge."""
    from segment_anything import sam_model_registry
    from segment_anything.utils.amg import generate_crop_boxes

    from ccl_gs.masks.merge import MergeConfig, two_level_masks
    from ccl_gs.masks.sam import SamConfig, SamMaskSource

    images = [synthetic_scene(HEIGHT, WIDTH, 40, seed=i)[0] for i in range(args.sam_images)]
    rss_before = _rss_mib()
    t = time.perf_counter()
    torch.manual_seed(0)
    model = sam_model_registry["vit_b"](checkpoint=None).eval()
    cfg = SamConfig(model_type="vit_b", points_per_side=args.points_per_side,
                    points_per_batch=args.points_per_batch, crop_n_layers=args.sam_crop_layers)
    source = SamMaskSource(model, cfg, device="cpu")
    build_s = time.perf_counter() - t
    rss_built = _rss_mib()
    encode_s: list[float] = []
    batch_s: list[float] = []
    source.predictor.set_image = _timed(source.predictor.set_image, encode_s)
    source._process_batch = _timed(source._process_batch, batch_s)
    n_crops = len(generate_crop_boxes((HEIGHT, WIDTH), cfg.crop_n_layers, cfg.crop_overlap_ratio)[0])
    default = SamConfig()
    n_crops_default = len(generate_crop_boxes((HEIGHT, WIDTH), default.crop_n_layers, default.crop_overlap_ratio)[0])
    per_image = []
    for i, img in enumerate(images):
        e0, b0 = len(encode_s), len(batch_s)
        t, c = time.perf_counter(), time.process_time()
        raw = source(img)
        gen_s, gen_cpu = time.perf_counter() - t, time.process_time() - c
        t = time.perf_counter()
        lm = two_level_masks(raw, MergeConfig())
        merge_s = time.perf_counter() - t
        row = {
            "seconds": gen_s, "cpu_seconds": gen_cpu, "merge_seconds": merge_s,
            "encoder_seconds": sum(encode_s[e0:]), "prompt_batches": len(batch_s) - b0,
            "prompt_batch_seconds_mean": float(np.mean(batch_s[b0:])) if len(batch_s) > b0 else 0.0,
            "raw_masks": list(raw.masks.shape), "raw_per_granularity": np.bincount(raw.granularity, minlength=3).tolist(),
            "level_masks": list(lm.masks.shape), "index_maps": list(lm.index_maps.shape), "peak_rss_mib": _peak_mib(),
        }
        per_image.append(row)
        print(f"  sam image {i}: {gen_s:.1f} s ({row['encoder_seconds']:.1f} s encoder, {row['prompt_batches']} prompt "
              f"batches x {row['prompt_batch_seconds_mean']:.2f} s), raw masks {row['raw_masks']}, "
              f"merge {merge_s:.2f} s -> {row['level_masks']}, peak {_peak_mib():.0f} MiB", flush=True)
    seconds = float(np.mean([r["seconds"] for r in per_image]))
    cpu = float(np.mean([r["cpu_seconds"] for r in per_image]))
    return {
        "model": "segment_anything vit_b, random weights",
        "params": sum(p.numel() for p in model.parameters()),
        "input": {"images": len(images), "width": WIDTH, "height": HEIGHT, "sam_input": int(model.image_encoder.img_size),
                  "points_per_side": cfg.points_per_side, "points_per_batch": cfg.points_per_batch,
                  "crop_n_layers": cfg.crop_n_layers, "crops": n_crops,
                  "pred_iou_thresh": cfg.pred_iou_thresh, "stability_score_thresh": cfg.stability_score_thresh},
        "build_seconds": build_s, "rss_before_build_mib": rss_before, "rss_after_build_mib": rss_built,
        "seconds_per_image": seconds, "cpu_seconds_per_image": cpu, "per_image": per_image,
        "extrapolated_seconds_per_image_default_crops": seconds * n_crops_default / n_crops,
        "default_crop_n_layers": default.crop_n_layers, "default_crops": n_crops_default,
        "outputs": {"raw_masks": per_image[-1]["raw_masks"], "level_masks": per_image[-1]["level_masks"]},
    }


def run_sam2(args: argparse.Namespace) -> dict:
    """SAM2 hiera-t (random weights) propagating ``--tracks`` frame-0 masks through ``--frames`` full-size frames."""
    import sam2.build_sam  # noqa: F401  (imported before the baseline RSS, as the other parts' libraries)

    from ccl_gs.masks.propagate import Sam2Tracker, build_sam2_video_predictor, propagate_tracks, select_first_masks

    n_obj = max(args.tracks, 12)
    scenes = [synthetic_scene(HEIGHT, WIDTH, n_obj, seed=100, shift=(6.0 * f, 0.0)) for f in range(args.frames)]
    frames = [s[0] for s in scenes]
    first = scenes[0][1]
    seeds = first[select_first_masks(first, args.tracks)]
    rss_before = _rss_mib()
    t = time.perf_counter()
    torch.manual_seed(0)
    predictor = build_sam2_video_predictor(SAM2_TINY, None, "cpu", require_checkpoint=False)
    tracker = Sam2Tracker(predictor)
    states: list[dict] = []
    init_state = tracker.init_state
    tracker.init_state = lambda fr: states.append(init_state(fr)) or states[-1]  # keep the state to weigh it
    build_s = time.perf_counter() - t
    rss_built = _rss_mib()
    per_frame = []
    t, c = time.perf_counter(), time.process_time()
    last = t
    for view, masks, ids in propagate_tracks(tracker, frames, seeds, list(range(len(frames)))):
        now = time.perf_counter()
        per_frame.append({"view": int(view), "seconds": now - last, "track_masks": list(masks.shape),
                          "rss_mib": _rss_mib(), "peak_rss_mib": _peak_mib()})
        print(f"  sam2 frame {view}: {now - last:.1f} s, tracks {list(masks.shape)}, peak {_peak_mib():.0f} MiB", flush=True)
        last = now
    total, cpu = time.perf_counter() - t, time.process_time() - c
    inner = states[0]["sam2"]
    memory_mib = _tensor_bytes(inner["output_dict_per_obj"], set()) / MIB
    frames_mib = _tensor_bytes(inner["images"], set()) / MIB
    print(f"  sam2 state: per-object memory {memory_mib:.1f} MiB, frames {frames_mib:.1f} MiB", flush=True)
    return {
        "model": f"sam2 {Path(SAM2_TINY).stem}, random weights",
        "params": sum(p.numel() for p in predictor.parameters()),
        "input": {"frames": len(frames), "width": WIDTH, "height": HEIGHT, "sam2_input": int(predictor.image_size),
                  "tracks": int(seeds.shape[0])},
        "build_seconds": build_s, "rss_before_build_mib": rss_before, "rss_after_build_mib": rss_built,
        "seconds": total, "cpu_seconds": cpu, "seconds_per_frame": total / len(frames),
        "seconds_first_frame": per_frame[0]["seconds"],
        "seconds_per_track_frame": (total - per_frame[0]["seconds"]) / max((len(frames) - 1) * seeds.shape[0], 1),
        "per_frame": per_frame,
        "state_mib": {"per_object_memory": memory_mib, "video_frames": frames_mib},
        "outputs": {"seed_masks": list(seeds.shape), "track_masks_last_frame": per_frame[-1]["track_masks"]},
    }


def run_clip(args: argparse.Namespace) -> dict:
    """OpenCLIP ViT-B-16 (random weights) in the project's encoder on ``--crops`` masked crops of one image."""
    import open_clip  # noqa: F401  (imported before the baseline RSS)

    from ccl_gs.encoders.open_clip import OpenClipEncoder
    from ccl_gs.preprocess.config import RunOptions

    img, _ = synthetic_scene(HEIGHT, WIDTH, 40, seed=7)
    # Independent ellipses (they may overlap), as SAM masks of one level would cover a view.
    masks = np.concatenate([synthetic_scene(HEIGHT, WIDTH, 1, seed=1000 + i)[1] for i in range(args.crops)])
    batch = RunOptions().encode_batch
    rss_before = _rss_mib()
    t = time.perf_counter()
    torch.manual_seed(0)
    enc = OpenClipEncoder("ViT-B-16", pretrained=None, device="cpu", batch_size=batch)
    build_s = time.perf_counter() - t
    rss_built = _rss_mib()
    image = torch.from_numpy(img.astype(np.float32) / 255.0)
    t, c = time.perf_counter(), time.process_time()
    feats = enc.encode_masks(image, torch.from_numpy(masks), batch_size=batch)
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    text = enc.encode_text(["a teapot"])
    print(f"  clip: {seconds:.1f} s for {masks.shape[0]} crops -> {list(feats.shape)}, peak {_peak_mib():.0f} MiB", flush=True)
    return {
        "model": f"open_clip ViT-B-16, random weights ({enc.name})",
        "params": sum(p.numel() for p in enc.model.parameters()),
        "input": {"crops": int(masks.shape[0]), "crop_size": enc.crop_size, "batch": batch, "width": WIDTH, "height": HEIGHT},
        "build_seconds": build_s, "rss_before_build_mib": rss_before, "rss_after_build_mib": rss_built,
        "seconds": seconds, "cpu_seconds": cpu, "seconds_per_crop": seconds / masks.shape[0],
        "outputs": {"features": list(feats.shape), "text": list(text.shape),
                    "unit_norm": bool(torch.allclose(feats.norm(dim=1), torch.ones(feats.shape[0]), atol=1e-4))},
    }


RUNNERS: dict[str, Callable[[argparse.Namespace], dict]] = {"sam": run_sam, "sam2": run_sam2, "clip": run_clip}


def run_child(part: str, args: argparse.Namespace, out: Path) -> int:
    """In the child process: run one part, write its JSON (or the error) to ``out``."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_start = list(os.getloadavg())
    try:
        res: dict = RUNNERS[part](args)
    except Exception as e:  # a failure at real size is a finding: keep it
        import traceback

        res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
    res["peak_rss_self_mib"] = _peak_mib()
    res["threads"] = torch.get_num_threads()
    res["loadavg_start"], res["loadavg_end"] = load_start, list(os.getloadavg())
    write_json(out, res)
    return 0


def run_part(part: str, argv: list[str]) -> dict:
    """Run ``part`` in a subprocess: its result plus ``peak_rss_mib`` (``ru_maxrss`` of that child), wall and CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "part.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", part, "--child-out", str(out)]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        res = read_json(out) if out.is_file() else {
            "error": f"child exited with {proc.returncode} before writing a result (killed, e.g. out of memory?)"}
    res["peak_rss_mib"] = usage.ru_maxrss / 1024.0
    res["process_seconds"] = wall
    res["process_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return res


# ----------------------------------------------------------------------------------------- estimate
@dataclass
class EstimateConfig:
    """The scene and the counts the estimate assumes (model sizes and settings come from the project's configs)."""

    views: int = field(default=300, metadata={"help": "Views of the scene (all used by stage 1; training drops every test_every-th)."})
    width: int = field(default=1920, metadata={"help": "Capture width."})
    height: int = field(default=1080, metadata={"help": "Capture height."})
    tracks: int = field(default=50, metadata={"help": "SAM2 tracks: wp masks of the first view (sam2.max_tracks = 0 tracks all)."})
    raw_masks: int = field(default=300, metadata={"help": "SAM candidates of one view entering the merge (bench_masks' set)."})
    masks_per_view: int = field(default=200, metadata={"help": "Masks of one view after the merge, sp + wp."})
    gaussians: int = field(default=1_000_000, metadata={"help": "Gaussians of the trained scene."})
    tiles_per_gaussian: float = field(default=8.0, metadata={"help": "16 x 16 screen tiles a Gaussian touches (rasterizer intersections)."})


@dataclass
class Term:
    """One memory term: ``bytes`` from ``formula``; ``resident`` terms add up within a stage, ``transient`` ones do not coexist."""

    stage: str
    name: str
    where: str  # "gpu" or "host"
    kind: str  # "resident" or "transient"
    formula: str
    bytes: float


def _meta(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """A model built on the ``meta`` device (shapes, no memory)."""
    with torch.device("meta"):
        return build()


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@dataclass
class ModelFacts:
    """What the formulas read off the models."""

    sam_type: str
    sam_params: int
    sam_input: int
    sam_patch: int
    sam_heads: int
    sam2_config: str
    sam2_params: int
    sam2_input: int
    sam2_mem_dim: int
    sam2_d_model: int
    sam2_maskmem: int
    sam2_ptr_tokens: int
    sam2_trunk_dim: int
    sam2_fpn_dim: int
    clip_params: int
    clip_tokens: int
    clip_width: int
    clip_heads: int
    clip_dim: int
    lerf_params: int


def model_facts(sam_type: str, sam2_config: str) -> ModelFacts:
    """Parameter counts and sizes of a SAM type, a SAM2 config, CLIP ViT-B-16 and the LERF model (meta device but SAM2)."""
    import open_clip
    from segment_anything import sam_model_registry

    from ccl_gs.lerf.model import LerfModel, LerfModelConfig
    from ccl_gs.masks.propagate import build_sam2_video_predictor

    sam = _meta(lambda: sam_model_registry[sam_type](checkpoint=None))
    enc = sam.image_encoder
    # SAM2's Hiera calls .item() while building, which the meta device refuses: built on the CPU.
    sam2 = build_sam2_video_predictor(sam2_config, None, "cpu", require_checkpoint=False)
    clip = _meta(lambda: open_clip.create_model("ViT-B-16", pretrained=None, device="meta"))
    v = clip.visual
    grid = v.grid_size if isinstance(v.grid_size, int) else v.grid_size[0] * v.grid_size[1]
    lerf = _meta(lambda: LerfModel(LerfModelConfig(), clip_dim=int(clip.text_projection.shape[1]), dino_dim=384))
    return ModelFacts(
        sam_type=sam_type, sam_params=_n_params(sam), sam_input=int(enc.img_size),
        sam_patch=int(enc.patch_embed.proj.kernel_size[0]), sam_heads=int(enc.blocks[0].attn.num_heads),
        sam2_config=sam2_config, sam2_params=_n_params(sam2), sam2_input=int(sam2.image_size),
        sam2_mem_dim=int(sam2.mem_dim), sam2_d_model=int(sam2.hidden_dim), sam2_maskmem=int(sam2.num_maskmem),
        sam2_ptr_tokens=int(sam2.max_obj_ptrs_in_encoder * sam2.hidden_dim // sam2.mem_dim),
        sam2_trunk_dim=int(sam2.image_encoder.trunk.patch_embed.proj.out_channels),
        sam2_fpn_dim=int(sam2.image_encoder.neck.d_model),
        clip_params=_n_params(clip), clip_tokens=int(grid) + 1, clip_width=int(v.transformer.width),
        clip_heads=int(v.transformer.resblocks[0].attn.num_heads), clip_dim=int(clip.text_projection.shape[1]),
        lerf_params=_n_params(lerf),
    )


def stage1_terms(f: ModelFacts, views: int, h: int, w: int, tracks: int, raw_masks: int,
                 points_per_batch: int, encode_batch: int) -> list[Term]:
    """Stage 1 at working size ``h x w``, in its two steps.

    ``tracks``: SAM on the first view, then SAM2 through all views (its state
    lives only in this step); ``images``: per view SAM, the merge and CLIP.
    """
    S, T = f.sam_input, (f.sam_input // f.sam_patch) ** 2
    S2, g2 = f.sam2_input, (f.sam2_input // 16) ** 2
    mem_tokens = f.sam2_maskmem * g2 + f.sam2_ptr_tokens
    B = points_per_batch
    tr, im = "stage1 tracks", "stage1 images"
    sam_w = (f"SAM {f.sam_type} weights", "gpu", "resident", f"{f.sam_params:,} params x 4 B", f.sam_params * 4)
    return [
        Term(tr, *sam_w),
        Term(tr, f"SAM2 {Path(f.sam2_config).stem} weights", "gpu", "resident",
             f"{f.sam2_params:,} params x 4 B", f.sam2_params * 4),
        Term(tr, "SAM2 video frames", "gpu", "resident",
             f"{views} frames x 3 x {S2}^2 x 4 B (offload_video_to_cpu moves them to host)", views * 3 * S2 * S2 * 4),
        Term(tr, "SAM2 per-object memory, all frames", "gpu", "resident",
             f"{tracks} tracks x {views} frames x ({f.sam2_mem_dim} x {S2 // 16}^2 x 2 B bf16 + {S2 // 4}^2 x 4 B masks"
             f" + {f.sam2_d_model} x 4 B ptr) + one shared {f.sam2_mem_dim} x {S2 // 16}^2 x 4 B position encoding"
             " (offload_state_to_cpu moves it to host)",
             tracks * views * (f.sam2_mem_dim * g2 * 2 + (S2 // 4) ** 2 * 4 + f.sam2_d_model * 4) + f.sam2_mem_dim * g2 * 4),
        Term(tr, "SAM2 image encoder activations", "gpu", "transient",
             f"{S2 // 4}^2 tokens x 9 x {f.sam2_trunk_dim} (a first-stage block: input, norm, qkv, output, 4x MLP) x 4 B"
             f" + {f.sam2_fpn_dim} x ({S2 // 4}^2 + {S2 // 8}^2 + {S2 // 16}^2) FPN x 4 B",
             ((S2 // 4) ** 2 * 9 * f.sam2_trunk_dim + f.sam2_fpn_dim * ((S2 // 4) ** 2 + (S2 // 8) ** 2 + (S2 // 16) ** 2)) * 4),
        # propagate_in_video runs the objects one at a time (batch_size=1): one object's attention inputs are live.
        Term(tr, "SAM2 memory attention, one object", "gpu", "transient",
             f"{mem_tokens} memory tokens x (2 x {f.sam2_mem_dim} memory + pos, 3 x {f.sam2_d_model} k, v, rope k) x 4 B",
             mem_tokens * (2 * f.sam2_mem_dim + 3 * f.sam2_d_model) * 4),
        Term(tr, "SAM2 output logits of a frame", "gpu", "transient", f"{tracks} tracks x {h}x{w} x 4 B", tracks * h * w * 4),
        Term(tr, "views for SAM2 (uint8)", "host", "resident", f"{views} views x {h}x{w} x 3 B", views * h * w * 3),
        Term(tr, "SAM2 frames before the device copy", "host", "transient",
             f"{views} frames x 3 x {S2}^2 x 4 B (sam2_frames; kept with offload_video_to_cpu)", views * 3 * S2 * S2 * 4),
        Term(im, *sam_w),
        Term(im, "SAM global attention", "gpu", "transient",
             f"3 copies (scores, +rel-pos, softmax) x {f.sam_heads} heads x {T}^2 tokens x 4 B", 3 * f.sam_heads * T**2 * 4),
        Term(im, "SAM prompt batch", "gpu", "transient",
             f"{B} prompts x [3 x ({S}^2 + 2 x {h}x{w}) logits + 256x{S // 16}^2 + 64x{S // 8}^2 + 32x{S // 4}^2 decoder] x 4 B",
             B * (3 * (S * S + 2 * h * w) + 256 * (S // 16) ** 2 + 64 * (S // 8) ** 2 + 32 * (S // 4) ** 2) * 4),
        Term(im, "SAM candidates of a view (merge)", "gpu", "transient",
             f"{raw_masks} masks x {h}x{w} x 1 B (bool)", raw_masks * h * w),
        Term(im, "CLIP ViT-B-16 weights", "gpu", "resident", f"{f.clip_params:,} params x 4 B", f.clip_params * 4),
        Term(im, "CLIP crop batch", "gpu", "transient",
             f"{encode_batch} crops x ({f.clip_heads} heads x {f.clip_tokens}^2 + 8 x {f.clip_tokens} x {f.clip_width}) x 4 B",
             encode_batch * (f.clip_heads * f.clip_tokens**2 + 8 * f.clip_tokens * f.clip_width) * 4),
    ]


def estimate_terms(cfg: EstimateConfig, f: ModelFacts) -> tuple[list[Term], dict]:
    """All terms of the scene: stage 1, its artifacts, the LERF baseline and the Gaussian field."""
    from ccl_gs.field.model import DecoderConfig
    from ccl_gs.lerf.model import LerfModelConfig
    from ccl_gs.lerf.pyramid import PyramidConfig, tile_grids
    from ccl_gs.lerf.targets import TargetsConfig
    from ccl_gs.lerf.train import LerfTrainConfig
    from ccl_gs.masks.sam import SamConfig
    from ccl_gs.preprocess.config import PreprocessConfig, RunOptions, target_size
    from ccl_gs.splat.gaussians import num_sh_bases
    from ccl_gs.splat.trainer import RGBTrainConfig

    V, W, H = cfg.views, cfg.width, cfg.height
    pre = PreprocessConfig()
    w1, h1 = target_size(W, H, pre.max_side)
    terms = stage1_terms(f, V, h1, w1, cfg.tracks, cfg.raw_masks, SamConfig().points_per_batch, RunOptions().encode_batch)
    M, D = cfg.masks_per_view, f.clip_dim
    terms += [
        Term("artifacts", "mask CLIP features", "host", "resident", f"{V} views x {M} masks x {D} x 2 B (fp16)", V * M * D * 2),
        Term("artifacts", "index maps", "host", "resident", f"{V} views x 2 levels x {h1}x{w1} x 4 B (int32)", V * 2 * h1 * w1 * 4),
    ]
    lerf = LerfTrainConfig()
    test_every = lerf.test_every
    Vt = V - len(range(0, V, test_every)) if test_every else V
    grids = tile_grids(H, W, PyramidConfig())
    tiles = sum((g.rows + 1) * (g.cols + 1) for g in grids)
    short = TargetsConfig().dino_short_side
    dh, dw = (round(H * short / min(H, W)) // 8, round(W * short / min(H, W)) // 8)
    R, k = lerf.rays_per_batch, LerfModelConfig().lerf_samples
    lang = LerfModelConfig().language
    enc_dim = sum(lang.grid_levels) * lang.features
    terms += [
        Term("lerf", "training images", "host", "resident", f"{Vt} views x {H}x{W} x 3 x 4 B", Vt * H * W * 3 * 4),
        Term("lerf", "CLIP pyramid targets", "host", "resident",
             f"{Vt} views x {tiles} padded tiles ({len(grids)} scales: "
             + ", ".join(f"{g.rows + 1}x{g.cols + 1}" for g in grids) + f") x {D} x 2 B (fp16)", Vt * tiles * D * 2),
        Term("lerf", "DINO targets", "host", "resident", f"{Vt} views x {dh}x{dw} x 384 x 2 B (fp16)", Vt * dh * dw * 384 * 2),
        Term("lerf", "LERF model + Adam", "host", "resident",
             f"{f.lerf_params:,} params x 4 B x 4 (weights, grads, 2 moments)", f.lerf_params * 16),
        Term("lerf", "language head activations of a batch", "host", "transient",
             f"{R} rays x {k} samples x ({enc_dim} + {lang.clip_layers} x {lang.clip_hidden} + {D} + {lang.dino_hidden} + 384) x 4 B x 2 (backward)",
             R * k * (enc_dim + lang.clip_layers * lang.clip_hidden + D + lang.dino_hidden + 384) * 4 * 2),
    ]
    sh = RGBTrainConfig().sh_degree
    per_g = 3 + 3 + 4 + 1 + 3 * num_sh_bases(sh)
    d_f = DecoderConfig().feature_dim
    N = cfg.gaussians
    isect = N * cfg.tiles_per_gaussian
    terms += [
        Term("gaussians", "training images", "gpu", "resident", f"{Vt} views x {H}x{W} x 3 x 4 B (SceneDataset on the device)",
             Vt * H * W * 3 * 4),
        Term("gaussians", "Gaussians + Adam", "gpu", "resident",
             f"{N:,} x ({per_g} (SH degree {sh}) + {d_f} language) x 4 B x 4 (weights, grads, 2 moments)", N * (per_g + d_f) * 16),
        Term("gaussians", "rasterizer buffers of a view", "gpu", "transient",
             f"{N:,} x 16 projected floats x 4 B x 2 (backward) + {cfg.tiles_per_gaussian:g} tiles/Gaussian x {N:,} x 12 B x 2 (sort)",
             N * 16 * 4 * 2 + isect * 12 * 2),
        Term("gaussians", "index maps of the language stage", "host", "resident",
             f"{Vt} views x 2 x {h1}x{w1} x 4 B (one view at a time on the device)", Vt * 2 * h1 * w1 * 4),
    ]
    return terms, {"stage1_size": [w1, h1], "train_views": Vt, "lerf_tiles_per_view": tiles,
                   "pyramid": [asdict(g) for g in grids], "dino_grid": [dh, dw], "gaussian_floats": per_g + d_f}


def summarize(terms: list[Term]) -> dict:
    """Per stage and place: the peak (resident sum + largest transient) and its three largest terms."""
    out: dict = {}
    for t in terms:
        out.setdefault(f"{t.stage}/{t.where}", []).append(t)
    summary = {}
    for key, ts in out.items():
        resident = [t for t in ts if t.kind == "resident"]
        largest = max((t for t in ts if t.kind == "transient"), key=lambda t: t.bytes, default=None)
        res = sum(t.bytes for t in resident)
        trans = largest.bytes if largest is not None else 0.0
        peak = res + trans
        ranked = sorted(resident + ([largest] if largest is not None else []), key=lambda t: -t.bytes)
        summary[key] = {"peak_gib": peak / GIB, "resident_gib": res / GIB, "largest_transient_gib": trans / GIB,
                        "dominant": [{"name": t.name, "gib": t.bytes / GIB, "share": t.bytes / peak if peak else 0.0}
                                     for t in ranked[:3]]}
    return summary


def run_estimate(cfg: EstimateConfig, measured: dict, tracks: int, frames: int) -> dict:
    """The scene estimate, plus the same stage-1 formulas at the dry-run sizes next to the measured peaks."""
    from ccl_gs.masks.propagate import Sam2Config
    from ccl_gs.masks.sam import SamConfig
    from ccl_gs.preprocess.config import RunOptions

    default_sam, default_sam2 = SamConfig().model_type, Sam2Config().config
    facts = model_facts(default_sam, default_sam2)
    terms, derived = estimate_terms(cfg, facts)
    summary = summarize(terms)
    # Check: the formulas at the dry-run models and sizes (CPU, fp32) against the measured peaks.
    small = model_facts("vit_b", SAM2_TINY)
    check_terms = stage1_terms(small, frames, HEIGHT, WIDTH, tracks, 0, SamConfig().points_per_batch, RunOptions().encode_batch)
    check = {}
    for part, prefix in (("sam", "SAM "), ("sam2", "SAM2 "), ("clip", "CLIP ")):
        # The device terms of the model (on the CPU the host copy of the SAM2 frames is the device copy).
        ts = [t for t in check_terms if t.name.startswith(prefix) and t.where == "gpu"
              and (part != "sam" or t.stage == "stage1 images")]
        res = sum(t.bytes for t in ts if t.kind == "resident")
        trans = max((t.bytes for t in ts if t.kind == "transient" and t.bytes > 0), default=0.0)
        m = measured.get(part, {})
        peak, before = m.get("peak_rss_mib"), m.get("rss_before_build_mib")
        check[part] = {"formula_mib": (res + trans) / MIB, "measured_peak_mib": peak, "rss_before_build_mib": before,
                       "measured_increase_mib": peak - before if peak is not None and before is not None else None}
        if part == "sam2" and "state_mib" in m:  # the two large SAM2 terms, weighed in the state itself
            by = {t.name: t.bytes / MIB for t in ts}
            check[part]["state"] = {
                "per_object_memory": {"formula_mib": by["SAM2 per-object memory, all frames"],
                                      "measured_mib": m["state_mib"]["per_object_memory"]},
                "video_frames": {"formula_mib": by["SAM2 video frames"], "measured_mib": m["state_mib"]["video_frames"]}}
    return {
        "config": asdict(cfg),
        "models": asdict(facts),
        "derived": derived,
        "terms": [asdict(t) | {"gib": t.bytes / GIB} for t in terms],
        "summary": summary,
        "check_at_dryrun_sizes": check,
    }


def print_estimate(est: dict) -> None:
    c = est["config"]
    print(f"\nMemory estimate: {c['views']} views at {c['width']}x{c['height']} "
          f"(stage 1 at {est['derived']['stage1_size'][0]}x{est['derived']['stage1_size'][1]}), "
          f"{c['tracks']} SAM2 tracks, {c['gaussians']:,} Gaussians; models {est['models']['sam_type']}, "
          f"{Path(est['models']['sam2_config']).stem}, ViT-B-16")
    print(f"{'stage':<10} {'term':<38} {'where':<5} {'kind':<9} {'GiB':>8}  formula")
    for t in est["terms"]:
        print(f"{t['stage']:<10} {t['name']:<38} {t['where']:<5} {t['kind']:<9} {t['gib']:>8.3f}  {t['formula']}")
    print("\nPeak per stage (resident sum + largest transient) and dominant terms:")
    for key, s in est["summary"].items():
        dom = "; ".join(f"{d['name']} {d['gib']:.2f} GiB ({d['share']:.0%})" for d in s["dominant"])
        print(f"  {key:<16} {s['peak_gib']:7.2f} GiB  <- {dom}")
    print("\nCheck, the stage-1 formulas at the dry-run sizes (resident + largest transient) vs the measured"
          " peak RSS minus the RSS before building the model:")
    for part, ch in est["check_at_dryrun_sizes"].items():
        inc = ch["measured_increase_mib"]
        print(f"  {part:<5} formula {ch['formula_mib']:7.0f} MiB, measured "
              + (f"{inc:7.0f} MiB (peak {ch['measured_peak_mib']:.0f} MiB)" if inc is not None else "-"))
        for name, v in ch.get("state", {}).items():
            print(f"        SAM2 state, {name}: formula {v['formula_mib']:.1f} MiB, in the state {v['measured_mib']:.1f} MiB")


# ----------------------------------------------------------------------------------------- main
def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
            "python": platform.python_version(), "torch": torch.__version__, "loadavg_start": list(os.getloadavg())}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=PARTS, help="run only this part (repeatable)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each part")
    ap.add_argument("--sam-images", type=int, default=2, help="images for SAM")
    ap.add_argument("--points-per-side", type=int, default=32, help="SAM point grid per side")
    ap.add_argument("--points-per-batch", type=int, default=64, help="SAM prompts decoded together (the project's default)")
    ap.add_argument("--sam-crop-layers", type=int, default=0, help="SAM crop layers (project default 1: extrapolated)")
    ap.add_argument("--frames", type=int, default=8, help="SAM2 frames")
    ap.add_argument("--tracks", type=int, default=8, help="SAM2 seed masks on frame 0")
    ap.add_argument("--crops", type=int, default=100, help="CLIP masked crops")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", choices=MEASURED, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return run_child(args.child, args, args.child_out)
    parts = args.only or list(PARTS)
    old = read_json(args.out) if args.out.is_file() else {}
    result: dict = {"machine": machine(), "threads": args.threads, "parts": dict(old.get("parts", {}))}
    passthrough = [a for a in argv if not a.startswith("--only") and a not in PARTS]
    for part in (p for p in MEASURED if p in parts):
        print(f"{part} ...", flush=True)
        res = run_part(part, passthrough)
        result["parts"][part] = res
        if "error" in res:
            print(f"  {part} FAILED: {res['error']}")
        else:
            secs = res.get("seconds_per_image", res.get("seconds"))
            print(f"  {part}: {secs:.1f} s, peak RSS {res['peak_rss_mib']:.0f} MiB, outputs {res['outputs']}")
    if "estimate" in parts:
        result["estimate"] = run_estimate(EstimateConfig(), result["parts"], args.tracks, args.frames)
        print_estimate(result["estimate"])
    elif "estimate" in old:
        result["estimate"] = old["estimate"]
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
