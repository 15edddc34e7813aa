"""Every command line: documented option values are accepted, bad ones refused with one line.

One table row per case: the CLI, its arguments (``{name}`` placeholders are
filled from :func:`paths`: a tiny synthetic scene, its preprocess artifact,
two Blender scenes, an existing regular file, a scratch folder), and what
must happen:

* ``ACCEPT``: the option passes. The exit status is the row's (0, or 2 when
  the run goes on to fail on a later, unrelated input - the row's pattern
  shows how far it got) and stdout + stderr match the pattern.
* ``REFUSE``: non-zero exit status, exactly one line on stderr, no
  traceback, the line matching the pattern (it names the value or path).

Every CLI runs as a subprocess with a timeout. The rows are independent, so
the module fixture :func:`results` runs them two at a time (each CLI start
imports torch: ~2 s) and the parametrized test checks one row.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 120
WORKERS = 2

CLIS: dict[str, list[str]] = {
    "train": ["train.py"],
    "render": ["render.py"],
    "preprocess": ["preprocess/run.py"],
    "lerf_ovs": ["eval/lerf_ovs.py"],
    "ovs3d": ["eval/ovs3d.py"],
    "codebook": ["-m", "ccl_gs.codebook"],
    "autoencoder": ["-m", "ccl_gs.autoencoder"],
    "field": ["-m", "ccl_gs.field"],
    "synthetic": ["-m", "ccl_gs.data.synthetic"],
    "readers": ["-m", "ccl_gs.data.readers"],
    "lerf": ["-m", "ccl_gs.lerf"],
    "lerf_targets": ["-m", "ccl_gs.lerf.targets"],
    "weakseg": ["-m", "ccl_gs.weakseg"],
    "weakseg_targets": ["-m", "ccl_gs.weakseg.targets"],
}
"""How each CLI is started (``python <args>`` in the repository root)."""

ACCEPT, REFUSE = "accept", "refuse"


@dataclass(frozen=True)
class Case:
    """One row: ``cli`` run with ``args`` is accepted or refused (``outcome``), its output matching ``pattern``."""

    cli: str
    args: tuple[str, ...]
    outcome: str
    pattern: str
    rc: int = 0
    """Exit status of an accepted row."""

    @property
    def id(self) -> str:
        return f"{self.cli} {' '.join(self.args)}"


def accept(cli: str, *args: str, pattern: str = "", rc: int = 0) -> Case:
    return Case(cli, args, ACCEPT, pattern, rc)


def refuse(cli: str, *args: str, pattern: str) -> Case:
    return Case(cli, args, REFUSE, pattern)


TRAIN = ("--data", "{scene}", "--no-progress", "--no-save-renders")
PRE = ("--data", "{scene}", "--mask-source", "precomputed", "--track-source", "precomputed", "--encoder", "oracle",
       "--no-progress")
LERF = ("--renders", "{tmp}", "--labels", "{lerf_labels}")
OVS = ("--renders", "{tmp}", "--data", "{ovs_data}")

TRAIN_RUN = accept("train", *TRAIN, "--out", "{tmp}/rgb", "--format", "llff", "--iterations", "2", "--test-every", "0",
                   "--sh-degree", "0", pattern=r"no held-out views, \d+ Gaussians, 2 iterations")
"""A tiny RGB run without test views (also checked by a test of its own)."""

CASES: list[Case] = [
    *(accept(cli, "--help", pattern=r"usage:") for cli in CLIS),
    # train.py
    TRAIN_RUN,
    refuse("train", *TRAIN, "--out", "{tmp}/t", "--format", "foo",
           pattern=r"unknown scene format 'foo' \(known: auto, blender, colmap, llff, nerfstudio\)"),
    refuse("train", *TRAIN, "--out", "{tmp}/t", "--iterations", "0", pattern=r"--iterations must be >= 1, got 0"),
    refuse("train", *TRAIN, "--out", "{tmp}/t", "--test-every", "-1", pattern=r"--test-every must be >= 0"),
    refuse("train", *TRAIN, "--out", "{tmp}/t", "--sh-degree", "9", pattern=r"--sh-degree must be in 0\.\.3, got 9"),
    refuse("train", *TRAIN, "--out", "{file}", pattern=r"{file} is an existing file, not a folder"),
    refuse("train", *TRAIN, "--out", "{tmp}/t", "--init.seeding", "sfm",
           pattern=r"--init.seeding must be 'stereo' or 'random', got 'sfm'"),
    refuse("train", *TRAIN, "--out", "{tmp}/t", "--raster.mode", "mip",
           pattern=r"--raster.mode must be one of classic \| antialiased, got 'mip'"),
    refuse("train", *TRAIN, "--out", "{tmp}/t", "--raster.eps2d", "-0.1", pattern=r"--raster.eps2d must be >= 0"),
    refuse("train", *TRAIN, "--out", "{tmp}/t", "--drop-rate", "1", pattern=r"--drop-rate must be in \[0, 1\), got 1"),
    refuse("train", *TRAIN, "--out", "{tmp}/t", "--multiview.best-views", "9",
           pattern=r"--multiview.best-views \(9\) must not exceed --multiview.neighbours \(4\)"),
    # preprocess/run.py
    refuse("preprocess", *PRE, "--out", "{file}", pattern=r"{file} is an existing file"),
    refuse("preprocess", "--data", "{scene}", "--out", "{tmp}/p", "--encoder", "bogus",
           pattern=r"unknown --encoder 'bogus' \(known: .*open_clip, oracle"),
    # stage 2
    refuse("autoencoder", "--preprocessed", "{pre}", "--out", "{file}", pattern=r"{file} is an existing file"),
    refuse("codebook", "--preprocessed", "{pre}", "--out", "{file}", pattern=r"{file} is an existing file"),
    # stage 3
    refuse("field", "--out", "{tmp}/f", "--iterations", "-4", pattern=r"--iterations must be >= 1, got -4"),
    refuse("field", "--out", "{tmp}/f", "--checkpoint-every", "0", pattern=r"--checkpoint-every must be >= 1, got 0"),
    refuse("field", "--out", "{file}", "--supervision", "{pre}", pattern=r"{file} is an existing file"),
    # synthetic data
    refuse("synthetic", "--out", "{file}", "--size", "32", "--views", "4", pattern=r"{file} is an existing file"),
    # scene readers
    accept("readers", "{scene}", "--test-every", "0", pattern=r"views       4: train 4, test 0"),
    accept("readers", "{blender_ok}", pattern=r"\(blender\)"),
    refuse("readers", "{blender_mixed}", pattern=r"r_1\.png: no alpha channel, while 2 of 3 frames have one"),
    refuse("readers", "{scene}", "--test-every", "-1", pattern=r"--test-every must be >= 0"),
    refuse("readers", "{scene}", "--format", "foo", pattern=r"unknown scene format 'foo'"),
    # LERF: targets and training
    accept("lerf_targets", "--data", "{scene}", "--out", "{tmp}/lt", "--clip-encoder", "oracle", "--dino-encoder",
           "oracle_dino", "--oracle-dino.dim", "4", "--no-progress", pattern=r"lerf targets: 3 views \(3 computed now\), complete"),
    refuse("lerf_targets", "--data", "{scene}", "--out", "{tmp}/lt2", "--clip-encoder", "bogus",
           pattern=r"unknown --clip-encoder 'bogus' \(known: open_clip, oracle\)"),
    refuse("lerf_targets", "--data", "{scene}", "--out", "{tmp}/lt3", "--shard", "3/2", pattern=r"--shard 3/2: need 0 <= i < n"),
    refuse("lerf_targets", "--data", "{scene}", "--out", "{file}", "--clip-encoder", "oracle",
           pattern=r"{file} is an existing file"),
    refuse("lerf", "--data", "{scene}", "--out", "{tmp}/l", "--preset", "foo",
           pattern=r"unknown --preset 'foo' \(known: lerf, lerf-lite, cpu\)"),
    refuse("lerf", "--data", "{scene}", "--out", "{tmp}/l", "--iterations", "0", pattern=r"--iterations must be >= 1, got 0"),
    refuse("lerf", "--data", "{scene}", "--out", "{file}", pattern=r"{file} is an existing file"),
    # the 3D-OVS method: targets and training
    accept("weakseg_targets", "--data", "{scene}", "--out", "{tmp}/wt", "--clip-encoder", "oracle", "--dino-encoder",
           "oracle_dino", "--oracle-dino.dim", "4", "--oracle.dim", "16", "--clip-downsample", "2", "--no-progress",
           pattern=r"3D-OVS targets: \d+ views \(\d+ computed now\), complete"),
    refuse("weakseg_targets", "--data", "{scene}", "--out", "{tmp}/wt2", "--clip-encoder", "bogus",
           pattern=r"unknown --clip-encoder 'bogus' \(known: open_clip, oracle\)"),
    refuse("weakseg_targets", "--data", "{scene}", "--out", "{tmp}/wt3", "--crop-divisors", "5", "7",
           pattern=r"--crop-divisors needs 3 values >= 1"),
    refuse("weakseg", "--rgb-run", "{tmp}/nothing", "--out", "{tmp}/w", pattern=r"no finished RGB run at"),
    refuse("weakseg", "--rgb-run", "{tmp}/nothing", "--out", "{tmp}/w", "--iterations", "0",
           pattern=r"--iterations must be >= 1, got 0"),
    refuse("weakseg", "--rgb-run", "{tmp}/nothing", "--out", "{tmp}/w", "--model.selection", "foo",
           pattern=r"--model.selection must be one of"),
    refuse("weakseg", "--rgb-run", "{tmp}/nothing", "--out", "{file}", pattern=r"{file} is an existing file"),
    # render.py
    refuse("render", "--field-dir", "{tmp}/nothing", "--out", "{tmp}/r", "--queries", "x", pattern=r"no trained run at"),
    refuse("render", "--field-dir", "{tmp}", "--out", "{file}", "--queries", "x", pattern=r"{file} is an existing file"),
    # evaluation (an accepted --out lets the run go on to the renders, missing here)
    accept("lerf_ovs", *LERF, "--out", "{tmp}/r.json", rc=2, pattern=r"missing render folder"),
    refuse("lerf_ovs", *LERF, "--out", "{tmp}", pattern=r"{tmp} names a folder"),
    refuse("lerf_ovs", *LERF, "--out", "{tmp}/new/", pattern=r"{tmp}/new/ names a folder"),
    accept("ovs3d", *OVS, "--out", "{tmp}/r.json", rc=2, pattern=r"missing render folder"),
    refuse("ovs3d", *OVS, "--out", "{tmp}", pattern=r"{tmp} names a folder"),
    refuse("ovs3d", *OVS, "--out", "{tmp}/r.json/", pattern=r"r\.json/ names a folder"),
    refuse("ovs3d", *OVS, "--out", "{file}/r.json", pattern=r"{file} is a file, not a folder"),
]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def _cli(cli: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *CLIS[cli], *args], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=TIMEOUT
    )


def _write_blender(root: Path, alpha: list[bool]) -> Path:
    """A Blender scene of 8x8 frames, RGBA where ``alpha`` says so, else RGB."""
    (root / "train").mkdir(parents=True)
    frames = []
    for i, a in enumerate(alpha):
        Image.new("RGBA" if a else "RGB", (8, 8)).save(root / "train" / f"r_{i}.png")
        c2w = np.eye(4)
        c2w[2, 3] = 3.0 + i
        frames.append({"file_path": f"./train/r_{i}", "transform_matrix": c2w.tolist()})
    (root / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    (root / "transforms_test.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": []}))
    return root


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    """The inputs the rows name: a 4-view 32 px synthetic scene (+ its preprocess artifact), Blender scenes, a file."""
    base = tmp_path_factory.mktemp("cli")
    data = base / "data"
    proc = _cli("synthetic", ["--out", str(data), "--size", "32", "--views", "4"])
    assert proc.returncode == 0, proc.stderr
    scene = data / "3dovs" / "synthetic_s0"
    pre = base / "pre"
    proc = _cli("preprocess", [a.format(scene=scene) for a in PRE] + ["--out", str(pre)])
    assert proc.returncode == 0, proc.stderr
    file = base / "file.txt"
    file.write_text("not a folder\n")
    tmp = base / "tmp"
    tmp.mkdir()
    return {
        "scene": str(scene),
        "pre": str(pre),
        "lerf_labels": str(data / "lerf_ovs" / "label"),
        "ovs_data": str(data / "3dovs"),
        "blender_ok": str(_write_blender(base / "blender_ok", [True, True])),
        "blender_mixed": str(_write_blender(base / "blender_mixed", [True, False, True])),
        "file": str(file),
        "tmp": str(tmp),
    }


@pytest.fixture(scope="module")
def results(paths) -> dict[str, tuple[list[str], subprocess.CompletedProcess]]:
    """Every row run once (``WORKERS`` at a time): ``{case id: (filled args, process)}``."""

    def run(case: Case):
        args = [a.format(**paths) for a in case.args]
        return case.id, (args, _cli(case.cli, args))

    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(pool.map(run, CASES))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cli_option(case: Case, results, paths):
    args, proc = results[case.id]
    pattern = case.pattern.format(**{k: re.escape(v) for k, v in paths.items()})
    shown = f"python {' '.join(CLIS[case.cli] + args)}\nexit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    if case.outcome == ACCEPT:
        assert proc.returncode == case.rc, shown
        assert re.search(pattern, proc.stdout + proc.stderr), shown
        return
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, shown
    assert "Traceback" not in proc.stderr and len(lines) == 1, shown
    assert re.search(pattern, lines[0]), shown


def test_train_without_test_views_writes_standard_json_and_reuses_it(results, paths):
    """``--test-every 0``: no held-out metrics, written as JSON null (not NaN); the rerun reuses the run."""
    args, proc = results[TRAIN_RUN.id]
    assert proc.returncode == 0, proc.stderr

    def no_constants(name: str):
        raise AssertionError(f"non-standard JSON constant {name}")

    metrics = json.loads((Path(paths["tmp"]) / "rgb" / "metrics.json").read_text(), parse_constant=no_constants)
    assert metrics["psnr"] is None and metrics["ssim"] is None and metrics["test_views"] == []
    again = _cli("train", args)
    assert again.returncode == 0, again.stderr
    assert "no held-out views" in again.stdout and "reused finished run" in again.stdout
