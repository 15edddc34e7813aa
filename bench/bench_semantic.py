#!/usr/bin/env python
"""Language-field quality on generated scenes: CCL vs its ablation and two baselines, under simulated 2D inconsistency.

For each scene (one generated forward-facing scene per generator seed, labels
on the held-out views 0, 8, 16) the RGB Gaussians are trained once; for each
simulation level (0 none, 1 mild, 2 strong imperfection of masks and tracks,
with oracle feature noise 0 / 0.15 / 0.3) the scene is preprocessed once; for
each method, codebook size N and training seed, the stage-2 compression, the
semantic field, the renders and the LERF-OVS evaluation are run through the
project's CLIs. Reported per run:

* LERF-OVS mIoU and localization accuracy on the held-out labelled views;
* 3D selection: for each query, the Gaussians selected in 3D
  (:func:`ccl_gs.field.language.select_gaussians`); *precision* = fraction of
  the selected Gaussians whose centre projects inside the query's ground-truth
  mask in the labelled views that see it (depth within 5 % of the ground-truth
  depth), *recall* = fraction of the object's Gaussians (centres projecting
  inside its mask in those views) that are selected;
* the LERF-OVS 3D-selection protocol (OpenGaussian's; ``miou_3d``, ``acc25_3d``:
  per query the Gaussians whose most similar query it is, rendered alone,
  opacity > 0.7; :mod:`ccl_gs.metrics.lerf_ovs.selection3d`), never mixed
  with the 2D figures;
* query latency: render the per-Gaussian features + decode + relevancy of
  all queries for one view, median over views; and once per method at
  256x256 (measured when the runs are done, or by ``--merge`` on an idle
  machine).

    python bench/bench_semantic.py [--scenes 0 1 2] [--seeds 0 1] [--levels 0 1 2] \
        [--methods ccl ccl_gated no_pull_push autoencoder raw] [--n 64] [--field-iters 600] \
        [--out bench/results/semantic.json]
    python bench/bench_semantic.py --merge part1.json part2.json --out bench/results/semantic.json

One cell (a method x scene x seed x level) re-runs alone with
``--methods M --scenes S --seeds K --levels L --out cell.json`` (its finished
stages are reused unless removed from ``--work``); ``--merge`` then joins it
with the rest. Each row records the commit that produced it and its config;
the file records the machine and the command. On CPU the same command with
the same seeds writes the same metrics (training is seeded; see
``tests/test_reproducible.py``).

Runs can be split over processes (disjoint ``--methods``, after one process
has made the scenes and preprocessing) and merged afterwards.

Methods: the registered codebook variants (``ccl``, ``no_pull_push``, ...;
swept over ``--n``), ``autoencoder`` (LangSplat-style: 512 -> 3 latents,
3-d Gaussian features per level), ``raw`` (the preprocess features
regressed directly, no codebook) and ``lerf`` (the LERF baseline, ``cpu``
preset: its own NeRF with CLIP-pyramid / DINO targets from the oracles; it
uses no masks or tracks, so a simulation level only sets the oracle noise of
its CLIP tiles; its 3D selection is scored on its surface points, and its
RGB PSNR is its NeRF's). Finished runs are reused (each stage's CLI
skips work whose artifact is current).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ccl_gs.io.artifacts import write_json  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from provenance import commit, machine  # noqa: E402

PY = sys.executable
from ccl_gs.data.synthetic.simulate import ORACLE_LEVELS  # noqa: E402

LEVELS = {k: v["noise"] for k, v in ORACLE_LEVELS.items()}
"""Simulation level -> oracle feature noise."""
DRIFT = {k: v["drift"] for k, v in ORACLE_LEVELS.items()}
"""Simulation level -> oracle structured drift (level 3)."""


def sh(*args: str) -> None:
    """Run a project CLI with this interpreter; stop with its stderr on failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([PY, *args], cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{r.stderr[-2000:]}")


BASELINES = ("autoencoder", "raw", "lerf", "weakseg")
"""Methods other than the codebook variants (no codebook size)."""


def runs(methods: list[str], sizes: list[int], seeds: list[int]):
    """(method, N or None, seed) of every run: codebook variants are swept over N, baselines are not."""
    for method in methods:
        for n in [None] if method in BASELINES else sizes:
            for seed in seeds:
                yield method, n, seed


def stage2(method: str, n: int | None, seed: int, pre: Path, d: Path, args) -> Path:
    """Run the method's stage 2 on the preprocess folder ``pre``; returns the field's ``--supervision``."""
    if method == "raw":
        return pre
    if method == "autoencoder":
        sh("-m", "ccl_gs.autoencoder", "--preprocessed", str(pre), "--out", str(d / "autoencoder"),
           "--seed", str(seed), "--quiet")
        return d / "autoencoder"
    sh("-m", "ccl_gs.codebook", "--preprocessed", str(pre), "--out", str(d / "codebook"),
       "--variant", method, "--iterations", str(args.codebook_iters), "--n-prototypes", str(n),
       "--seed", str(seed), "--quiet")
    return d / "codebook"


def selection_quality(field_dir: Path, scene_root: Path, labels_dir: Path) -> dict[str, float]:
    """Mean 3D-selection precision / recall over the labelled categories (see module docstring)."""
    from ccl_gs.field.language import LanguageField, encode_queries, select_gaussians
    from ccl_gs.field.render import make_encoder
    from ccl_gs.metrics.labels import read_class_list

    lf = LanguageField.load(field_dir)
    cats = read_class_list(labels_dir)
    q, c = encode_queries(make_encoder(lf.encoder_spec), cats)
    rel = lf.gaussian_relevancy(q, "canonical", c)  # [L, Q, N]
    selected = [select_gaussians(rel[:, qi]).cpu().numpy() for qi in range(len(cats))]
    means = lf.params["means"].cpu().numpy().astype(np.float64)
    opaque = torch.sigmoid(lf.params["opacities"]).cpu().numpy() > 0.1
    return point_selection_quality(means, opaque, selected, cats, scene_root, labels_dir)


def lerf_selection_quality(run_dir: Path, scene_root: Path, labels_dir: Path) -> dict[str, float]:
    """The same measure on a LERF run's 3D relevancy: its surface points, each query at its searched scale."""
    from ccl_gs.field.language import encode_queries, select_gaussians
    from ccl_gs.field.render import make_encoder
    from ccl_gs.lerf.query import LerfQueryModel
    from ccl_gs.metrics.labels import load_scene_labels

    model = LerfQueryModel(run_dir, torch.device("cpu"))
    frames = load_scene_labels(labels_dir)
    cats = sorted({c for f in frames for c in f.categories})
    q, c = encode_queries(make_encoder(model.encoder_spec), cats)
    ds = model.dataset("all")
    for f in frames:  # the scale search on the labelled views, as render.py does before the 3D export
        model.relevancy_maps(model.render_view(ds[f.image_index]), q, "canonical", c)
    pts, _ = model.surface_points()
    rel = model.point_relevancy(pts, q, "canonical", c, model.query_scales(q))
    selected = [select_gaussians(rel[qi : qi + 1]).numpy() for qi in range(len(cats))]
    world = model.norm.to_world(pts.numpy().astype(np.float64))
    return point_selection_quality(world, np.ones(len(world), bool), selected, cats, scene_root, labels_dir)


def weakseg_selection_quality(run_dir: Path, scene_root: Path, labels_dir: Path) -> dict[str, float]:
    """The same measure on a 3D-OVS-method run: each Gaussian goes to its most similar query (the method's argmax)."""
    from ccl_gs.field.language import encode_queries
    from ccl_gs.field.render import make_encoder
    from ccl_gs.metrics.labels import read_class_list
    from ccl_gs.weakseg.query import WeaksegQueryModel

    model = WeaksegQueryModel(run_dir, torch.device("cpu"))
    cats = read_class_list(labels_dir)
    q, c = encode_queries(make_encoder(model.encoder_spec), cats)
    keep = model.selected(q, "canonical", c, 0.5).numpy()
    means = model.params["means"].numpy().astype(np.float64)
    opaque = torch.sigmoid(model.params["opacities"]).numpy() > 0.1
    return point_selection_quality(means, opaque, list(keep), cats, scene_root, labels_dir)


SELECTION_QUALITY = {"lerf": lerf_selection_quality, "weakseg": weakseg_selection_quality}
"""Method -> 3D selection measure of its run folder (the rest: :func:`selection_quality` of a language field)."""


def point_selection_quality(points: np.ndarray, valid: np.ndarray, selected: list[np.ndarray], cats: list[str],
                            scene_root: Path, labels_dir: Path) -> dict[str, float]:
    """Precision / recall of per-query selections of 3D points ``[N, 3]`` against the labelled views' masks."""
    from ccl_gs.data import load_scene
    from ccl_gs.data.synthetic.gt import GroundTruth
    from ccl_gs.metrics.labels import load_scene_labels

    scene = load_scene(scene_root)
    gt = GroundTruth(scene_root)
    views = [f.image_index for f in load_scene_labels(labels_dir)]
    inside = {k: np.zeros(len(points)) for k in cats}
    seen = np.zeros(len(points))
    for v in views:
        g = gt.view(v)
        cam = scene.cameras[v]
        Xc = (scene.viewmats[v][:3, :3] @ points.T + scene.viewmats[v][:3, 3:4]).T
        z = Xc[:, 2]
        u = cam.fx * Xc[:, 0] / np.maximum(z, 1e-9) + cam.cx
        w = cam.fy * Xc[:, 1] / np.maximum(z, 1e-9) + cam.cy
        H, W = g["depth"].shape
        ok = (z > 0) & (u >= 0) & (u < W) & (w >= 0) & (w < H)
        ui, wi = np.clip(u.astype(int), 0, W - 1), np.clip(w.astype(int), 0, H - 1)
        vis = ok & (np.abs(z - g["depth"][wi, ui]) < 0.05 * g["depth"][wi, ui]) & valid
        seen += vis
        for k in cats:
            cid = gt.classes.index(k) + 1
            inside[k] += vis & (g["class_id"][wi, ui] == cid)
    prec, rec = [], []
    for qi, k in enumerate(cats):
        sel = selected[qi]
        frac = np.where(seen > 0, inside[k] / np.maximum(seen, 1), np.nan)
        s = sel & (seen > 0)
        if s.any():
            prec.append(float(np.nanmean(frac[s])))
        obj = (seen > 0) & (frac > 0.5)
        if obj.any():
            rec.append(float((sel & obj).sum() / obj.sum()))
    return {
        "selection_precision": float(np.mean(prec)) if prec else float("nan"),
        "selection_recall": float(np.mean(rec)) if rec else float("nan"),
    }


def protocol_3d(render_dir: Path, labels: Path, name: str, out: Path) -> dict[str, float]:
    """The LERF-OVS 3D-selection protocol (``eval/lerf_ovs.py --protocol 3d``) of one run's renders:
    ``miou_3d``, ``acc25_3d``; empty for runs without per-Gaussian language (no ``lerf_ovs_3d/``)."""
    if not (render_dir / "lerf_ovs_3d").is_dir():
        return {}
    sh("eval/lerf_ovs.py", "--renders", str(render_dir / "lerf_ovs_3d"), "--protocol", "3d", "--labels", str(labels.parent),
       "--scenes", name, "--out", str(out))
    ev = json.loads(out.read_text())["scenes"][name]
    return {"miou_3d": ev["miou"], "acc25_3d": ev["acc_25"]}


def lerf_latency_256(run_dir: Path, queries: list[str], repeats: int = 2) -> float:
    """Median ms of one 256x256 view of a LERF run with all queries: render, the 30-scale search, the second pass."""
    from ccl_gs.field.language import encode_queries
    from ccl_gs.field.render import make_encoder
    from ccl_gs.lerf.query import LerfQueryModel

    model = LerfQueryModel(run_dir, torch.device("cpu"))
    item = dict(model.dataset("test")[0])
    K = item["K"].clone()
    K[0] *= 256 / int(item["width"])
    K[1] *= 256 / int(item["height"])
    item.update(K=K, width=256, height=256)
    q, c = encode_queries(make_encoder(model.encoder_spec), queries)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.relevancy_maps(model.render_view(item), q, "canonical", c)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def latency_256(field_dir: Path, queries: list[str], repeats: int = 5) -> float:
    """Median ms to render the 8-d features + decode + relevancy of all queries for one 256x256 view."""
    import dataclasses as dc

    from ccl_gs.config import from_dict
    from ccl_gs.field.language import LanguageField, encode_queries
    from ccl_gs.field.render import make_encoder
    from ccl_gs.field.train import FieldConfig
    from ccl_gs.io.artifacts import read_json
    from ccl_gs.splat.trainer import config_from_json, device_for_run, load_run_scene, make_dataset

    device = device_for_run()
    lf = LanguageField.load(field_dir, device)
    fcfg = from_dict(FieldConfig, read_json(field_dir / "config.json"))
    rgb_cfg = config_from_json(Path(fcfg.rgb_run) / "config.json")
    scene = load_run_scene(rgb_cfg)
    item = dict(make_dataset(dc.replace(rgb_cfg, test_every=8), scene, "test", device)[0])
    sx, sy = 256 / int(item["width"]), 256 / int(item["height"])
    K = item["K"].clone()
    K[0] *= sx
    K[1] *= sy
    item.update(K=K, width=256, height=256)
    q, c = encode_queries(make_encoder(lf.encoder_spec), queries)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        lf.relevancy_maps(item, q, "canonical", c)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times[1:]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, nargs="*", default=[0, 1, 2], help="generator seeds, one scene each")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help="training seeds of stage 2 and the field")
    ap.add_argument("--n", type=int, nargs="*", default=[64], help="codebook sizes N")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "semantic.json")
    ap.add_argument("--levels", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="*", default=["ccl", "ccl_gated", "no_pull_push", "autoencoder", "raw"])
    ap.add_argument("--work", type=Path, default=REPO / "outputs" / "bench_semantic")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rgb-iters", type=int, default=1500)
    ap.add_argument("--field-iters", type=int, default=600)
    ap.add_argument("--codebook-iters", type=int, default=600)
    ap.add_argument("--weakseg-iters", type=int, default=600, help="steps of the 3D-OVS method")
    ap.add_argument("--lerf-threads", type=int, default=0,
                    help="CPU threads of each LERF run (0 = all cores; 1 lets two benchmark processes share 2 cores)")
    ap.add_argument("--merge", type=Path, nargs="*", default=None,
                    help="no runs: merge the rows of these result files (runs split over processes), "
                         "summarize, and measure the 256x256 latency on this machine")
    ap.add_argument("--no-latency", dest="latency", action="store_false", help="skip the 256x256 latency")
    ap.add_argument("--latency-of", nargs="*", default=[], metavar="METHOD=DIR",
                    help="also measure the 256x256 latency of these trained fields (e.g. ccl_gated=outputs/demo/field), "
                         "with the queries of the first row's scene")
    args = ap.parse_args()
    rows = []
    if args.merge is not None:
        latest = {}
        for f in args.merge:  # a run present in several files counts once (the last file wins)
            for r in json.loads(f.read_text())["rows"]:
                latest[(r["method"], r["n_prototypes"], r["scene"], r["seed"], r["level"])] = r
        rows = list(latest.values())
        for r in rows:  # runs rendered before the 3D-selection protocol existed get it from their renders, if kept
            if "miou_3d" not in r and r["method"] != "lerf":
                d = (args.work / f"s{r['scene']}" / f"level{r['level']}" /
                     (f"{r['method']}_n{r['n_prototypes']}_seed{r['seed']}" if r["n_prototypes"] else f"{r['method']}_seed{r['seed']}"))
                name = f"synthetic_s{r['scene']}"
                labels = args.work / f"s{r['scene']}" / "data" / "lerf_ovs" / "label" / name
                if labels.is_dir():
                    r.update(protocol_3d(d / "render", labels, name, d / "eval_3d.json"))
        args.scenes = sorted({r["scene"] for r in rows})
        args.seeds = sorted({r["seed"] for r in rows})
        args.levels = sorted({r["level"] for r in rows})
        args.methods = list(dict.fromkeys(r["method"] for r in rows))
        args.n = sorted({r["n_prototypes"] for r in rows if r["n_prototypes"]})
    for scene_seed in ([] if args.merge is not None else args.scenes):
        data = args.work / f"s{scene_seed}" / "data"
        name = f"synthetic_s{scene_seed}"
        scene = data / "lerf_ovs" / name
        labels = data / "lerf_ovs" / "label" / name
        if not (scene / "transforms.json").exists():
            sh("-m", "ccl_gs.data.synthetic", "--out", str(data), "--layout", "lerf", "--size", str(args.size),
               "--views", "24", "--seed", str(scene_seed), "--path", "forward", "--no-simulate")
        rgb = args.work / f"s{scene_seed}" / "rgb"
        gaussians = any(m != "lerf" for m in args.methods)  # LERF trains its own NeRF
        masks = any(m not in ("lerf", "weakseg") for m in args.methods)  # LERF and the 3D-OVS method read no masks
        rgb_m = {"psnr": None}
        if gaussians:
            sh("train.py", "--data", str(scene), "--out", str(rgb), "--iterations", str(args.rgb_iters), "--sh-degree", "2",
               "--sh-degree-interval", "500", "--densify.refine-start-iter", "200", "--densify.refine-stop-iter", "1000",
               "--no-progress")
            rgb_m = json.loads((rgb / "metrics.json").read_text())
        for level in args.levels:
            lvl_dir = args.work / f"s{scene_seed}" / f"level{level}"
            pre = lvl_dir / "preprocess"
            if masks and not (pre / "manifest.json").exists():
                sh("-c", "import sys; from ccl_gs.data.synthetic.simulate import SimConfig, write_simulation; "
                   f"write_simulation(sys.argv[1], SimConfig(level={level}))", str(scene))
                sh("preprocess/run.py", "--data", str(scene), "--out", str(pre), "--mask-source", "precomputed",
               "--track-source", "precomputed", "--encoder", "oracle", "--oracle.scene-root", str(scene),
                   "--oracle.noise", str(LEVELS[level]), "--oracle.drift", str(DRIFT[level]), "--merge.min-visible-area", "10", "--no-progress",
                   "--overwrite")
            for method, n, seed in runs(args.methods, args.n, args.seeds):
                d = lvl_dir / (f"{method}_n{n}_seed{seed}" if n else f"{method}_seed{seed}")
                t0 = time.perf_counter()
                if method == "lerf":  # its own NeRF; the level sets the oracle noise of its targets only
                    sh("-m", "ccl_gs.lerf", "--data", str(scene), "--out", str(d / "lerf"), "--preset", "cpu",
                       "--target.clip-encoder", "oracle", "--target.dino-encoder", "oracle_dino",
                       "--target.oracle.scene-root", str(scene), "--target.oracle.noise", str(LEVELS[level]),
                       "--target.oracle.drift", str(DRIFT[level]),
                       "--seed", str(seed), "--threads", str(args.lerf_threads), "--no-progress")
                    run_dir = d / "lerf"
                elif method == "weakseg":  # the 3D-OVS method on the frozen RGB Gaussians, the query list as classes
                    tgt = lvl_dir / "weakseg_targets"
                    oracle = ["--oracle.scene-root", str(scene), "--oracle.noise", str(LEVELS[level]),
                              "--oracle.drift", str(DRIFT[level])]
                    split = str(json.loads((rgb / "config.json").read_text())["test_every"])  # the RGB run's views
                    sh("-m", "ccl_gs.weakseg.targets", "--data", str(scene), "--out", str(tgt), "--test-every", split,
                       "--clip-encoder", "oracle",
                       "--dino-encoder", "oracle_dino", *oracle, "--clip-downsample", "2", "--dino-downsample", "1",
                       "--no-progress")
                    sh("-m", "ccl_gs.weakseg", "--rgb-run", str(rgb), "--out", str(d / "weakseg"), "--targets", str(tgt),
                       "--classes", str(labels), "--target.clip-encoder", "oracle", "--target.dino-encoder", "oracle_dino",
                       *[a.replace("--oracle", "--target.oracle") for a in oracle], "--target.clip-downsample", "2",
                       "--target.dino-downsample", "1", "--patch-cells", "16", "--iterations", str(args.weakseg_iters),
                       "--seed", str(seed), "--no-progress")
                    run_dir = d / "weakseg"
                else:
                    sup = stage2(method, n, seed, pre, d, args)
                    sh("-m", "ccl_gs.field", "--supervision", str(sup), "--rgb-run", str(rgb),
                       "--out", str(d / "field"), "--iterations", str(args.field_iters), "--seed", str(seed),
                       "--no-progress")
                    run_dir = d / "field"
                sh("render.py", "--field-dir", str(run_dir), "--out", str(d / "render"), "--lerf-labels", str(labels))
                sh("eval/lerf_ovs.py", "--renders", str(d / "render" / "lerf_ovs"), "--labels", str(labels.parent),
                   "--scenes", name, "--out", str(d / "eval.json"))
                ev = json.loads((d / "eval.json").read_text())["scenes"][name]
                rj = json.loads((d / "render" / "render.json").read_text())
                row = {
                    "scene": scene_seed, "seed": seed, "n_prototypes": n, "level": level,
                    "oracle_noise": LEVELS[level], "oracle_drift": DRIFT[level], "method": method,
                    "miou": ev["miou"], "loc_acc": ev["loc_acc"], "pairs": ev["n_pairs"],
                    **protocol_3d(d / "render", labels, name, d / "eval_3d.json"),
                    **SELECTION_QUALITY.get(method, selection_quality)(run_dir, scene, labels),
                    "query_ms_per_view": 1000 * rj["seconds_per_view_all_queries"],
                    "rgb_psnr": (json.loads((run_dir / "metrics.json").read_text())["psnr"] if method == "lerf"
                                 else rgb_m["psnr"]),
                    "seconds": time.perf_counter() - t0,
                    "commit": commit(),
                    "config": {"size": args.size, "rgb_iters": args.rgb_iters, "field_iters": args.field_iters,
                               "codebook_iters": args.codebook_iters, "weakseg_iters": args.weakseg_iters, "sim_seed": 0,
                               "oracle_seed": 0},
                }
                rows.append(row)
                print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    summary = {}
    for (method, n, _), level in itertools.product(runs(args.methods, args.n, [0]), args.levels):
        rs = [r for r in rows if r["method"] == method and r["n_prototypes"] == n and r["level"] == level]
        if rs:
            summary[f"{method}/n{n}/level{level}" if n else f"{method}/level{level}"] = {
                **{k: float(np.mean([r[k] for r in rs]))
                   for k in ("miou", "loc_acc", "selection_precision", "selection_recall", "query_ms_per_view")},
                **{k: float(np.mean([r[k] for r in rs])) for k in ("miou_3d", "acc25_3d") if all(k in r for r in rs)},
                "miou_std": float(np.std([r["miou"] for r in rs])),
                "runs": len(rs),
            }
    print(f"\n{'method/N/level':<28}{'mIoU':>8}{'(std)':>8}{'loc':>8}{'sel P':>8}{'sel R':>8}{'ms/view':>9}{'runs':>6}")
    for k, v in summary.items():
        print(f"{k:<28}{v['miou']:>8.3f}{v['miou_std']:>8.3f}{v['loc_acc']:>8.3f}{v['selection_precision']:>8.3f}"
              f"{v['selection_recall']:>8.3f}{v['query_ms_per_view']:>9.1f}{v['runs']:>6}")
    lat = {}
    for method in args.methods if args.latency else []:
        r = next(r for r in rows if r["method"] == method)
        n = r["n_prototypes"]
        d = (args.work / f"s{r['scene']}" / f"level{r['level']}"
             / (f"{method}_n{n}_seed{r['seed']}" if n else f"{method}_seed{r['seed']}"))
        cats = json.loads((d / "render" / "render.json").read_text())["queries"]
        lat[method] = lerf_latency_256(d / "lerf", cats) if method == "lerf" else latency_256(d / "field", cats)
        print(f"query latency, {method}, one 256x256 view, {len(cats)} queries "
              f"(features + decode + relevancy): {lat[method]:.1f} ms")
    for spec in args.latency_of if args.latency and rows else []:
        method, field_dir = spec.split("=", 1)
        cats = json.loads((Path(field_dir).parent / "render" / "render.json").read_text())["queries"]
        lat[method] = latency_256(Path(field_dir), cats)
        print(f"query latency, {method} ({field_dir}), one 256x256 view, {len(cats)} queries: {lat[method]:.1f} ms")
    write_json(args.out,
               {"rows": rows, "summary": summary, "query_ms_256": lat, "machine": machine(),
                "command": " ".join(sys.argv),
                "args": {k: [str(x) for x in v] if k == "merge" and v else v for k, v in vars(args).items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
