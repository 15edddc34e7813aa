"""LERF runs end to end on a tiny scene: every preset, resume after a kill, render + eval, bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ccl_gs.interrupt import child_default_sigint
import pytest
import torch

from ccl_gs.config import to_dict
from ccl_gs.field.language import QueryError
from ccl_gs.field.render import RenderConfig, render_queries
from ccl_gs.io.artifacts import ArtifactError, write_json
from ccl_gs.lerf.targets import TargetsError, TargetsRun, compute_targets, load_targets
from ccl_gs.lerf.train import PRESETS, run

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_trains_two_iterations(lerf_scene, make_run, tmp_path, preset):
    m = run(make_run(tmp_path / preset, preset))
    assert m["iterations"] == 2 and np.isfinite(m["psnr"])
    assert (tmp_path / preset / "lerf.pt").is_file()
    saved = json.loads((tmp_path / preset / "config.json").read_text())
    assert saved["preset"] == preset
    again = run(make_run(tmp_path / preset, preset))
    assert again.get("reused") is True


def test_cpu_run_learns_and_queries(lerf_scene, make_run, tmp_path):
    """A short run reconstructs the tiny scene; render.py writes the LERF-OVS inputs that eval reads."""
    cfg = make_run(tmp_path / "run", iterations=150)
    cfg.rays_per_batch = 256
    m = run(cfg)
    assert m["psnr"] > 18, m
    out = tmp_path / "render"
    s = render_queries(RenderConfig(field_dir=cfg.out, out=out, lerf_labels=lerf_scene["labels"], lerf_scales=4,
                                    lerf_search_stride=2))
    assert s["levels"] == 1 and s["queries"]
    rels = sorted((out / "lerf_ovs").rglob("*.npy"))
    assert len(rels) == len(s["queries"]) * len(s["views"])
    arr = np.load(rels[0])
    assert arr.shape == (1, 32, 32) and np.isfinite(arr).all()
    assert s["selected"] and all(n >= 0 for n in s["selected"].values())
    assert any((out / "selection").glob("*.ply"))
    r = subprocess.run(
        [sys.executable, str(REPO / "eval" / "lerf_ovs.py"), "--renders", str(out / "lerf_ovs"), "--labels",
         str(lerf_scene["labels"].parent), "--scenes", lerf_scene["scene"].name, "--out", str(tmp_path / "e.json")],
        capture_output=True, text=True, cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "e.json").read_text())
    assert json.dumps(res).count("miou") >= 1


def test_resume_after_kill_continues_from_the_checkpoint(lerf_scene, make_run, tmp_path):
    cfg = make_run(tmp_path / "k", iterations=400, checkpoint_every=5)
    cfg_path = tmp_path / "cfg.json"
    write_json(cfg_path, to_dict(cfg))
    code = (
        "import sys, json; from ccl_gs.config import from_dict; from ccl_gs.lerf.train import LerfTrainConfig, run; "
        f"run(from_dict(LerfTrainConfig, json.load(open({str(cfg_path)!r}))))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env)
    prog = tmp_path / "k" / "ckpt" / "progress.json"
    t0 = time.time()
    while not prog.exists() and time.time() - t0 < 120:
        time.sleep(0.2)
    time.sleep(1.0)
    p.send_signal(signal.SIGKILL)
    p.wait()
    step = json.loads(prog.read_text())["step"]
    assert 5 <= step < 400 and not (tmp_path / "k" / "lerf.pt").exists()
    cfg.iterations = 400  # same config: resumes
    from ccl_gs.lerf.train import LerfTrainer, run_status

    assert run_status(cfg) == "resume"
    ck = torch.load(tmp_path / "k" / "ckpt" / "latest.pt", weights_only=False)
    assert ck["step"] >= 5


def test_ctrl_c_saves_and_exits_130(lerf_scene, make_run, tmp_path):
    out = tmp_path / "c"
    args = [sys.executable, "-m", "ccl_gs.lerf", "--data", str(lerf_scene["scene"]), "--out", str(out),
            "--targets", str(lerf_scene["targets"]), "--test-every", "3", "--iterations", "100000",
            "--rays-per-batch", "64", "--no-progress", "--target.clip-encoder", "oracle",
            "--target.dino-encoder", "oracle_dino"]
    p = subprocess.Popen(args, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.PIPE, text=True,
                         preexec_fn=child_default_sigint)
    t0 = time.time()
    while not (out / "config.json").exists() and time.time() - t0 < 120:
        time.sleep(0.2)
    time.sleep(3.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "re-run the same command to resume" in err and "Traceback" not in err
    step = json.loads((out / "ckpt" / "progress.json").read_text())["step"]
    assert step >= 1


def test_bad_inputs_are_one_line_errors(lerf_scene, make_run, tmp_path):
    # a query before training
    cfg = make_run(tmp_path / "untrained")
    (tmp_path / "untrained").mkdir()
    write_json(tmp_path / "untrained" / "config.json", to_dict(cfg))
    with pytest.raises(QueryError, match="no trained LERF model"):
        render_queries(RenderConfig(field_dir=tmp_path / "untrained", out=tmp_path / "r0", queries=["x"]))
    # a checkpoint of another format
    (tmp_path / "untrained" / "lerf.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="corrupt checkpoint"):
        render_queries(RenderConfig(field_dir=tmp_path / "untrained", out=tmp_path / "r1", queries=["x"]))
    torch.save({"kind": "gaussians", "format_version": 1}, tmp_path / "untrained" / "lerf.pt")
    with pytest.raises(ArtifactError, match="is not a lerf of format"):
        render_queries(RenderConfig(field_dir=tmp_path / "untrained", out=tmp_path / "r2", queries=["x"]))
    # a trained run queried with another encoder than its targets'
    trained = make_run(tmp_path / "t")
    run(trained)

    class Other:
        name = "open_clip:ViT-B-16/laion2b_s34b_b88k"
        dim = 32

    with pytest.raises(QueryError, match="differs from the encoder of the LERF targets"):
        render_queries(RenderConfig(field_dir=trained.out, out=tmp_path / "r3", queries=["x"]), encoder=Other())
    # the CLI: one line, exit 2
    r = subprocess.run([sys.executable, "render.py", "--field-dir", str(tmp_path / "untrained"), "--out",
                        str(tmp_path / "r4"), "--queries", "x"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_stale_and_mismatched_targets_are_refused(lerf_scene, make_run, tmp_path):
    import shutil

    scene = tmp_path / "scene"
    shutil.copytree(lerf_scene["scene"], scene)
    tcfg = lerf_scene["tcfg"]
    import dataclasses

    tcfg = dataclasses.replace(tcfg, data=scene)
    compute_targets(tcfg, TargetsRun(out=tmp_path / "tg", progress=False))
    assert load_targets(tmp_path / "tg", tcfg).dino.shape[0] == 4
    # another scene setting
    with pytest.raises(TargetsError, match="another scene setting"):
        load_targets(tmp_path / "tg", dataclasses.replace(tcfg, test_every=2))
    # an image changed since: stale
    img = sorted((scene / "images").iterdir())[1]
    img.write_bytes(sorted((scene / "images").iterdir())[2].read_bytes())
    with pytest.raises(TargetsError, match="stale"):
        load_targets(tmp_path / "tg", tcfg)
    # the stage refuses to mix: another config in the same folder
    with pytest.raises(TargetsError, match="another config or inputs"):
        compute_targets(dataclasses.replace(tcfg, dino_encoder="oracle_dino", oracle_dino=dataclasses.replace(
            tcfg.oracle_dino, dim=4)), TargetsRun(out=tmp_path / "tg", progress=False))
    # an incomplete folder names what is missing
    victim = sorted((tmp_path / "tg" / "views").iterdir())[0]
    victim.unlink()
    with pytest.raises(TargetsError, match="incomplete"):
        load_targets(tmp_path / "tg")


def test_targets_shards_and_resume(lerf_scene, make_run, tmp_path):
    import dataclasses

    tcfg = lerf_scene["tcfg"]
    a = compute_targets(tcfg, TargetsRun(out=tmp_path / "s", shard="0/2", progress=False))
    assert a["missing"] and a["computed"] == 2
    b = compute_targets(tcfg, TargetsRun(out=tmp_path / "s", shard="1/2", progress=False))
    assert not b["missing"]
    c = compute_targets(tcfg, TargetsRun(out=tmp_path / "s", progress=False))
    assert c["computed"] == 0
    ref = load_targets(lerf_scene["targets"])
    got = load_targets(tmp_path / "s")
    assert all(torch.equal(x, y) for x, y in zip(ref.clip, got.clip)) and torch.equal(ref.dino, got.dino)
    with pytest.raises(TargetsError, match="shard"):
        compute_targets(tcfg, TargetsRun(out=tmp_path / "s", shard="2/2", progress=False))
    assert dataclasses.is_dataclass(tcfg)
