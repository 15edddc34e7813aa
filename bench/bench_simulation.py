#!/usr/bin/env python
"""What each simulation level does to the features: wrong-nearest-class rate and texts / prototypes per track.

For each generated scene (the scenes of ``bench/bench_semantic.py``, in its
work folder; made here when missing) and each simulation level, the scene is
preprocessed with the simulated masks / tracks and the oracle encoder at the
level's options (:data:`ccl_gs.data.synthetic.simulate.ORACLE_LEVELS`), and
:func:`ccl_gs.data.synthetic.consistency.feature_statistics` reports per
level sp / wp: how often a mask's nearest text (class names, look-alikes, part
names) is not its class, and how many distinct nearest texts one track gets
across views. Where the semantic benchmark has trained a codebook for the
same preprocessing (``<work>/s<scene>/level<L>/<variant>_n64_seed0/codebook``),
the distinct nearest *prototypes* per track are reported too.

    python bench/bench_simulation.py [--scenes 0 1 2] [--levels 0 1 2 3] [--work outputs/bench_semantic]

Writes bench/results/simulation.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ccl_gs.data.synthetic.consistency import feature_statistics  # noqa: E402
from ccl_gs.data.synthetic.simulate import LEVEL_NAMES, ORACLE_LEVELS  # noqa: E402
from ccl_gs.io.artifacts import write_json  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from provenance import commit, machine  # noqa: E402

VARIANTS = ("ccl", "ccl_gated", "no_pull_push")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--levels", type=int, nargs="*", default=sorted(ORACLE_LEVELS))
    ap.add_argument("--work", type=Path, default=REPO / "outputs" / "bench_semantic")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "simulation.json")
    args = ap.parse_args()
    bad = [lv for lv in args.levels if lv not in ORACLE_LEVELS]
    if bad:
        ap.error(f"unknown level {bad[0]} (known: {sorted(ORACLE_LEVELS)})")
    from bench_semantic import sh  # noqa: E402  (the semantic benchmark's CLI runner)

    from ccl_gs.codebook import load_codebook
    from ccl_gs.codebook.losses import assign
    from ccl_gs.encoders.oracle import OracleEncoder

    rows = []
    for s in args.scenes:
        name = f"synthetic_s{s}"
        data = args.work / f"s{s}" / "data"
        scene = data / "lerf_ovs" / name
        if not (scene / "transforms.json").exists():
            sh("-m", "ccl_gs.data.synthetic", "--out", str(data), "--layout", "lerf", "--size", str(args.size),
               "--views", "24", "--seed", str(s), "--path", "forward", "--no-simulate")
        for level in args.levels:
            opts = ORACLE_LEVELS[level]
            pre = args.work / f"s{s}" / f"level{level}" / "preprocess"
            sh("-c", "import sys; from ccl_gs.data.synthetic.simulate import SimConfig, write_simulation; "
               f"write_simulation(sys.argv[1], SimConfig(level={level}))", str(scene))
            sh("preprocess/run.py", "--data", str(scene), "--out", str(pre), "--mask-source", "precomputed",
               "--track-source", "precomputed", "--encoder", "oracle", "--oracle.scene-root", str(scene),
               "--oracle.noise", str(opts["noise"]), "--oracle.drift", str(opts["drift"]),
               "--merge.min-visible-area", "10", "--no-progress", "--overwrite")
            enc = OracleEncoder(scene, noise=opts["noise"], drift=opts["drift"])
            row = {"scene": s, "level": level, "level_name": LEVEL_NAMES[level], **opts,
                   "features": feature_statistics(pre, enc)}
            for variant in VARIANTS:
                cb = pre.parent / f"{variant}_n64_seed0" / "codebook"
                if (cb / "manifest.json").exists():
                    try:
                        res = load_codebook(cb, pre)
                    except Exception as e:  # a codebook of other inputs: say so, do not count it
                        row[f"codebook_{variant}"] = f"not comparable: {e}"
                        continue
                    from ccl_gs.codebook.data import load_preprocessed

                    ms = load_preprocessed(pre).masks
                    a = np.zeros(len(ms.levels), np.int64)
                    for lvl in (0, 1):
                        sel = ms.levels == lvl
                        a[sel.numpy()] = assign(ms.features[sel], res.prototypes[lvl])[0].numpy()
                    row[f"codebook_{variant}"] = feature_statistics(pre, enc, a)
            rows.append(row)
            f = row["features"]
            print(f"scene {s} level {level} ({LEVEL_NAMES[level]}): wrong nearest sp {f['sp']['wrong_nearest']:.3f} "
                  f"wp {f['wp']['wrong_nearest']:.3f}; texts/track sp {f['sp']['texts_per_track']:.2f} "
                  f"wp {f['wp']['texts_per_track']:.2f}", flush=True)
    summary = {}
    for level in args.levels:
        rs = [r for r in rows if r["level"] == level]
        summary[str(level)] = {
            lv: {k: float(np.nanmean([r["features"][lv][k] for r in rs])) for k in ("wrong_nearest", "texts_per_track")}
            for lv in ("sp", "wp")
        }
        for variant in VARIANTS:
            cs = [r[f"codebook_{variant}"] for r in rs if isinstance(r.get(f"codebook_{variant}"), dict)]
            if cs:
                summary[str(level)][f"prototypes_per_track_{variant}"] = {
                    lv: float(np.nanmean([c[lv]["prototypes_per_track"] for c in cs])) for lv in ("sp", "wp")
                }
    out = {
        "rows": rows, "summary": summary, "levels": {str(k): {**ORACLE_LEVELS[k], "name": LEVEL_NAMES[k]} for k in args.levels},
        "commit": commit(), "machine": machine(),
        "command": " ".join(sys.argv),
    }
    write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
