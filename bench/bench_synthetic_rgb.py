#!/usr/bin/env python
"""RGB Gaussian training on generated synthetic scenes: are the renders learnable and the poses right?

    python bench/bench_synthetic_rgb.py                      # forward preset, then orbit
    python bench/bench_synthetic_rgb.py forward --iterations 1500

Each preset generates a scene with ``python -m ccl_gs.data.synthetic`` in the
3D-OVS (LLFF) layout (``poses_bounds.npy``, ``images/*.png``, and the sparse
points ``sparse/0/points3D.txt`` sampled from the true surfaces, which
initialize the Gaussians), trains it with :func:`ccl_gs.splat.trainer.run`
(the code behind ``train.py``) at ``--factor 1``, every 8th view held out
(views 0, 8, 16), and reports held-out PSNR / SSIM, seconds, seconds per
iteration and the Gaussian count.

Presets:
  forward  128x128, 24 views on an LLFF-like grid facing the scene (target: PSNR >= 28)
  forward_nopoints  the same without sparse points: stereo seeding (forward_nopoints_random: random init)
  orbit    128x128, 24 views on a 360-degree ring around the scene
  orbit_nopoints  the same orbit without sparse points: stereo seeding (target: PSNR >= 28)
  orbit_nopoints_random   the same with the old random initialization (--init.seeding random)
  orbit_nopoints_defaults the orbit without points, train.py's default options (target: PSNR >= 28)
  orbit_defaults          the orbit with its points, train.py's default options

Also prints a pose sanity check that needs no training: the sparse points
(3D, from the generator's depth) reprojected through the poses *as the LLFF
reader returns them* land on pixels of the same colour (median colour error
and the fraction of points inside the image). Writes
bench/results/rgb_synthetic.json (all presets run so far are kept). Timings
are wall-clock on a shared machine: noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ccl_gs.io.artifacts import read_json, write_json  # noqa: E402
from ccl_gs.splat.gaussians import InitConfig  # noqa: E402
from ccl_gs.splat.strategy import DensifyConfig  # noqa: E402
from ccl_gs.splat.trainer import RGBTrainConfig, run  # noqa: E402

RESULTS = REPO / "bench" / "results" / "rgb_synthetic.json"
TARGET_PSNR = 28.0


@dataclasses.dataclass
class Preset:
    """One generated scene and its training schedule."""

    path: str
    """Camera path of the generator (``forward`` or ``orbit``)."""
    size: int = 128
    views: int = 24
    seed: int = 0
    points: int = 4000
    """Sparse points written by the generator (they initialize the Gaussians)."""
    iterations: int = 600
    sh_degree: int = 1
    densify_start: int = 100
    densify_stop_frac: float = 0.6
    densify_every: int = 100
    defaults: bool = False
    """Train with ``train.py``'s default options (the fields above about training are then unused)."""
    seeding: str = "stereo"
    """``--init.seeding`` (only used without sparse points)."""


PRESETS = {
    "forward": Preset(path="forward"),
    "orbit": Preset(path="orbit"),
    "forward_nopoints": Preset(path="forward", points=0),
    "forward_nopoints_random": Preset(path="forward", points=0, seeding="random"),
    "orbit_nopoints": Preset(path="orbit", points=0),
    "orbit_nopoints_random": Preset(path="orbit", points=0, seeding="random"),
    "orbit_nopoints_defaults": Preset(path="orbit", points=0, defaults=True),
    "orbit_defaults": Preset(path="orbit", defaults=True),
}


def generate(preset: Preset, out: Path) -> Path:
    """Write the preset's scene in the 3D-OVS layout through the generator's CLI; returns the scene folder."""
    cmd = [
        sys.executable, "-m", "ccl_gs.data.synthetic", "--out", str(out), "--layout", "3dovs",
        "--size", str(preset.size), "--views", str(preset.views), "--path", preset.path,
        "--seed", str(preset.seed), "--points", str(preset.points), "--no-simulate",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"scene generation failed: {proc.stderr.strip()}")
    return Path(proc.stdout.split()[0])


def pose_check(root: Path) -> dict:
    """Reproject the sparse points through the LLFF reader's cameras; compare with the image colours.

    Returns:
        ``inside`` (fraction of point-view pairs in front of the camera and
        inside the image) and ``median_rgb_err`` (median over visible pairs of
        the max-channel colour difference, 0..255, between the point and the
        pixel it lands on, occluded pairs included, so a few large errors are expected).
    """
    from ccl_gs.data import load_scene
    from ccl_gs.data.scene import load_image

    scene = load_scene(root, "llff", factor=1)
    if scene.points is None or not len(scene.points):
        return {"inside": None, "median_rgb_err": None, "frac_err_below_16": None, "note": "no sparse points"}
    pts, cols = scene.points.astype(np.float64), scene.point_colors.astype(np.float64)
    inside, errs = [], []
    for v in range(len(scene.image_paths)):
        cam = scene.cameras[v]
        img = load_image(scene.image_paths[v]).astype(np.float64) * 255.0  # [H, W, 3]
        cp = pts @ scene.viewmats[v][:3, :3].T + scene.viewmats[v][:3, 3]
        z = cp[:, 2]
        u = cam.fx * cp[:, 0] / np.maximum(z, 1e-9) + cam.cx
        w = cam.fy * cp[:, 1] / np.maximum(z, 1e-9) + cam.cy
        ok = (z > 0) & (u >= 0) & (u < cam.width) & (w >= 0) & (w < cam.height)
        inside.append(ok.mean())
        px = img[w[ok].astype(int), u[ok].astype(int)]
        errs.append(np.abs(px - cols[ok]).max(axis=1))
    e = np.concatenate(errs)
    return {"inside": float(np.mean(inside)), "median_rgb_err": float(np.median(e)), "frac_err_below_16": float((e < 16).mean())}


