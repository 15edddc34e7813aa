#!/usr/bin/env python
"""The 3D-OVS method beside CCL-LGS and LERF on generated 3D-OVS-layout scenes, with the paper's ablations.

For each scene (a generated forward-facing scene per generator seed, in the
3D-OVS layout: ``segmentations/classes.txt`` with every object class plus
floor and wall, masks on the views 0, 8, 16) the RGB Gaussians are trained
once on all views (3D-OVS evaluates training views); for each simulation
level (0: exact, 1: mild mask / track imperfection and oracle feature
noise 0.15) and method, the run, the renders of the class list on the
segmentation views and the 3D-OVS evaluation (the release's argmax protocol,
quirks included) are done through the project's CLIs. Methods:

``weakseg``       the 3D-OVS method, the release's behaviour (soft sigmoid selection, unnormalized RDA)
``weakseg_fixes`` with both fixes (``--rda-normalize``, ``--model.selection logits``)
``no_rda``        without relevancy-distribution alignment (``--relevancy-weight 0``)
``no_fda``        without feature-distribution alignment (``--dino-pos-weight 0 --dino-neg-weight 0``)
``fixed_scale``   without the selection: always the medium crop scale (``--model.fixed-scale 1``)
``fixed_scale_small`` without the selection, always the smallest crop scale (``--model.fixed-scale 2``): the
                  scale whose targets score best here (the ``clip_targets_scale2`` rows)
``weakseg_lr_dec`` the release's behaviour with a 10x decoder lr (``--lr-decoder 1e-3``): the release's 1e-4
                  decodes a pretrained appearance feature, here the per-Gaussian features start random
``weakseg_lr_dec100`` the same with a 100x decoder lr (``--lr-decoder 1e-2``)
``weakseg_lr_dec_fixes`` the 10x decoder lr with both fixes
``weakseg_d8``, ``weakseg_d64`` the release's behaviour with an 8-d or a 64-d per-Gaussian feature (the release: 27)
``weakseg_lr_dec_d8``, ``weakseg_lr_dec_d64`` the same with the 10x decoder lr
``ccl_gated``     CCL-LGS (the scripts' default variant): simulated masks / tracks, oracle encoder, codebook, field
``lerf``          the LERF baseline (``cpu`` preset, its own NeRF on all views)

CLIP comes from the synthetic oracle (the level sets its noise), DINO from the
DINO stand-in (``oracle_dino``); the 3D-OVS targets are CLIP maps at 1/2 of the
128x128 images (64x64, crops 12 / 9 / 6 px) and the stand-in's 4-pixel cells at
full size (32x32 cells, patches of 16 x 16 cells). Per run: mIoU and accuracy,
seconds, the trainer's seconds per iteration and the peak resident memory of the
training process (``/usr/bin/time``), at 128x128 on CPU, for the 3D-OVS method
and CCL's field alike. Rows ``clip_targets_scale{0,1,2}`` score the 2D CLIP targets
themselves (argmax per pixel at the targets' size, per crop scale): what the field distills.

    python bench/bench_weakseg.py [--scenes 0] [--seeds 0] [--levels 0 1] \
        [--methods weakseg no_rda no_fda fixed_scale weakseg_fixes ccl_gated lerf] [--out bench/results/weakseg.json]

Finished runs are reused (every stage checks its manifest), so an interrupted
benchmark resumes; rows of earlier runs in ``--out`` are kept unless re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ccl_gs.data.synthetic.simulate import ORACLE_LEVELS  # noqa: E402
from ccl_gs.io.artifacts import write_json  # noqa: E402
from provenance import commit, machine  # noqa: E402

PY = sys.executable
NOISE = {k: v["noise"] for k, v in ORACLE_LEVELS.items()}
"""Simulation level -> oracle feature noise."""
WEAKSEG_VARIANTS = {
    "weakseg": [],
    "weakseg_fixes": ["--rda-normalize", "--model.selection", "logits"],
    "no_rda": ["--relevancy-weight", "0"],
    "no_fda": ["--dino-pos-weight", "0", "--dino-neg-weight", "0"],
    "fixed_scale": ["--model.fixed-scale", "1"],
    "fixed_scale_small": ["--model.fixed-scale", "2"],
    "weakseg_lr_dec": ["--lr-decoder", "1e-3"],
    "weakseg_lr_dec100": ["--lr-decoder", "1e-2"],
    "weakseg_lr_dec_fixes": ["--lr-decoder", "1e-3", "--rda-normalize", "--model.selection", "logits"],
    "weakseg_d8": ["--model.feature-dim", "8"],
    "weakseg_d64": ["--model.feature-dim", "64"],
    "weakseg_lr_dec_d8": ["--lr-decoder", "1e-3", "--model.feature-dim", "8"],
    "weakseg_lr_dec_d64": ["--lr-decoder", "1e-3", "--model.feature-dim", "64"],
}
"""The 3D-OVS method and its ablations: extra options of ``python -m ccl_gs.weakseg``."""


def sh(*args: str, rss: Path | None = None) -> None:
    """Run a project CLI with this interpreter (peak memory into ``rss`` when given); stop with its stderr on failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [PY, *args]
    if rss is not None:
        rss.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["/usr/bin/time", "-f", "%M", "-o", str(rss), *cmd]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{r.stderr[-2000:]}")


