"""Benchmark: stage 1 (preprocess) pieces and whole runs on CPU.

1. Track labels (every mask of both levels against every SAM2 track) at
   LangSplat's working size, ``M`` masks x ``K`` tracks at 1080 x 810:
   ``label_index_maps`` (pixel-pair counts, what stage 1 uses), ``label_masks``
   (one dense matrix product) and a per-pair numpy loop on a subset; all three
   must agree.
2. Whole runs on a synthetic scene with the precomputed (simulated) masks /
   tracks and the oracle encoder at simulation levels 0, 1, 2, with the default
   merge config and with ``priority="granularity"`` (wholes win wp pixels): seconds per image, a resumed no-op run, and how the wp masks,
   their features and labels compare with the ground truth.
3. A whole run on fern photos with tiny random-weight SAM / SAM2 / CLIP (the
   real code path; model cost is tiny, so this shows the pipeline's overhead).

    .venv/bin/python bench/bench_preprocess.py [--views 24] [--fern-views 4]

Prints a table and writes ``bench/results/preprocess.json``. Timings are
wall-clock on whatever machine runs it; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccl_gs.io.artifacts import write_json  # noqa: E402
from ccl_gs.masks.merge import MergeConfig  # noqa: E402
from ccl_gs.masks.propagate import label_index_maps, label_masks  # noqa: E402
from ccl_gs.preprocess import Components, PreprocessConfig, RunOptions, run_preprocess  # noqa: E402

FERN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "llff_fern"


def bench_labels(M: int, K: int, H: int, W: int, loop_pairs: int) -> dict:
    """Labels of ``M`` non-overlapping masks (two levels) against ``K`` overlapping tracks, three ways."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]

    def blobs(n: int) -> np.ndarray:
        cy, cx = rng.uniform(0, H, n), rng.uniform(0, W, n)
        r = rng.uniform(20, 200, n)
        out = np.empty((n, H, W), bool)
        for i in range(n):
            out[i] = (yy - cy[i]) ** 2 + (xx - cx[i]) ** 2 < r[i] ** 2
        return out

    maps = np.full((2, H, W), -1, np.int32)
    half = M // 2
    for level, rows in ((0, range(half)), (1, range(half, M))):
        for m, b in zip(rows, blobs(len(rows))):
            maps[level][b] = m  # later blobs paint over earlier ones: disjoint visible masks
    masks = np.stack([(maps[0] == m) | (maps[1] == m) for m in range(M)])
    # Tracks: some visible masks (so labels exist) and random blobs.
    tracks = np.concatenate([masks[rng.choice(M, K // 2, replace=False)], blobs(K - K // 2)])
    ids = np.arange(1, K + 1, dtype=np.int32)
    label_index_maps(maps, M, tracks[:2], ids[:2])  # warm-up
    t = time.perf_counter()
    fast = label_index_maps(maps, M, tracks, ids)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    dense = label_masks(masks, tracks, ids)
    t_dense = time.perf_counter() - t
    assert (fast == dense).all(), "index-map labels differ from the dense product"
    sub = masks[: max(1, loop_pairs // K)]
    t = time.perf_counter()
    ref = []
    for m in sub:
        best, arg = 0.0, -1
        for k, tr in enumerate(tracks):
            union = np.logical_or(m, tr).sum()
            iou = np.logical_and(m, tr).sum() / union if union else 0.0
            if iou > best:
                best, arg = iou, k
        ref.append(int(ids[arg]) if best > 0.5 else -1)
    loop = (time.perf_counter() - t) * M / len(sub)
    assert ref == fast[: len(sub)].tolist(), "labels differ from the per-pair loop"
    return {
        "M": M, "K": K, "H": H, "W": W,
        "index_maps_s": t_fast, "dense_matmul_s": t_dense, "loop_s_extrapolated": loop,
        "labelled": int((fast > 0).sum()),
    }


def synthetic_quality(root: Path, out: Path) -> dict:
    """How the artifact of a synthetic scene compares with its ground truth.

    * ``wp_instance``: fraction of wp masks whose best ground-truth instance has IoU > 0.5;
    * ``wp_class``: fraction of wp masks whose feature's nearest class text is that instance's class;
    * ``label_consistency``: over tracked object instances, the fraction of their wp masks
      (IoU > 0.5) carrying the instance's most common label.
    """
    from ccl_gs.data.synthetic.gt import GroundTruth
    from ccl_gs.encoders.oracle import OracleEncoder
    from ccl_gs.preprocess import load_preprocessed

    gt = GroundTruth(root)
    text = OracleEncoder(scene_root=root).encode_text(gt.classes).numpy()
    inst_class = gt.instance_class()
    manifest, images = load_preprocessed(out)
    n = hit = cls_ok = 0
    labels_of: dict[int, list[int]] = {}
    for v, stem in enumerate(manifest.extra["images"]):
        z = images[stem]
        inst = gt.view(v)["instance"]
        ids, areas = np.unique(inst, return_counts=True)
        for r in np.where(z["levels"] == 1)[0]:
            mask = z["index_maps"][1] == r
            n += 1
            under, inter = np.unique(inst[mask], return_counts=True)
            ious = [c / (mask.sum() + areas[ids == i][0] - c) if i > 0 else 0.0 for i, c in zip(under, inter)]
            best = int(np.argmax(ious))
            if ious[best] > 0.5:
                hit += 1
                i = int(under[best])
                cls = int(np.argmax(text @ z["features"][r].astype(np.float32)))
                cls_ok += gt.classes[cls] == gt.classes[inst_class[i] - 1]
                if i in gt.object_instances and z["labels"][r] > 0:
                    labels_of.setdefault(i, []).append(int(z["labels"][r]))
    consistent = sum(max(np.bincount(ls)) for ls in labels_of.values())
    total = sum(len(ls) for ls in labels_of.values())
    return {
        "wp_masks": n,
        "wp_instance": hit / max(n, 1),
        "wp_class": cls_ok / max(n, 1),
        "label_consistency": consistent / max(total, 1),
    }


def bench_synthetic(views: int, size: int, tmp: Path) -> dict:
    from ccl_gs.data.synthetic import OutputConfig, SimConfig, SyntheticConfig, generate

    out: dict = {"views": views, "size": size}
    merges = {"default": MergeConfig(), "granularity": MergeConfig(priority="granularity")}
    for level in (0, 1, 2):
        t = time.perf_counter()
        root = generate(
            SyntheticConfig(seed=0, views=views, size=size),
            OutputConfig(out=tmp / f"syn{level}", layout="3dovs", eval_views=2, points=500),
            SimConfig(level=level),
        )[0]
        gen = time.perf_counter() - t
        for mname, merge in merges.items():
            cfg = PreprocessConfig(mask_source="precomputed", track_source="precomputed", encoder="oracle", merge=merge)
            opts = RunOptions(progress=False, device="cpu")
            dst = tmp / f"pre_syn{level}_{mname}"
            t = time.perf_counter()
            res = run_preprocess(root, dst, cfg, opts)
            run = time.perf_counter() - t
            t = time.perf_counter()
            again = run_preprocess(root, dst, cfg, opts)
            resume = time.perf_counter() - t
            assert res.complete and not again.processed
            out[f"level{level}_{mname}_merge"] = {
                "generate_s": gen, "run_s": run, "s_per_image": run / views, "noop_rerun_s": resume,
                **synthetic_quality(root, dst),
            }
    return out


def bench_fern(n_views: int, tmp: Path) -> dict | None:
    if not (FERN / "images_8").is_dir():
        print(f"fern photos not found at {FERN}: skipped")
        return None
    import open_clip

    from ccl_gs.encoders.open_clip import OpenClipEncoder
    from ccl_gs.masks.propagate import Sam2Config, Sam2Tracker
    from ccl_gs.masks.sam import SamConfig, SamMaskSource, build_tiny_sam

    root = tmp / "fern"
    (root / "images_8").mkdir(parents=True)
    for n in sorted(p.name for p in (FERN / "images_8").glob("*.png"))[:n_views]:
        shutil.copy(FERN / "images_8" / n, root / "images_8" / n)
    np.save(root / "poses_bounds.npy", np.load(FERN / "poses_bounds.npy")[:n_views])
    sam_cfg = SamConfig(points_per_side=8, crop_n_layers=0, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    sam = SamMaskSource(build_tiny_sam(), sam_cfg)
    tracker = Sam2Tracker.from_config(
        Sam2Config(
            config="configs/sam2.1/sam2.1_hiera_t.yaml",
            hydra_overrides=[
                "++model.image_size=256",
                "++model.memory_attention.num_layers=1",
                "++model.image_encoder.trunk.stages=[1,1,1,1]",
                "++model.image_encoder.trunk.global_att_blocks=[]",
            ],
        ),
        device="cpu",
        require_checkpoint=False,
    )
    torch.manual_seed(0)
    clip = open_clip.model.CLIP(
        embed_dim=32,
        vision_cfg=open_clip.model.CLIPVisionCfg(image_size=64, layers=2, width=64, head_width=32, patch_size=16),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=16, vocab_size=49408, width=64, heads=2, layers=2),
    )
    comp = Components(
        mask_source=lambda v, im: sam(im),
        tracker=tracker,
        encoder=OpenClipEncoder("tiny", None, model=clip, device="cpu"),
    )
    cfg = PreprocessConfig(sam=sam_cfg, merge=MergeConfig())
    opts = RunOptions(progress=False, device="cpu", steps="tracks")
    t = time.perf_counter()
    run_preprocess(root, tmp / "pre_fern", cfg, opts, comp)
    tracks = time.perf_counter() - t
    t = time.perf_counter()
    res = run_preprocess(root, tmp / "pre_fern", cfg, RunOptions(progress=False, device="cpu"), comp)
    images = time.perf_counter() - t
    assert res.complete
    return {"views": n_views, "size": "504x378", "tracks_s": tracks, "images_s": images, "s_per_image": images / n_views}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--views", type=int, default=24, help="synthetic scene views")
    ap.add_argument("--size", type=int, default=128, help="synthetic image width")
    ap.add_argument("--fern-views", type=int, default=4, help="fern views (images_8) for the tiny-model run")
    ap.add_argument("--masks", type=int, default=150, help="masks per image for the labelling benchmark")
    ap.add_argument("--tracks", type=int, default=40, help="tracks per image for the labelling benchmark")
    args = ap.parse_args()
    torch.manual_seed(0)
    out: dict = {"machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform()}}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out["label_masks"] = lab = bench_labels(args.masks, args.tracks, 810, 1080, loop_pairs=200)
        print(f"labels, {lab['M']} masks x {lab['K']} tracks at {lab['W']}x{lab['H']}: "
              f"{lab['index_maps_s']:.3f} s index maps (label_index_maps), {lab['dense_matmul_s']:.3f} s dense product "
              f"(label_masks), ~{lab['loop_s_extrapolated']:.1f} s per-pair loop (extrapolated); {lab['labelled']} labelled")
        out["synthetic"] = syn = bench_synthetic(args.views, args.size, tmp)
        for key, q in syn.items():
            if not key.startswith("level"):
                continue
            level, merge = key.split("_")[0][5:], key.split("_")[1]
            print(f"synthetic {syn['views']} views {syn['size']} px, sim level {level}, precomputed + oracle, {merge} merge: "
                  f"{q['run_s']:.2f} s ({q['s_per_image']:.3f} s/image), no-op re-run {q['noop_rerun_s']:.2f} s; "
                  f"{q['wp_masks']} wp masks: {q['wp_instance']:.1%} match an instance (IoU > 0.5), "
                  f"{q['wp_class']:.1%} nearest class right, labels {q['label_consistency']:.1%} consistent")
        fern = bench_fern(args.fern_views, tmp)
        if fern is not None:
            out["fern_tiny_models"] = fern
            print(f"fern {fern['views']} views {fern['size']}, tiny SAM/SAM2/CLIP: tracks {fern['tracks_s']:.2f} s, "
                  f"images {fern['images_s']:.2f} s ({fern['s_per_image']:.2f} s/image)")
    path = Path(__file__).resolve().parent / "results" / "preprocess.json"
    write_json(path, out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
