"""The viewer end to end: ``python -m ccl_gs.viewer`` served to a real headless Chromium.

The page is opened at the first training camera; a query typed into the
"Queries" box must put the heat map on the object (checked on screenshot
pixels against the scene's exact ground truth, mapped through the camera),
"Export selection (PLY)" must write the file it names on the page, and
Ctrl-C must stop the server without a traceback. Skipped when Debian's
``chromium`` / ``chromium-driver`` or selenium are absent.
"""

from __future__ import annotations

import io
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WINDOW = (1400, 700)
BROWSER_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def _browser_missing() -> str | None:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return "Chromium is not installed (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


class ViewerProcess:
    """``python -m ccl_gs.viewer ARGS`` in the background, its output read line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ccl_gs.viewer", *args], cwd=REPO, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)

    def url(self, timeout: float = 180.0) -> str:
        """The URL the viewer prints once it serves."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=1.0)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"viewer exited {self.proc.returncode}: {self.proc.stderr.read()}")
                continue
            if line.startswith("viewer: "):
                return line.split()[1]
        raise AssertionError("viewer printed no URL")

    def interrupt(self, timeout: float = 60.0) -> tuple[int, str]:
        """Ctrl-C; returns the exit status and stderr."""
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return rc, self.proc.stderr.read()