def per_view_psnr(data: Path, run_dir: Path) -> dict[str, float]:
    """PSNR of each saved held-out render (8-bit PNG, so within ~0.01 dB of the float figure) against its image."""
    out = {}
    for render in sorted((run_dir / "renders" / "test").glob("*.png")):
        from PIL import Image

        a = np.asarray(Image.open(render).convert("RGB"), np.float64) / 255.0  # [H, W, 3]
        b = np.asarray(Image.open(data / "images" / render.name).convert("RGB"), np.float64) / 255.0
        out[render.stem] = round(float(-10.0 * np.log10(np.mean((a - b) ** 2))), 3)
    return out


def train_config(
    preset: Preset, data: Path, out: Path, iterations: int | None, max_seconds: float, progress: bool = False
) -> RGBTrainConfig:
    """The training config of a preset (``iterations`` overrides the preset's count)."""
    init = InitConfig(seeding=preset.seeding)
    if preset.defaults:
        return RGBTrainConfig(data=data, out=out, format="llff", factor=1, test_every=8, max_seconds=max_seconds,
                              init=init, save_renders=True, progress=progress,
                              **({"iterations": iterations} if iterations else {}))
    iters = iterations or preset.iterations
    return RGBTrainConfig(
        data=data,
        out=out,
        format="llff",
        factor=1,
        test_every=8,
        iterations=iters,
        max_seconds=max_seconds,
        sh_degree=preset.sh_degree,
        sh_degree_interval=max(iters // 3, 1),
        init=init,
        densify=DensifyConfig(
            refine_start_iter=preset.densify_start,
            refine_stop_iter=int(iters * preset.densify_stop_frac),
            refine_every=preset.densify_every,
        ),
        checkpoint_every=max(iters, 1),
        save_renders=True,
        progress=progress,
    )


def run_preset(name: str, iterations: int | None, max_seconds: float, work: Path, progress: bool = False) -> dict:
    """Generate, check poses, train and evaluate one preset; returns its JSON row."""
    preset = PRESETS[name]
    t0 = time.perf_counter()
    root = generate(preset, work / "data")
    gen_s = time.perf_counter() - t0
    poses = pose_check(root)
    cfg = train_config(preset, root, work / "runs" / name, iterations, max_seconds, progress)
    m = run(cfg)
    return {
        "preset": name,
        "scene": {**dataclasses.asdict(preset), "generate_seconds": round(gen_s, 1)},
        "pose_check": poses,
        "per_view_psnr": per_view_psnr(root, cfg.out),
        "resolution": f"{m['width']}x{m['height']}",
        "test_views": m["test_views"],
        "psnr": round(m["psnr"], 3),
        "ssim": round(m["ssim"], 4),
        "seconds": round(m["seconds"], 1),
        "seconds_per_iter": round(m["seconds_per_iter"], 4),
        "iterations": m["iterations"],
        "n_gaussians": m["n_gaussians"],
        "n_init_points": preset.points,
        "device": m["device"],
        "target_psnr": TARGET_PSNR if name in ("forward", "orbit_nopoints", "orbit_nopoints_defaults") else None,
        "config": dataclasses.asdict(cfg),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("presets", nargs="*", default=["forward", "orbit"], help=f"presets to run ({' | '.join(PRESETS)})")
    ap.add_argument("--iterations", type=int, default=None, help="override the preset's iteration count")
    ap.add_argument("--max-seconds", type=float, default=900.0, help="training time budget per preset")
    ap.add_argument("--progress", action="store_true", help="show a training progress bar")
    ap.add_argument("--work", type=Path, default=None, help="keep scenes and runs here (default: a temporary folder)")
    args = ap.parse_args()
    unknown = [p for p in args.presets if p not in PRESETS]
    if unknown:
        ap.error(f"unknown preset '{unknown[0]}' (choose from {' | '.join(PRESETS)})")
    results = read_json(RESULTS) if RESULTS.is_file() else {}
    results = {k: v for k, v in results.items() if k in PRESETS}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for name in args.presets:
            row = run_preset(name, args.iterations, args.max_seconds, work / name, args.progress)
            results[name] = row
            write_json(RESULTS, results)
            print(f"[{name}] {row['resolution']}, {row['iterations']} iterations, test views {row['test_views']}")
            if row["pose_check"]["inside"] is not None:
                print(f"  pose check: {100 * row['pose_check']['inside']:.1f}% of points inside the views, "
                      f"median colour error {row['pose_check']['median_rgb_err']:.1f}/255")
            print(f"  per held-out view: {row['per_view_psnr']}")
            for k in ("psnr", "ssim", "seconds", "seconds_per_iter", "n_gaussians"):
                print(f"  {k:>16}: {row[k]}")
            if row["target_psnr"] is not None:
                print(f"  {'target':>16}: PSNR >= {row['target_psnr']}: {'met' if row['psnr'] >= row['target_psnr'] else 'NOT met'}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
