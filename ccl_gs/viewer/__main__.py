"""Fly through a trained run in the browser, type a query, see where it is, export the selection.

    python -m ccl_gs.viewer --field-dir outputs/demo/field          # semantic field or LERF run
    python -m ccl_gs.viewer --run outputs/demo/rgb                  # RGB-only run of train.py

serves a local page (127.0.0.1, a free port unless --port) and prints its
URL. The scene is rendered live with the project's renderer: lower
resolution while the camera moves, --max-resolution once it is still. The
training cameras are drawn as frustums (click one to jump to it). The page
takes queries separated by ';', shows the heat map (or the colour, or the
language features), and "Select" highlights the selection that "Export
selection (PLY)" writes (render.py's selection/<query>.ply). Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from ccl_gs.config import add_arguments, from_args


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT, even when the shell started the process with it ignored) and SIGTERM stop the viewer cleanly."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def main(argv: list[str] | None = None) -> int:
    from ccl_gs.viewer.server import ViewerConfig, load_model, start

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, ViewerConfig)
    ns = parser.parse_args(argv)
    _stop_on_signals()
    try:
        cfg = from_args(ViewerConfig, ns, base=ViewerConfig())
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        from ccl_gs.runtime import device_for_run

        model = load_model(cfg, device_for_run())
        viewer, url = start(cfg, model)
    except KeyboardInterrupt:
        print("interrupted while loading", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"viewer: {url}  ({model.scene.name}; Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut the shutdown short
    viewer.close()
    print("viewer stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
