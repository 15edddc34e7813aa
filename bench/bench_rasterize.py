#!/usr/bin/env python
"""Speed of the CPU rasterizer (``backend="torch"``): forward + backward.

Cases (one camera each, scene-like Gaussians: centres uniform in the view
frustum at depth 2-6, screen-space standard deviations log-uniform in
0.5-3 px at the reference resolution, anisotropic, random rotations,
opacities uniform in 0.05-1):

  20k Gaussians, 128x128, 3 and 8 channels (the speed target: <= 150 ms)
  the dense reference at the same setting (or a smaller one, scaled; printed)
  100k Gaussians at 252x189 and 504x378 (the fern training sizes), 3 channels
  and SH degree 3, the same 3D scene at both resolutions

Each figure is the median of ``--repeats`` runs after ``--warmup`` runs of
forward, the mean of all outputs, and backward to every input. The
machine may be shared: timings are as measured, noisy.

    python bench/bench_rasterize.py [--repeats 7] [--warmup 2] [--quick]

Prints a table and writes bench/results/rasterize.json.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ccl_gs.io.artifacts import write_json  # noqa: E402
from ccl_gs.splat import rasterize  # noqa: E402
from ccl_gs.splat.reference import rasterize_reference  # noqa: E402


def make_scene(n: int, width: int, height: int, seed: int = 0) -> dict:
    """Scene-like Gaussians in front of an identity camera with a 60 degree field of view."""
    g = torch.Generator().manual_seed(seed)
    f = 0.5 * width / math.tan(math.radians(30.0))
    depth = 2.0 + 4.0 * torch.rand(n, generator=g)
    u = torch.rand(n, generator=g) * width
    v = torch.rand(n, generator=g) * height
    means = torch.stack([(u - width / 2) * depth / f, (v - height / 2) * depth / f, depth], dim=-1)
    sigma_px = torch.exp(torch.empty(n).uniform_(math.log(0.5), math.log(3.0), generator=g))
    aniso = torch.exp(torch.randn(n, 3, generator=g) * 0.3)
    scales = (sigma_px * depth / f)[:, None] * aniso
    return {
        "means": means,
        "quats": torch.randn(n, 4, generator=g),
        "scales": scales,
        "opacities": 0.05 + 0.95 * torch.rand(n, generator=g),
        "f_ref": f,
        "w_ref": width,
        "h_ref": height,
    }


def camera(scene: dict, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity view and intrinsics scaled from the scene's reference resolution."""
    s = width / scene["w_ref"]
    f = scene["f_ref"] * s
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return torch.eye(4)[None], K[None]


def time_fwd_bwd(fn, inputs: list[torch.Tensor], repeats: int, warmup: int) -> tuple[float, float, float, dict]:
    """Median wall seconds of forward and of forward + backward, median process CPU
    seconds of forward + backward (all threads), and the last meta."""
    meta: dict = {}
    fwd, total, cpu = [], [], []
    for i in range(warmup + repeats):
        for x in inputs:
            x.grad = None
        c0 = time.process_time()
        t0 = time.perf_counter()
        colors, alphas, meta = fn()
        t1 = time.perf_counter()
        loss = colors.mean() + alphas.mean()
        loss.backward()
        t2 = time.perf_counter()
        c2 = time.process_time()
        if i >= warmup:
            fwd.append(t1 - t0)
            total.append(t2 - t0)
            cpu.append(c2 - c0)
    return statistics.median(fwd), statistics.median(total), statistics.median(cpu), meta


