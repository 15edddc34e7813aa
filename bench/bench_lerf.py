#!/usr/bin/env python
"""The LERF baseline's NeRF on real and generated scenes: held-out RGB PSNR and seconds.

    python bench/bench_lerf.py fern                 # LLFF fern at 252x189, views 0, 8, 16 held out
    python bench/bench_lerf.py synthetic            # the demo scene of scripts/synthetic.sh (128x128, 24 views)
    python bench/bench_lerf.py fern --preset cpu --iterations 2000 --threads 2

Each case trains a LERF run with :func:`ccl_gs.lerf.train.run` (the code
behind ``python -m ccl_gs.lerf``), language field included (targets from
the synthetic oracles: the fern has no semantic ground truth, so its CLIP
and DINO targets come from a random-weight stand-in and only its RGB is
measured), and reports held-out PSNR, seconds, seconds per iteration and the
preset. The Gaussian figure of the same scene (``bench/results/rgb_fern252.json``)
is printed beside it when present. Results accumulate in
``bench/results/lerf.json`` (one entry per case and preset). Timings are
wall-clock: run on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ccl_gs.io.artifacts import read_json, write_json  # noqa: E402
from ccl_gs.lerf.train import config_for, run  # noqa: E402

RESULTS = REPO / "bench" / "results" / "lerf.json"
FERN = REPO.parent / "shared" / "data" / "llff_fern"


def _synthetic_scene(work: Path) -> Path:
    data = work / "data"
    scene = data / "lerf_ovs" / "synthetic_s0"
    if not (scene / "transforms.json").exists():
        subprocess.run([sys.executable, "-m", "ccl_gs.data.synthetic", "--out", str(data), "--layout", "lerf",
                        "--size", "128", "--views", "24", "--seed", "0", "--path", "forward", "--no-simulate"],
                       cwd=REPO, check=True, capture_output=True)
    return scene


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", choices=["fern", "synthetic"])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--iterations", type=int, default=None, help="default: the preset's")
    ap.add_argument("--rays", type=int, default=None, help="rays per batch (default: the preset's)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    ap.add_argument("--work", type=Path, default=None, help="keep the run here (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        cfg = config_for(args.preset)
        cfg.out, cfg.threads, cfg.progress = work / f"{args.case}_{args.preset}", args.threads, True
        if args.iterations:
            cfg.iterations = args.iterations
        if args.rays:
            cfg.rays_per_batch = args.rays
        if args.case == "fern":
            if not FERN.is_dir():
                print(f"skipped: {FERN} is absent (the shared data folder)")
                return 0
            cfg.data, cfg.factor, cfg.test_every = FERN, 16, 8
            # no semantic ground truth on the fern: random-weight stand-ins give the language targets
            cfg.targets = _stand_in_targets(cfg, work)
        else:
            cfg.data = _synthetic_scene(work)
            cfg.target.clip_encoder, cfg.target.dino_encoder = "oracle", "oracle_dino"
        m = run(cfg)
    row = {"case": args.case, "preset": args.preset, "psnr": m["psnr"], "seconds": m["seconds"],
           "seconds_per_iter": m["seconds_per_iter"], "iterations": m["iterations"], "width": m["width"],
           "height": m["height"], "rays_per_batch": m["rays_per_batch"], "threads": m["threads"],
           "test_views": m["test_views"], "machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    print(f"LERF NeRF ({args.preset}) on {args.case} {m['width']}x{m['height']}: held-out PSNR {m['psnr']:.2f} dB, "
          f"{m['iterations']} iterations in {m['seconds']:.0f} s ({m['seconds_per_iter']:.3f} s/it, "
          f"{m['rays_per_batch']} rays, {m['threads']} threads)")
    gs = REPO / "bench" / "results" / "rgb_fern252.json"
    if args.case == "fern" and gs.exists():
        g = json.loads(gs.read_text())
        g = g.get("result", g)
        if "psnr" in g:
            print(f"Gaussians on the same views (bench/results/rgb_fern252.json): {g['psnr']:.2f} dB in {g.get('seconds', float('nan')):.0f} s")
            row["gaussians_psnr"] = g["psnr"]
    old = read_json(RESULTS) if RESULTS.exists() else {"runs": []}
    old["runs"] = [r for r in old["runs"] if (r["case"], r["preset"]) != (args.case, args.preset)] + [row]
    write_json(RESULTS, old)
    return 0


def _stand_in_targets(cfg, work: Path) -> Path:
    """Targets of the run's scene from random-weight models of the real classes with the real output sizes.

    A small open_clip CLIP (ViT, 512-d embeddings) and a one-block timm ViT
    with patch 8 and 384-d keys stand in for ViT-B-16 and DINO ViT-S/8: the
    NeRF, the language field and their cost are those of a real run; the
    targets carry no meaning.
    """
    import open_clip
    import timm
    import torch

    from ccl_gs.encoders.dino import DinoEncoder
    from ccl_gs.encoders.open_clip import OpenClipEncoder
    from ccl_gs.lerf.targets import TargetsRun, compute_targets
    from ccl_gs.lerf.train import scene_target_config

    torch.manual_seed(0)
    clip = open_clip.model.CLIP(
        embed_dim=512,
        vision_cfg=open_clip.model.CLIPVisionCfg(image_size=64, layers=2, width=64, head_width=32, patch_size=16),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=16, vocab_size=49408, width=64, heads=2, layers=2),
    )
    vit = timm.models.vision_transformer.VisionTransformer(img_size=64, patch_size=8, embed_dim=384, depth=1,
                                                           num_heads=6, num_classes=0, dynamic_img_size=True)
    tcfg = scene_target_config(cfg)
    out = work / "targets"
    compute_targets(tcfg, TargetsRun(out=out, progress=True),
                    clip_encoder=OpenClipEncoder(model_name="stand-in", pretrained=None, model=clip, device="cpu"),
                    dino_encoder=DinoEncoder(model=vit, device="cpu", short_side=tcfg.dino_short_side))
    return out


if __name__ == "__main__":
    sys.exit(main())
