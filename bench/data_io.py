"""Scene reading, dataset loading and PLY I/O speed.

Prints wall-clock figures and writes bench/results/data_io.json. Timings are
of one run each on whatever machine runs this (best of ``--repeat``).

    python bench/data_io.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ccl_gs.data import Camera, Scene, load_scene
from ccl_gs.data.dataset import SceneDataset
from ccl_gs.data.readers.colmap import read_colmap, write_colmap_binary, write_colmap_text
from ccl_gs.io.ply import read_gaussians_ply, write_gaussians_ply

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is reported")
    ap.add_argument("--gaussians", type=int, default=200_000, help="Gaussians in the PLY benchmark")
    ap.add_argument("--points", type=int, default=100_000, help="sparse points in the COLMAP benchmark")
    args = ap.parse_args()
    r = args.repeat
    out: dict[str, float] = {}

    fern, lego = DATA / "llff_fern", DATA / "nerf_synthetic_lego_small"
    if fern.is_dir():
        out["fern_parse_s"] = best(lambda: load_scene(fern, factor=8), r)
        scene = load_scene(fern, factor=8)
        out["fern_images8_dataset_all_s"] = best(lambda: SceneDataset(scene, "all"), r)
        sd = load_scene(fern, factor=8, colmap_distortion=True)
        out["fern_images8_dataset_all_undistort_s"] = best(lambda: SceneDataset(sd, "all"), r)
    if lego.is_dir():
        scene = load_scene(lego)
        out["lego_parse_s"] = best(lambda: load_scene(lego), r)
        out["lego_800_dataset_all_s"] = best(lambda: SceneDataset(scene, "all"), r)

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "images").mkdir()
        from PIL import Image

        paths = []
        for i in range(50):
            p = tmp / "images" / f"{i:04d}.png"
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p)
            paths.append(p)
        vms = np.repeat(np.eye(4)[None], 50, 0)
        pts = rng.normal(size=(args.points, 3)).astype(np.float32)
        cols = rng.integers(0, 256, (args.points, 3), dtype=np.uint8)
        s = Scene("b", tmp, paths, [Camera(8, 8, 8.0, 8.0, 4.0, 4.0)] * 50, vms, points=pts, point_colors=cols)
        out["colmap_write_binary_s"] = best(lambda: write_colmap_binary(tmp / "sparse" / "0", s), r)
        out["colmap_read_binary_s"] = best(lambda: read_colmap(tmp), r)
        for f in (tmp / "sparse" / "0").iterdir():
            f.unlink()
        out["colmap_write_text_s"] = best(lambda: write_colmap_text(tmp / "sparse" / "0", s), r)
        out["colmap_read_text_s"] = best(lambda: read_colmap(tmp), r)

        n = args.gaussians
        g = dict(
            means=rng.normal(size=(n, 3)).astype(np.float32),
            quats=rng.normal(size=(n, 4)).astype(np.float32),
            log_scales=rng.normal(size=(n, 3)).astype(np.float32),
            opacity_logits=rng.normal(size=n).astype(np.float32),
            sh0=rng.normal(size=(n, 1, 3)).astype(np.float32),
            shN=rng.normal(size=(n, 15, 3)).astype(np.float32),
            extra={"feat": rng.normal(size=(n, 8)).astype(np.float32)},
        )
        path = tmp / "g.ply"
        out["ply_write_s"] = best(lambda: write_gaussians_ply(path, **g), r)
        out["ply_read_s"] = best(lambda: read_gaussians_ply(path), r)
        out["ply_bytes"] = path.stat().st_size

    out.update(points=args.points, gaussians=args.gaussians, sh_degree=3, feature_dim=8, repeat=r)
    for k, v in out.items():
        print(f"{k:40s} {v:.4f}" if isinstance(v, float) else f"{k:40s} {v}")
    res = Path(__file__).resolve().parent / "results" / "data_io.json"
    from ccl_gs.io.artifacts import write_json

    write_json(res, out)
    print(f"wrote {res}")


if __name__ == "__main__":
    main()
