"""Ctrl-C in every long stage: the work so far is kept, one line says so, exit 130, the same command resumes.

Each command line runs as a subprocess on a tiny generated scene; once its
first periodic checkpoint (or first image file) is on disk it gets SIGINT,
then the same command runs again and must continue from the saved step. The
first checkpoint comes early in the run, so the signal lands while it trains
even on a busy machine.

The in-process tests check the parts: Ctrl-C waits for the end of a step,
and a run interrupted and resumed ends exactly like an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ccl_gs.interrupt import child_default_sigint
import pytest
import torch

from ccl_gs.codebook.config import CodebookConfig
from ccl_gs.codebook.train import train_codebook
from ccl_gs.data.synthetic import OutputConfig, SyntheticConfig, generate
from ccl_gs.data.synthetic.simulate import SimConfig
from ccl_gs.field.train import FieldConfig, run_field
from ccl_gs.interrupt import EXIT_INTERRUPTED, Interrupted, StepGuard, save_on_interrupt
from ccl_gs.masks.merge import MergeConfig
from ccl_gs.preprocess import PreprocessConfig, RunOptions, run_preprocess
from ccl_gs.splat.gaussians import InitConfig
from ccl_gs.splat.strategy import DensifyConfig
from ccl_gs.splat.trainer import RGBTrainConfig, run

REPO = Path(__file__).resolve().parents[1]
PRE_FLAGS = ["--mask-source", "precomputed", "--track-source", "precomputed", "--encoder", "oracle",
             "--merge.min-visible-area", "4", "--no-progress"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A 32 px, 16-view scene with its preprocess artifact, a codebook and an RGB run (the field's inputs)."""
    root = tmp_path_factory.mktemp("interrupt")
    scene = tiny_scene(root / "data", views=16)
    pre = root / "pre"
    run_preprocess(
        scene, pre,
        PreprocessConfig(mask_source="precomputed", track_source="precomputed", encoder="oracle",
                         merge=MergeConfig(min_visible_area=4)),
        RunOptions(progress=False),
    )
    train_codebook(pre, CodebookConfig(n_prototypes=16, iterations=20, checkpoint_every=0), root / "cb", progress=False)
    run(RGBTrainConfig(data=scene, out=root / "rgb", iterations=20, sh_degree=0, test_every=4,
                       init=InitConfig(max_points=400), densify=DensifyConfig(refine_start_iter=10**6),
                       save_renders=False, progress=False))
    return {"scene": scene, "pre": pre, "cb": root / "cb", "rgb": root / "rgb", "tmp": root}


def tiny_scene(out: Path, views: int) -> Path:
    """A generated 32 px forward-facing scene of ``views`` views with simulated masks and tracks."""
    (scene,) = generate(
        SyntheticConfig(seed=3, size=32, views=views, path="forward", min_objects=2, max_objects=3, supersample=1),
        OutputConfig(out=out, layout="lerf", points=400),
        SimConfig(level=0),
    )
    return scene


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def interrupt_when(args: list[str], ready: Callable[[], bool], timeout: float = 60.0) -> tuple[int, str]:
    """Start ``python args``, send SIGINT once ``ready()``; returns ``(exit status, stderr)``."""
    p = subprocess.Popen([sys.executable, *args], cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, preexec_fn=child_default_sigint)
    t0 = time.monotonic()
    try:
        while not ready():
            assert p.poll() is None, f"finished before it could be interrupted: {p.stderr.read()}"
            assert time.monotonic() - t0 < timeout, "never started"
            time.sleep(0.01)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, err


def interrupted_line(code: int, err: str) -> str:
    """The one stderr line of a command stopped by Ctrl-C (exit 130, no traceback)."""
    lines = err.strip().splitlines()
    assert code == EXIT_INTERRUPTED and "Traceback" not in err and len(lines) == 1, f"exit {code}\n{err}"
    assert "re-run the same command to resume" in lines[0], lines[0]
    return lines[0]


def interrupted_step(line: str) -> int:
    m = re.match(r"interrupted at step (\d+): checkpoint saved in ", line)
    assert m, line
    return int(m.group(1))


