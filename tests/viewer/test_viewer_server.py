"""The per-browser render loop: lower resolution while the camera moves, full resolution once it is still."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np

from ccl_gs.viewer.frame import Frame
from ccl_gs.viewer.server import ClientLoop, ViewerConfig


class FakeCamera:
    """What the loop reads of a browser camera, and the update hook it registers."""

    def __init__(self) -> None:
        self.wxyz = np.array([1.0, 0.0, 0.0, 0.0])
        self.position = np.zeros(3)
        self.fov = 1.0
        self.aspect = 1.0
        self.image_width = self.image_height = 1000
        self.callbacks = []

    def on_update(self, cb) -> None:
        self.callbacks.append(cb)

    def move(self) -> None:
        self.position = self.position + 0.01
        for cb in self.callbacks:
            cb(self)


class FakeViewer:
    """Frames that take time in proportion to their pixels (1 ms per 64x64 block at most 40 ms)."""

    def __init__(self, cfg: ViewerConfig) -> None:
        self.cfg = cfg
        self.sides: list[int] = []
        self.lock = threading.Lock()

    def frame(self, item) -> Frame:
        w, h = item["width"], item["height"]
        t = 0.04 * (w * h) / 512**2
        time.sleep(t)
        with self.lock:
            self.sides.append(max(w, h))
        return Frame(np.zeros((h, w, 3), np.uint8), t)

    def report(self, frame) -> None:
        pass

    def set_status(self, text: str) -> None:
        raise AssertionError(text)


def test_moving_camera_lowers_the_resolution_and_a_still_one_refines():
    cfg = ViewerConfig(max_resolution=512, min_resolution=64, target_fps=100.0, still_seconds=0.3)
    viewer = FakeViewer(cfg)
    sent = []
    cam = FakeCamera()
    client = SimpleNamespace(camera=cam, client_id=1,
                             scene=SimpleNamespace(set_background_image=lambda img, **kw: sent.append(img.shape)))
    loop = ClientLoop(viewer, client)
    loop.start()
    try:
        loop.changed()
        time.sleep(0.3)
        assert viewer.sides and viewer.sides[-1] == 512  # first frame: still camera, full size
        n0 = len(viewer.sides)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # drag the camera for a second
            cam.move()
            time.sleep(0.02)
        moving = viewer.sides[n0:]
        assert len(moving) >= 5 and max(moving[1:]) < 512  # 40 ms frames at 512 miss 10 ms: smaller
        assert min(moving) >= 64
        time.sleep(1.0)  # still: one refined frame at full size, then nothing
        assert viewer.sides[-1] == 512
        n1 = len(viewer.sides)
        time.sleep(0.6)
        assert len(viewer.sides) == n1
        assert sent[-1] == (512, 512, 3)
    finally:
        loop.stop()
        loop.join(2.0)
