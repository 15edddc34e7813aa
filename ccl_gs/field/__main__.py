"""Train the semantic Gaussian field (stage 3).

    python -m ccl_gs.field --supervision DIR --rgb-run DIR --out DIR [--schedule frozen|joint]

--supervision is the stage-2 artifact and picks the method: a codebook
folder (CCL-LGS), an autoencoder folder (LangSplat-style baseline) or the
preprocess folder itself (raw-feature baseline). Ctrl-C saves a checkpoint of
the current step in DIR/ckpt and exits 130; the same command resumes from it.
"""

from __future__ import annotations

import argparse
import sys

from ccl_gs.config import add_arguments, from_args
from ccl_gs.field.train import FieldConfig, run_field
from ccl_gs.interrupt import report as report_interrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, FieldConfig)
    ns = parser.parse_args(argv)
    try:
        m = run_field(from_args(FieldConfig, ns, base=FieldConfig()))
    except KeyboardInterrupt as e:
        return report_interrupt(e)
    except (ValueError, RuntimeError, OSError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if m.get("reused"):
        tag = " (reused)"
    else:
        tag = f" (resumed from step {m['resumed_from_step']})" if m.get("resumed_from_step") else ""
    fit = m["fit_measure"]
    test = m[f"test_{fit}"]
    print(
        f"field ({m['method']}, {m['schedule']}): {m['n_gaussians']} Gaussians, {fit.replace('_', ' ')} train "
        f"{m[f'train_{fit}']:.3f} / test {'n/a' if test is None else f'{test:.3f}'}, {m['seconds']:.0f} s{tag}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
