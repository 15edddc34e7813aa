"""Benchmark: contrastive codebook training at scene scale on synthetic masks.

A synthetic stage-1 artifact (default 100 views x 40 objects, 512-d features,
two levels, one clutter mask per view and level, 80 % of masks tracked; the
features of an object move along a view-dependent circle, see
:mod:`ccl_gs.codebook.synthetic`) is codebook-trained with each variant
(``ccl`` and the ``no_pull_push`` ablation) for each N. Prints per run the
time per step, used prototypes, final losses and the quality measures per
level against the known objects:

* ``sim``: mean cosine between the prototypes chosen by one object's masks
  in different views (what ``L_pull`` raises),
* ``agree``: fraction of those mask pairs choosing the *same* prototype,
* ``purity``: fraction of masks whose prototype's majority object is theirs.

Writes ``bench/results/codebook.json``.

    .venv/bin/python bench/bench_codebook.py [--views 100] [--objects 40] [--iterations 500] [--n 32 64]

Timings are wall-clock on whatever machine runs it; on a shared machine they
are noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccl_gs.codebook import codebook_variant, load_preprocessed, train_codebook  # noqa: E402
from ccl_gs.codebook.quality import codebook_quality, cross_view_consistency, cross_view_similarity  # noqa: E402
from ccl_gs.codebook.synthetic import write_synthetic_preprocess  # noqa: E402
from ccl_gs.io.artifacts import load_npz, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--views", type=int, default=100)
    ap.add_argument("--objects", type=int, default=40)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--view-noise", type=float, default=0.8)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--n", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--variants", nargs="+", default=["no_pull_push", "ccl"])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "codebook.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="bench_codebook_"))
    truth = write_synthetic_preprocess(
        tmp / "pre", n_views=args.views, n_classes=args.objects, dim=args.dim, view_noise=args.view_noise,
        size=(16, max(64, args.objects)), seed=0,
    )
    t = time.perf_counter()
    inp = load_preprocessed(tmp / "pre")
    load_s = time.perf_counter() - t
    print(f"{inp.masks.features.shape[0]} masks ({args.views} views, {args.objects} objects, D={args.dim}); "
          f"load {load_s:.2f} s")
    runs = []
    hdr = f"{'variant':>13} {'N':>4} {'ms/step':>8} {'used':>9} {'L_max':>7} {'L_pull':>7} {'L_push':>7}"
    hdr += " | per level sp / wp: sim, agree, purity"
    print(hdr)
    for n in args.n:
        for name in args.variants:
            cfg = codebook_variant(name, n_prototypes=n, iterations=args.iterations, checkpoint_every=0)
            out = tmp / f"{name}_{n}"
            t = time.perf_counter()
            res = train_codebook(inp, cfg, out, progress=False)
            total_s = time.perf_counter() - t
            own = np.concatenate([load_npz(out / f"{s}.npz")["mask_prototypes"] for s in truth.stems])
            per_level = []
            for lvl in (0, 1):
                m = truth.levels == lvl
                q = codebook_quality(own[m], truth.classes[m])
                per_level.append({
                    "sim": cross_view_similarity(res.prototypes[lvl].numpy(), own[m], truth.classes[m], truth.views[m]),
                    "agree": cross_view_consistency(own[m], truth.classes[m], truth.views[m]),
                    **q,
                })
            fl = res.final_losses
            row = {
                "variant": name, "n_prototypes": n, "iterations": args.iterations,
                "seconds_total": total_s, "ms_per_step": 1000 * total_s / args.iterations,
                "used_prototypes": res.n_used, "final_losses": fl, "levels": per_level,
                "usage_log": res.manifest.extra["usage_log"],
            }
            runs.append(row)
            lv = "  ".join(f"{p['sim']:.3f} {p['agree']:.3f} {p['purity']:.3f}" for p in per_level)
            print(f"{name:>13} {n:>4} {row['ms_per_step']:8.1f} {str(res.n_used):>9} {fl['l_max']:7.4f} "
                  f"{fl['l_pull']:7.4f} {fl['l_push']:7.4f} | {lv}")
    write_json(args.out, {
        "benchmark": "codebook",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "n_masks": int(inp.masks.features.shape[0]),
        "load_seconds": load_s,
        "runs": runs,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "note": "shared machine; timings are noisy"},
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
