#!/usr/bin/env python
"""Answer text queries with a trained language field (stage 4).

    python render.py --field-dir outputs/scene/field --out outputs/scene/render \\
        --queries "mug" "table" --split test

writes RGB renders, relevancy heat maps over the RGB, masks, the evaluation
inputs (``lerf_ovs/`` and, with ``--ovs3d-data``, ``ovs3d/``) and one PLY of
selected Gaussians per query; see :mod:`ccl_gs.field.render`. A field whose
inputs changed since training is refused (exit 2, one line).
"""

from __future__ import annotations

import argparse
import sys

from ccl_gs.config import add_arguments, from_args
from ccl_gs.field.render import RenderConfig, render_queries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, RenderConfig)
    cfg = from_args(RenderConfig, parser.parse_args(argv), base=RenderConfig())
    try:
        s = render_queries(cfg)
    except KeyboardInterrupt:
        print(f"interrupted: files written so far are complete; re-run to render the rest into {cfg.out}", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t = s["seconds_per_view_all_queries"]
    timing = "" if t is None else f" ({1000 * t:.0f} ms per view for all queries)"
    print(f"{s['scene']}: {len(s['views'])} views x {len(s['queries'])} queries -> {cfg.out}{timing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