def peak_mb(path: Path) -> float | None:
    """Peak resident memory (MB) written by ``/usr/bin/time -f %M``; None when the stage was reused."""
    try:
        return int(path.read_text().strip().splitlines()[-1]) / 1024
    except (OSError, ValueError, IndexError):
        return None


def target_quality(scene: Path, targets: Path) -> dict[int, dict[str, float]]:
    """The 3D-OVS protocol on the 2D CLIP targets themselves: per crop scale, the argmax over the classes of each
    pixel's target feature, on the segmentation views at the targets' size (what the field distills, before 3D)."""
    from ccl_gs.metrics.labels import ovs3d_view_index, ovs3d_views, read_ovs3d_classes, read_ovs3d_view_masks
    from ccl_gs.metrics.ovs3d import view_metrics
    from ccl_gs.weakseg.targets import load_targets
    from ccl_gs.weakseg.train import text_embeddings

    t = load_targets(targets)
    seg = scene / "segmentations"
    classes = read_ovs3d_classes(seg)
    text = text_embeddings(t.clip_spec, classes)
    h, w = t.clip.shape[2:4]
    out = {}
    for s in range(t.clip.shape[1]):
        ious, accs = [], []
        for v in ovs3d_views(seg):
            j = t.views.index(ovs3d_view_index(v))
            scores = (t.clip[j, s].float() @ text.T).permute(2, 0, 1).numpy()  # [C, h, w]
            iou, acc = view_metrics(scores, read_ovs3d_view_masks(seg, v, classes, size=(w, h)))
            ious.append(iou)
            accs.append(acc)
        out[s] = {"miou": float(np.mean(ious)), "accuracy": float(np.mean(accs))}
    return out