def run_case(name: str, n: int, width: int, height: int, channels: int, sh_degree: int | None,
             repeats: int, warmup: int, reference: bool = False, scene: dict | None = None) -> dict:
    scene = scene or make_scene(n, width, height)
    viewmats, Ks = camera(scene, width, height)
    g = torch.Generator().manual_seed(1)
    if sh_degree is None:
        colors = torch.rand(n, channels, generator=g)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.2
    inputs = [scene["means"].clone(), scene["quats"].clone(), scene["scales"].clone(),
              scene["opacities"].clone(), colors]
    for x in inputs:
        x.requires_grad_(True)
    if reference:
        def fn():
            return rasterize_reference(*inputs, viewmats, Ks, width, height, sh_degree=sh_degree)
    else:
        def fn():
            return rasterize(*inputs, viewmats, Ks, width, height, sh_degree=sh_degree, backend="torch")
    t_fwd, t_total, t_cpu, meta = time_fwd_bwd(fn, inputs, repeats, warmup)
    row = {
        "case": name,
        "backend": "reference" if reference else "torch",
        "gaussians": n,
        "width": width,
        "height": height,
        "channels": channels if sh_degree is None else 3,
        "sh_degree": sh_degree,
        "forward_ms": round(1000 * t_fwd, 1),
        "fwd_bwd_ms": round(1000 * t_total, 1),
        "fwd_bwd_cpu_ms": round(1000 * t_cpu, 1),
    }
    if "radii" in meta:
        row["visible"] = int((meta["radii"] > 0).all(-1).sum())
        row["intersections"] = int(meta["flatten_ids"].shape[0])
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip the 504x378 case")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch intra-op threads (the numba kernels use all cores regardless); on a shared, "
                         "oversubscribed machine torch with 2 threads was 10x slower than with 1")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "rasterize.json")
    args = ap.parse_args()
    torch.set_num_threads(args.torch_threads)
    repeats = 3 if args.quick else args.repeats
    warmup = 1 if args.quick else args.warmup

    import numba  # thread queries only after the first kernel launch, which picks numba's threading layer

    print(f"torch threads {torch.get_num_threads()}", flush=True)
    rows = []
    for ch in (3, 8):
        rows.append(run_case(f"20k_128_c{ch}", 20_000, 128, 128, ch, None, repeats, warmup))
        print(rows[-1], flush=True)
    # Dense reference: 20k x 128^2 pixels does not fit comfortably in memory
    # ([P, N] float tensors of 1.3 GB each); time it at 2k Gaussians, 64x64 and
    # scale linearly by (N * P) to the 20k, 128x128 setting.
    ref_n, ref_w = 2_000, 64
    ref = run_case("reference_2k_64_c3", ref_n, ref_w, ref_w, 3, None, max(2, repeats // 2), 1, reference=True)
    scale = (20_000 * 128 * 128) / (ref_n * ref_w * ref_w)
    ref["scaled_to_20k_128_fwd_bwd_ms"] = round(ref["fwd_bwd_ms"] * scale, 1)
    rows.append(ref)
    print(rows[-1], flush=True)
    same = run_case("torch_2k_64_c3", ref_n, ref_w, ref_w, 3, None, repeats, warmup)
    rows.append(same)
    print(rows[-1], flush=True)

    scene = make_scene(100_000, 252, 189, seed=2)
    sizes = [(252, 189)] if args.quick else [(252, 189), (504, 378)]
    for w, h in sizes:
        for sh in (None, 3):
            tag = "sh3" if sh is not None else "c3"
            rows.append(run_case(f"100k_{w}_{tag}", 100_000, w, h, 3, sh, repeats, warmup, scene=scene))
            print(rows[-1], flush=True)

    print()
    print(f"{'case':<22}{'backend':<11}{'N':>8}{'size':>10}{'ch':>4}{'fwd ms':>9}{'fwd+bwd ms':>12}"
          f"{'cpu ms':>9}{'isects':>10}")
    for r in rows:
        print(f"{r['case']:<22}{r['backend']:<11}{r['gaussians']:>8}{str(r['width']) + 'x' + str(r['height']):>10}"
              f"{r['channels']:>4}{r['forward_ms']:>9}{r['fwd_bwd_ms']:>12}{r['fwd_bwd_cpu_ms']:>9}"
              f"{r.get('intersections', ''):>10}")
    print(f"numba threads {numba.get_num_threads()}, layer {numba.threading_layer()}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(wall times grow with the load; 'cpu ms' is this process's CPU time, all threads)")
    ratio = ref["scaled_to_20k_128_fwd_bwd_ms"] / rows[0]["fwd_bwd_ms"]
    ratio_same = ref["fwd_bwd_ms"] / same["fwd_bwd_ms"]
    print(f"dense reference at 2k/64x64: {ref['fwd_bwd_ms']} ms (x{ratio_same:.1f} the torch backend there); "
          f"scaled to 20k/128x128: {ref['scaled_to_20k_128_fwd_bwd_ms']} ms (x{ratio:.0f} the torch backend)")
    write_json(args.out, {
        "note": "median wall time (and process CPU time), one camera, forward + backward to every input; "
                "shared machine, noisy",
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "numba_threads": numba.get_num_threads(), "numba_threading_layer": numba.threading_layer(),
                    "python": platform.python_version(),
                    "torch": torch.__version__, "numba": numba.__version__},
        "rows": rows,
        "reference_ratio_scaled": round(ratio, 1),
        "reference_ratio_2k_64": round(ratio_same, 1),
    })
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
