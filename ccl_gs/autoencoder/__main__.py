"""Command line: fit the language autoencoder (autoencoder baseline, stage 2) to a preprocess artifact.

    python -m ccl_gs.autoencoder --preprocessed SCENE/preprocess --out SCENE/autoencoder [--iterations 3000 ...]

Every :class:`~ccl_gs.autoencoder.model.AutoencoderConfig` field is a flag.
Exits 1 with a one-line message on a user error (missing / corrupt / stale
input, bad flag value).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ccl_gs.autoencoder.model import AutoencoderConfig
from ccl_gs.autoencoder.train import train_autoencoder
from ccl_gs.config import add_arguments, from_args
from ccl_gs.io.artifacts import ArtifactError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ccl_gs.autoencoder", description=__doc__.split("\n")[0])
    p.add_argument("--preprocessed", type=Path, required=True, help="preprocess artifact folder (stage 1 output)")
    p.add_argument("--out", type=Path, required=True, help="autoencoder artifact folder to write")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_arguments(p, AutoencoderConfig)
    ns = p.parse_args(argv)
    opts = {k: vars(ns).pop(k) for k in ("preprocessed", "out", "device", "quiet")}
    logging.basicConfig(level=logging.WARNING if opts["quiet"] else logging.INFO, format="%(message)s")
    try:
        cfg = from_args(AutoencoderConfig, ns, base=AutoencoderConfig())
        art = train_autoencoder(opts["preprocessed"], cfg, opts["out"], device=opts["device"],
                                progress=not opts["quiet"])
    except (ArtifactError, ValueError, FloatingPointError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    ex = art.manifest.extra
    state = "up to date, skipped" if art.skipped else "written"
    print(f"autoencoder {state}: {art.folder}  {ex['n_masks']} masks, latent {ex['latent_dim']}-d, "
          f"reconstruction cosine {ex['reconstruction_cosine_mean']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
