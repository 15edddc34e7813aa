"""Command line: train the contrastive codebook on a preprocess artifact.

    python -m ccl_gs.codebook --preprocessed SCENE/ccl/preprocess --out SCENE/ccl/codebook \
        [--variant ccl|no_pull_push|pull_only|push_only] [--n-prototypes 64 ...]

Every :class:`~ccl_gs.codebook.config.CodebookConfig` field is a flag; the
variant gives the defaults the flags override. Exits 1 with a one-line
message on a user error (missing/corrupt/stale input, bad flag value).
Ctrl-C saves a checkpoint of the current step and exits 130; the same
command resumes from it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ccl_gs.codebook.config import CODEBOOK_VARIANTS, CodebookConfig
from ccl_gs.codebook.train import train_codebook
from ccl_gs.config import add_arguments, from_args
from ccl_gs.interrupt import report as report_interrupt
from ccl_gs.io.artifacts import ArtifactError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ccl_gs.codebook", description=__doc__.split("\n")[0])
    p.add_argument("--preprocessed", type=Path, required=True, help="preprocess artifact folder (stage 1 output)")
    p.add_argument("--out", type=Path, required=True, help="codebook artifact folder to write")
    p.add_argument(
        "--variant", default="ccl", choices=sorted(CODEBOOK_VARIANTS), help="named config the flags start from"
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    add_arguments(p, CodebookConfig)
    return p


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    opts = {k: vars(ns).pop(k) for k in ("preprocessed", "out", "variant", "device", "quiet")}
    logging.basicConfig(level=logging.WARNING if opts["quiet"] else logging.INFO, format="%(message)s")
    try:
        cfg = from_args(CodebookConfig, ns, base=CODEBOOK_VARIANTS[opts["variant"]])
        res = train_codebook(opts["preprocessed"], cfg, opts["out"], device=opts["device"], progress=not opts["quiet"])
    except KeyboardInterrupt as e:
        return report_interrupt(e)
    except (ArtifactError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    ex = res.manifest.extra
    state = "up to date, skipped" if res.skipped else "written"
    if res.resumed_from:
        state += f" (resumed from step {res.resumed_from})"
    print(
        f"codebook {state}: {res.out_dir}  used prototypes {ex.get('used_prototypes')}/{ex.get('n_prototypes')}  "
        f"final losses {{{', '.join(f'{k}: {_fmt(v)}' for k, v in ex.get('final_losses', {}).items())}}}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