def distillation_fidelity(run_dir: Path, scene: Path, targets: Path) -> dict[str, list[float]]:
    """What a 3D-OVS-method field learned from its targets, on the object pixels (ground truth neither floor nor
    wall) of the segmentation views, at the targets' size. Per crop scale ``s``: ``agree[s]``, the share of object
    pixels where the field's argmax class equals the scale-``s`` target's; ``target_acc[s]``, the share where that
    target's argmax is the true class; and ``field_acc``, the field's own share. A field that reproduces the
    selection-weighted mixture of its targets agrees most with the scale that dominates the mixture."""
    import torch
    import torch.nn.functional as F

    from ccl_gs.metrics.labels import ovs3d_view_index, ovs3d_views, read_ovs3d_classes, read_ovs3d_view_masks
    from ccl_gs.weakseg.query import WeaksegQueryModel
    from ccl_gs.weakseg.targets import load_targets
    from ccl_gs.weakseg.train import text_embeddings

    model = WeaksegQueryModel(run_dir, torch.device("cpu"))
    t = load_targets(targets)
    seg = scene / "segmentations"
    classes = read_ovs3d_classes(seg)
    text = text_embeddings(t.clip_spec, classes)  # [C, D]
    h, w = t.clip.shape[2:4]
    objects = [i for i, c in enumerate(classes) if c not in ("floor", "wall")]
    ds = model.dataset("all")
    position = {idx: k for k, idx in enumerate(ds.indices)}
    agree, tacc, facc, n = np.zeros(t.clip.shape[1]), np.zeros(t.clip.shape[1]), 0.0, 0
    for v in ovs3d_views(seg):
        idx = ovs3d_view_index(v)
        gt = read_ovs3d_view_masks(seg, v, classes, size=(w, h))  # [C, h, w]
        obj = torch.from_numpy(gt[objects].any(0) & (gt.sum(0) == 1))
        label = torch.from_numpy(gt.argmax(0))
        with torch.no_grad():
            e = model.pixel_embeddings(model.render_view(ds[position[idx]]))  # [H, W, D]
            e = F.interpolate(e.permute(2, 0, 1)[None], size=(h, w), mode="area")[0].permute(1, 2, 0)
        pred = (F.normalize(e, dim=-1) @ text.T).argmax(-1)
        j = t.views.index(idx)
        for s in range(t.clip.shape[1]):
            ts = (t.clip[j, s].float() @ text.T).argmax(-1)
            agree[s] += float((ts == pred)[obj].sum())
            tacc[s] += float((ts == label)[obj].sum())
        facc += float((pred == label)[obj].sum())
        n += int(obj.sum())
    n = max(n, 1)
    return {"agree": [round(float(a) / n, 4) for a in agree], "target_acc": [round(float(a) / n, 4) for a in tacc],
            "field_acc": round(facc / n, 4), "object_pixels": n}


