"""Train the semantic Gaussian field (stage 3).

    python -m ccl_gs.field --codebook DIR --rgb-run DIR --out DIR [--schedule frozen|joint]
"""

from __future__ import annotations

import argparse
import sys

from ccl_gs.config import add_arguments, from_args
from ccl_gs.field.train import FieldConfig, run_field


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, FieldConfig)
    cfg = from_args(FieldConfig, parser.parse_args(argv), base=FieldConfig())
    try:
        m = run_field(cfg)
    except (ValueError, RuntimeError, OSError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tag = " (reused)" if m.get("reused") else ""
    print(
        f"field ({m['schedule']}): {m['n_gaussians']} Gaussians, label accuracy train "
        f"{m['train_label_accuracy']:.3f} / test {m['test_label_accuracy']:.3f}, {m['seconds']:.0f} s{tag}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