@pytest.fixture()
def browser(tmp_path):
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (*BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _screenshot(driver) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"))


def _page_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _wait_for(driver, predicate, what: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate(_page_text(driver)):
            return
        time.sleep(0.5)
    raise AssertionError(f"page never showed {what}; it shows:\n{_page_text(driver)}")


def _settled_screenshot(driver, must_contain: str, still: float = 2.0) -> np.ndarray:
    """A screenshot once the status line contains ``must_contain`` and stopped changing (the full-resolution frame)."""
    _wait_for(driver, lambda t: must_contain in t, repr(must_contain))
    last, since = _page_text(driver), time.monotonic()
    while time.monotonic() - since < still:
        time.sleep(0.5)
        now = _page_text(driver)
        if now != last:
            last, since = now, time.monotonic()
    return _screenshot(driver)


def _gt_in_screen(gt_mask: np.ndarray, K: np.ndarray, screen: tuple[int, int], fov_y: float) -> np.ndarray:
    """The training-view mask ``[H, W]`` seen through the page's camera (same pose, vertical FOV ``fov_y``):
    ``[Hs, Ws]`` bool, False outside the training image."""
    Ws, Hs = screen
    f = 0.5 * Hs / np.tan(0.5 * fov_y)
    ys, xs = np.mgrid[0:Hs, 0:Ws] + 0.5
    u = K[0, 2] + K[0, 0] * (xs - Ws / 2) / f
    v = K[1, 2] + K[1, 1] * (ys - Hs / 2) / f
    H, W = gt_mask.shape
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    out = np.zeros((Hs, Ws), bool)
    out[inside] = gt_mask[v[inside].astype(int), u[inside].astype(int)]
    return out


def _type_query(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.XPATH, "//label[text()='Queries']/ancestor::div[.//input][1]//input")
    box.clear()
    box.send_keys(text)


def test_query_in_the_browser_puts_the_heat_map_on_the_object(browser, tiny_field, ground_truth, heat, tmp_path):
    import torch

    from ccl_gs.field.render import load_viewable_run
    from ccl_gs.metrics.lerf_ovs import query_slug
    from ccl_gs.viewer.camera import pose_from_view
    from selenium.webdriver.common.by import By

    model = load_viewable_run(tiny_field["field"], None, torch.device("cpu"))
    item = model.dataset("train")[0]  # --start-view 0
    K = item["K"].numpy().astype(np.float64)
    fov_y = pose_from_view(item["viewmat"].numpy(), K, int(item["height"])).fov_y
    name = [c for c in ground_truth.classes if c not in ground_truth.meta["stuff_classes"]][0]
    obj = ground_truth.view(item["index"])["class_id"] == ground_truth.classes.index(name) + 1

    out = tmp_path / "selection"
    viewer = ViewerProcess("--field-dir", str(tiny_field["field"]), "--out", str(out), "--start-view", "0")
    try:
        url = viewer.url()
        assert url.startswith("http://127.0.0.1:")
        browser.get(url)
        before = _settled_screenshot(browser, "frame ")
        _type_query(browser, name)
        after = _settled_screenshot(browser, "peak relevancy")
        Hs, Ws = after.shape[:2]
        where = _gt_in_screen(binary_dilation(obj, iterations=2), K, (Ws, Hs), fov_y)
        hot = heat(after, before) > 0.5
        print(f"heat map: {hot.sum()} hot pixels, {(hot & where).sum()} on the object")
        assert hot.sum() > 500, "no heat map on the page"
        assert (hot & where).sum() >= 0.85 * hot.sum(), "the heat map is not on the object"
        core = _gt_in_screen(obj, K, (Ws, Hs), fov_y)
        assert (hot & core).sum() >= 0.3 * core.sum(), "the heat map covers little of the object"

        # Export selection (PLY): the file is written and named on the page
        browser.find_element(By.XPATH, "//button[contains(., 'Export selection')]").click()
        _wait_for(browser, lambda t: "selected ->" in t, "the export result")
        ply = out / f"{query_slug(name)}.ply"
        assert ply.is_file() and str(ply) in _page_text(browser)
    finally:
        rc, err = viewer.interrupt()
    assert rc in (0, 130) and "Traceback" not in err, err
    assert "viewer stopped" in "".join(viewer.stdout)


def test_rgb_only_run_serves_without_a_query_panel(browser, tiny_field):
    viewer = ViewerProcess("--run", str(tiny_field["rgb"]))
    try:
        browser.get(viewer.url())
        shot = _settled_screenshot(browser, "frame ")
        assert "RGB-only run" in _page_text(browser) and "Queries" not in _page_text(browser)
        assert shot.std() > 5  # the scene is drawn
    finally:
        rc, err = viewer.interrupt()
    assert rc in (0, 130) and "Traceback" not in err, err


def test_cli_errors_are_one_line(tiny_field, tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ccl_gs.viewer", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})

    for args, pattern in [
        (("--field-dir", str(tmp_path / "nothing")), "no trained run"),
        (("--field-dir", str(tmp_path)), "holds no trained run"),
        ((), "exactly one of"),
        (("--run", str(tmp_path)), "no finished RGB run"),
        (("--field-dir", str(tiny_field["field"]), "--port", "70000"), "--port"),
        (("--field-dir", str(tiny_field["field"]), "--start-view", "99"), "--start-view 99"),
    ]:
        r = run(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and pattern in r.stderr, (args, r.stderr)


def test_a_taken_port_is_refused(tiny_field):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "ccl_gs.viewer", "--field-dir", str(tiny_field["field"]),
                            "--port", str(port)], cwd=REPO, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and f"port {port}" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_jumping_to_a_training_camera_moves_the_page_there(browser, tiny_field):
    """What a click on a frustum does: the browser's camera takes the training camera's pose and field of view."""
    import torch

    from ccl_gs.viewer.camera import viewmat_from_pose
    from ccl_gs.viewer.server import ViewerConfig, load_model, start

    cfg = ViewerConfig(field_dir=tiny_field["field"])
    viewer, url = start(cfg, load_model(cfg, torch.device("cpu")))
    try:
        assert len(viewer.frustums) == len(viewer.cameras) == 7
        browser.get(url)
        _wait_for(browser, lambda t: "frame " in t, "a frame")
        (client,) = viewer.server.get_clients().values()
        reported = []
        client.camera.on_update(lambda cam: reported.append((cam.wxyz.copy(), cam.position.copy(), cam.fov)))
        k = len(viewer.cameras) - 1
        target = viewer.cameras[k].pose
        viewer.jump(client, k)
        want = viewmat_from_pose(target.wxyz, target.position)

        def arrived() -> bool:
            return any(np.allclose(viewmat_from_pose(w, p), want, atol=1e-3) and abs(f - target.fov_y) < 1e-3
                       for w, p, f in list(reported))

        end = time.monotonic() + 30
        while not arrived() and time.monotonic() < end:
            time.sleep(0.2)
        assert arrived(), f"the browser reported {reported[-1:]} instead of {want}"
    finally:
        viewer.close()