def train_method(method: str, seed: int, level: int, scene: Path, rgb: Path, lvl: Path, d: Path, args) -> tuple[Path, dict]:
    """Train one run; returns its folder and its timing (seconds per iteration, peak MB of the training process;
    a finished run is reused and keeps the memory measured when it trained)."""
    done = any((d / sub / "metrics.json").is_file() for sub in ("weakseg", "lerf", "field")) and (d / "rss.txt").is_file()
    rss = None if done else d / "rss.txt"
    if method in WEAKSEG_VARIANTS:
        sh("-m", "ccl_gs.weakseg.targets", "--data", str(scene), "--test-every", "0", "--out", str(lvl / "weakseg_targets"),
           "--clip-encoder", "oracle", "--dino-encoder", "oracle_dino", "--oracle.noise", str(NOISE[level]),
           "--clip-downsample", "2", "--dino-downsample", "1", "--no-progress")
        sh("-m", "ccl_gs.weakseg", "--rgb-run", str(rgb), "--out", str(d / "weakseg"), "--targets", str(lvl / "weakseg_targets"),
           "--target.clip-encoder", "oracle", "--target.dino-encoder", "oracle_dino", "--target.oracle.noise", str(NOISE[level]),
           "--target.clip-downsample", "2", "--target.dino-downsample", "1", "--patch-cells", "16",
           "--iterations", str(args.weakseg_iters), "--seed", str(seed), "--no-progress", *WEAKSEG_VARIANTS[method],
           rss=rss)
        m = json.loads((d / "weakseg" / "metrics.json").read_text())
        return d / "weakseg", {"s_per_iter": m.get("seconds_per_iter"), "iterations": m["iterations"], "peak_mb": peak_mb(d / "rss.txt")}
    if method == "lerf":
        sh("-m", "ccl_gs.lerf", "--data", str(scene), "--out", str(d / "lerf"), "--preset", "cpu", "--test-every", "0",
           "--target.clip-encoder", "oracle", "--target.dino-encoder", "oracle_dino", "--target.oracle.scene-root", str(scene),
           "--target.oracle.noise", str(NOISE[level]), "--seed", str(seed), "--threads", str(args.threads),
           "--iterations", str(args.lerf_iters), "--no-progress", rss=rss)
        m = json.loads((d / "lerf" / "metrics.json").read_text())
        return d / "lerf", {"s_per_iter": m.get("seconds_per_iter"), "iterations": m["iterations"], "peak_mb": peak_mb(d / "rss.txt")}
    pre = lvl / "preprocess"
    if not (pre / "manifest.json").exists():
        sh("-c", "import sys; from ccl_gs.data.synthetic.simulate import SimConfig, write_simulation; "
           f"write_simulation(sys.argv[1], SimConfig(level={level}))", str(scene))
        sh("preprocess/run.py", "--data", str(scene), "--out", str(pre), "--mask-source", "precomputed",
           "--track-source", "precomputed", "--encoder", "oracle", "--oracle.scene-root", str(scene),
           "--oracle.noise", str(NOISE[level]), "--merge.min-visible-area", "10", "--no-progress", "--overwrite")
    sh("-m", "ccl_gs.codebook", "--preprocessed", str(pre), "--out", str(d / "codebook"), "--variant", method,
       "--iterations", str(args.codebook_iters), "--seed", str(seed), "--quiet")
    sh("-m", "ccl_gs.field", "--supervision", str(d / "codebook"), "--rgb-run", str(rgb), "--out", str(d / "field"),
       "--iterations", str(args.field_iters), "--seed", str(seed), "--no-progress", rss=rss)
    m = json.loads((d / "field" / "metrics.json").read_text())
    s = m["seconds"] / max(m["iterations"] - m.get("resumed_from_step", 0), 1)
    return d / "field", {"s_per_iter": s, "iterations": m["iterations"], "peak_mb": peak_mb(d / "rss.txt")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, nargs="*", default=[0], help="generator seeds, one scene each")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0], help="training seeds")
    ap.add_argument("--levels", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--methods", nargs="*", default=["weakseg", "no_rda", "no_fda", "fixed_scale", "weakseg_fixes", "ccl_gated", "lerf"])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "weakseg.json")
    ap.add_argument("--work", type=Path, default=REPO / "outputs" / "bench_weakseg")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--min-objects", type=int, default=4, help="objects per scene (classes = objects + floor + wall)")
    ap.add_argument("--rgb-iters", type=int, default=1500)
    ap.add_argument("--weakseg-iters", type=int, default=1500)
    ap.add_argument("--field-iters", type=int, default=600)
    ap.add_argument("--codebook-iters", type=int, default=600)
    ap.add_argument("--lerf-iters", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of LERF")
    args = ap.parse_args()
    old = json.loads(args.out.read_text())["rows"] if args.out.is_file() else []
    rows = {(r["method"], r["scene"], r["seed"], r["level"]): r for r in old}
    for scene_seed in args.scenes:
        data = args.work / f"s{scene_seed}" / "data"
        name = f"synthetic_s{scene_seed}"
        scene = data / "3dovs" / name
        if not (scene / "poses_bounds.npy").exists():
            sh("-m", "ccl_gs.data.synthetic", "--out", str(data), "--layout", "3dovs", "--size", str(args.size),
               "--views", str(args.views), "--seed", str(scene_seed), "--path", "forward", "--no-simulate",
               "--min-objects", str(args.min_objects))
        classes = [c for c in (scene / "segmentations" / "classes.txt").read_text().splitlines() if c.strip()]
        rgb = args.work / f"s{scene_seed}" / "rgb"
        if any(m != "lerf" for m in args.methods):
            sh("train.py", "--data", str(scene), "--out", str(rgb), "--iterations", str(args.rgb_iters), "--sh-degree", "2",
               "--test-every", "0", "--sh-degree-interval", "500", "--densify.refine-start-iter", "200",
               "--densify.refine-stop-iter", "1000", "--no-progress")
        for level in args.levels:
            lvl = args.work / f"s{scene_seed}" / f"level{level}"
            for method in args.methods:
                for seed in args.seeds:
                    d = lvl / f"{method}_seed{seed}"
                    t0 = time.perf_counter()
                    run_dir, timing = train_method(method, seed, level, scene, rgb, lvl, d, args)
                    sh("render.py", "--field-dir", str(run_dir), "--out", str(d / "render"), "--ovs3d-data", str(scene),
                       "--no-write-png", "--no-write-selection")
                    sh("eval/ovs3d.py", "--renders", str(d / "render" / "ovs3d"), "--data", str(scene.parent),
                       "--scenes", name, "--out", str(d / "eval.json"))
                    ev = json.loads((d / "eval.json").read_text())["scenes"][name]
                    row = {"method": method, "scene": scene_seed, "seed": seed, "level": level, "oracle_noise": NOISE[level],
                           "classes": len(classes), "miou": ev["miou"], "accuracy": ev["accuracy"],
                           "class_iou": {c: float(np.mean([v["ious"][c] for v in ev["views"].values()])) for c in ev["classes"]},
                           **timing, "seconds": time.perf_counter() - t0, "commit": commit(),
                           **({"fidelity": distillation_fidelity(run_dir, scene, lvl / "weakseg_targets")}
                              if method in WEAKSEG_VARIANTS else {}),
                           "config": {"size": args.size, "views": args.views, "rgb_iters": args.rgb_iters,
                                      "weakseg_iters": args.weakseg_iters, "field_iters": args.field_iters,
                                      "codebook_iters": args.codebook_iters, "lerf_iters": args.lerf_iters}}
                    rows[(method, scene_seed, seed, level)] = row
                    print(f"{method:<14} scene {scene_seed} seed {seed} level {level}: mIoU {100 * row['miou']:.1f} "
                          f"acc {100 * row['accuracy']:.1f}  {timing['s_per_iter'] or float('nan'):.3f} s/it  "
                          f"{timing['peak_mb'] or float('nan'):.0f} MB", flush=True)
                    _write(args, list(rows.values()))
            if any(m in WEAKSEG_VARIANTS for m in args.methods) and (lvl / "weakseg_targets" / "manifest.json").exists():
                for s, q in target_quality(scene, lvl / "weakseg_targets").items():
                    rows[(f"clip_targets_scale{s}", scene_seed, 0, level)] = {
                        "method": f"clip_targets_scale{s}", "scene": scene_seed, "seed": 0, "level": level,
                        "oracle_noise": NOISE[level], "classes": len(classes), **q, "s_per_iter": None, "peak_mb": None}
    _write(args, list(rows.values()), show=True)
    return 0


def _write(args, rows: list[dict], show: bool = False) -> None:
    summary = {}
    for key in sorted({(r["method"], r["level"]) for r in rows}, key=lambda k: (k[1], k[0])):
        rs = [r for r in rows if (r["method"], r["level"]) == key]
        summary[f"{key[0]}/level{key[1]}"] = {
            "miou": float(np.mean([r["miou"] for r in rs])), "miou_std": float(np.std([r["miou"] for r in rs])),
            "accuracy": float(np.mean([r["accuracy"] for r in rs])), "runs": len(rs),
            "s_per_iter": float(np.mean([r["s_per_iter"] for r in rs if r["s_per_iter"]] or [np.nan])),
            "peak_mb": float(np.max([r["peak_mb"] for r in rs if r["peak_mb"]] or [np.nan])),
        }
    write_json(args.out, {"benchmark": "weakseg", "command": " ".join(sys.argv), "machine": machine(), "rows": rows,
                          "summary": summary})
    if show:
        print(f"\n{'method/level':<24}{'mIoU':>8}{'acc':>8}{'s/it':>8}{'MB':>8}{'runs':>6}")
        for k, s in summary.items():
            print(f"{k:<24}{100 * s['miou']:8.1f}{100 * s['accuracy']:8.1f}{s['s_per_iter']:8.3f}{s['peak_mb']:8.0f}{s['runs']:6d}")


if __name__ == "__main__":
    sys.exit(main())