def rerun(args: list[str]) -> str:
    """The same command again, to the end; returns its stdout."""
    r = subprocess.run([sys.executable, *args], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


# ------------------------------------------------------------------------- the four command lines
def test_train_ctrl_c_saves_the_step_and_the_rerun_resumes(tiny):
    out = tiny["tmp"] / "rgb_c"
    args = ["train.py", "--data", str(tiny["scene"]), "--out", str(out), "--iterations", "500", "--checkpoint-every",
            "100", "--sh-degree", "0", "--test-every", "4", "--init.max-points", "400", "--no-progress",
            "--no-save-renders"]
    line = interrupted_line(*interrupt_when(args, (out / "ckpt" / "progress.json").exists))
    step = interrupted_step(line)
    assert json.loads((out / "ckpt" / "progress.json").read_text())["step"] == step
    assert torch.load(out / "ckpt" / "latest.pt", weights_only=False)["step"] == step
    assert 100 <= step < 500 and not (out / "metrics.json").exists()
    assert re.search(rf"500 iterations, \d+ s \(resumed from step {step}\)", rerun(args))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iterations"] == 500 and metrics["resumed_from_step"] == step


def test_preprocess_ctrl_c_keeps_finished_images_and_the_rerun_does_the_rest(tmp_path):
    views = 48  # a few seconds of images at 32 px
    out = tmp_path / "pre"
    args = ["preprocess/run.py", "--data", str(tiny_scene(tmp_path / "data", views)), "--out", str(out), *PRE_FLAGS]
    line = interrupted_line(*interrupt_when(args, lambda: any(out.glob("*.npz"))))
    m = re.match(rf"interrupted: (\d+) of {views} images kept in {re.escape(str(out))}; ", line)
    assert m, line
    kept = int(m.group(1))
    assert 0 < kept < views and len(list(out.glob("*.npz"))) == kept
    assert f"{views - kept} written, {kept} already done; {views} of {views} images complete" in rerun(args)


def test_codebook_ctrl_c_saves_the_step_and_the_rerun_resumes(tiny):
    out = tiny["tmp"] / "cb_c"
    args = ["-m", "ccl_gs.codebook", "--preprocessed", str(tiny["pre"]), "--out", str(out), "--quiet",
            "--n-prototypes", "16", "--pairs-within", "16", "--pairs-across", "32", "--iterations", "1000",
            "--checkpoint-every", "200"]
    line = interrupted_line(*interrupt_when(args, (out / "checkpoint.pt").exists))
    step = interrupted_step(line)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == step
    assert 200 <= step < 1000 and not (out / "manifest.json").exists()
    assert f"(resumed from step {step})" in rerun(args)
    assert json.loads((out / "manifest.json").read_text())["extra"]["steps"] == 1000
    assert not (out / "checkpoint.pt").exists()


def test_field_ctrl_c_saves_the_step_and_the_rerun_resumes(tiny):
    out = tiny["tmp"] / "field_c"
    args = ["-m", "ccl_gs.field", "--supervision", str(tiny["cb"]), "--rgb-run", str(tiny["rgb"]), "--out", str(out),
            "--iterations", "600", "--checkpoint-every", "100", "--no-progress"]
    line = interrupted_line(*interrupt_when(args, (out / "ckpt" / "progress.json").exists))
    step = interrupted_step(line)
    assert json.loads((out / "ckpt" / "progress.json").read_text())["step"] == step
    assert 100 <= step < 600 and not (out / "field.pt").exists()
    assert f"(resumed from step {step})" in rerun(args)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iterations"] == 600 and metrics["resumed_from_step"] == step
    assert not (out / "ckpt").exists()


# ------------------------------------------------------------------------- the parts, in process
def test_ctrl_c_waits_for_the_end_of_the_step():
    done = []
    with StepGuard() as guard:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        done.append("rest of the step")
        with pytest.raises(KeyboardInterrupt):
            guard.check()
        guard.check()  # raised once
    assert done == ["rest of the step"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_save_on_interrupt_saves_once_and_a_second_ctrl_c_does_not_save():
    saved = []
    with pytest.raises(Interrupted, match="^kept 3$"):
        with save_on_interrupt(lambda: saved.append(3) or "kept 3") as guard:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            guard.check()
    assert saved == [3]
    with pytest.raises(Interrupted, match="without saving"):
        with save_on_interrupt(lambda: saved.append(4) or "kept 4"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert saved == [3]
    with pytest.raises(Interrupted, match="^kept 5$"):  # a Ctrl-C during the loop's last step
        with save_on_interrupt(lambda: "kept 5"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)


def _raise_at(step: int) -> Callable[..., None]:
    def hook(s: int, *_) -> None:
        if s == step:
            raise KeyboardInterrupt

    return hook


def test_codebook_interrupted_and_resumed_equals_uninterrupted(tiny):
    cfg = CodebookConfig(n_prototypes=12, iterations=30, batch_size=0, pairs_within=16, pairs_across=32,
                         reseed_every=10, checkpoint_every=0)
    full = train_codebook(tiny["pre"], cfg, tiny["tmp"] / "cb_full", progress=False)
    out = tiny["tmp"] / "cb_int"
    with pytest.raises(Interrupted, match="interrupted at step 20: checkpoint saved in"):
        train_codebook(tiny["pre"], cfg, out, progress=False, on_step=_raise_at(20))  # a re-seed step
    resumed = train_codebook(tiny["pre"], cfg, out, progress=False)
    assert resumed.resumed_from == 20
    assert torch.equal(resumed.prototypes, full.prototypes)
    assert resumed.manifest.extra["usage_log"] == full.manifest.extra["usage_log"]


@pytest.mark.parametrize("schedule", ["frozen", "joint"])
def test_field_interrupted_and_resumed_equals_uninterrupted(tiny, schedule):
    def cfg(name: str) -> FieldConfig:
        return FieldConfig(supervision=tiny["cb"], rgb_run=tiny["rgb"], out=tiny["tmp"] / f"{name}_{schedule}",
                           schedule=schedule, iterations=30, checkpoint_every=1000, progress=False)

    run_field(cfg("field_full"))
    with pytest.raises(Interrupted, match="interrupted at step 13: checkpoint saved in"):
        run_field(cfg("field_int"), on_step=_raise_at(13))
    assert run_field(cfg("field_int"))["resumed_from_step"] == 13
    full = torch.load(tiny["tmp"] / f"field_full_{schedule}" / "field.pt", weights_only=False)
    resumed = torch.load(tiny["tmp"] / f"field_int_{schedule}" / "field.pt", weights_only=False)
    for k, v in full["params"].items():
        torch.testing.assert_close(resumed["params"][k], v, rtol=0, atol=0)
    for k, v in full["head"]["decoder"].items():
        torch.testing.assert_close(resumed["head"]["decoder"][k], v, rtol=0, atol=0)
