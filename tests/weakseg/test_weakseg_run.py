"""The 3D-OVS method end to end on a tiny scene: a 2-step run, its render read by eval/ovs3d.py, bad inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from ccl_gs.interrupt import child_default_sigint
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(ws_scene, tmp_path_factory):
    from ccl_gs.weakseg.train import WeaksegConfig, run

    out = tmp_path_factory.mktemp("wsrun") / "run"
    cfg = WeaksegConfig(rgb_run=ws_scene["rgb"], out=out, targets=ws_scene["targets"], target=ws_scene["tcfg"],
                        iterations=2, batch_pixels=256, patches=2, patch_cells=4, progress=False, joint_start=0.5)
    return dict(cfg=cfg, metrics=run(cfg), out=out)


def test_two_step_run_writes_a_queryable_field(trained):
    from ccl_gs.weakseg.train import run

    m, out = trained["metrics"], trained["out"]
    assert m["iterations"] == 2 and m["method"] == "weakseg"
    assert {"feature", "rda", "fda_pos", "fda_neg", "rgb"} <= set(m["last_losses"])  # step 2 is in the joint stage
    for f in ("weakseg.pt", "point_cloud.ply", "config.json", "manifest.json", "metrics.json"):
        assert (out / f).is_file(), f
    assert not (out / "ckpt").exists()
    assert run(trained["cfg"])["reused"] is True


def test_render_writes_ovs3d_inputs_that_eval_reads(trained, ws_scene, tmp_path):
    import ccl_gs.weakseg.query  # noqa: F401  (registers the run kind)
    from ccl_gs.field.render import RenderConfig, render_queries

    scene = ws_scene["scene"]
    r = render_queries(RenderConfig(field_dir=trained["out"], out=tmp_path / "r", ovs3d_data=scene))
    classes = json.loads((tmp_path / "r" / "ovs3d" / scene.name / "meta.json").read_text())["classes"]
    assert r["levels"] == 1 and sorted(classes) == trained["metrics"]["classes"]
    assert sum(r["selected"].values()) > 0 and any((tmp_path / "r" / "selection").glob("*.ply"))
    assert any((tmp_path / "r" / "heatmap").rglob("*.png")) and any((tmp_path / "r" / "mask").rglob("*.png"))
    res = subprocess.run([sys.executable, "eval/ovs3d.py", "--renders", str(tmp_path / "r" / "ovs3d"), "--data",
                          str(scene.parent), "--scenes", scene.name, "--out", str(tmp_path / "e.json")],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    rep = json.loads((tmp_path / "e.json").read_text())
    assert 0.0 <= rep["mean_over_scenes"]["miou"] <= 1.0


def test_a_changed_class_list_is_refused(trained, ws_scene, ws_config, tmp_path):
    import ccl_gs.weakseg.query  # noqa: F401
    from ccl_gs.field.language import QueryError
    from ccl_gs.field.render import RenderConfig, render_queries
    from ccl_gs.weakseg.train import WeaksegError, run

    other = tmp_path / ws_scene["scene"].name
    shutil.copytree(ws_scene["scene"] / "segmentations", other / "segmentations")
    (other / "segmentations" / "classes.txt").write_text("cat\ndog\n")
    with pytest.raises(QueryError, match="differs from the one this 3D-OVS field was trained on"):
        render_queries(RenderConfig(field_dir=trained["out"], out=tmp_path / "r", ovs3d_data=other))
    cfg = ws_config(trained["out"], iterations=2, joint_start=0.5, classes=other / "segmentations")
    with pytest.raises(WeaksegError, match="another class list"):
        run(cfg)
    r = subprocess.run([sys.executable, "render.py", "--field-dir", str(trained["out"]), "--out", str(tmp_path / "r2"),
                        "--ovs3d-data", str(other)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "differs" in r.stderr, r.stderr


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ccl_gs.weakseg", *args], capture_output=True, text=True, cwd=REPO,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def test_bad_inputs_give_one_line_and_exit_2(ws_scene, tmp_path):
    base = ["--rgb-run", str(ws_scene["rgb"]), "--targets", str(ws_scene["targets"]), "--iterations", "1",
            "--target.clip-encoder", "oracle", "--target.dino-encoder", "oracle_dino", "--no-progress"]
    (tmp_path / "noseg").mkdir()
    cases = {
        "classes.txt": base + ["--out", str(tmp_path / "a"), "--classes", str(tmp_path / "noseg")],
        "clip encoder 'oracle'": ["--rgb-run", str(ws_scene["rgb"]), "--targets", str(ws_scene["targets"]),
                                  "--out", str(tmp_path / "b"), "--target.dino-encoder", "oracle_dino"],
    }
    for needle, args in cases.items():
        r = _cli(args)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], r.stderr


def test_targets_of_another_stage_are_refused(ws_scene, tmp_path):
    from ccl_gs.weakseg.targets import WeaksegTargetsError, load_targets

    (tmp_path / "t").mkdir()
    man = json.loads((ws_scene["targets"] / "manifest.json").read_text())
    man["kind"] = "lerf_targets"
    (tmp_path / "t" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(WeaksegTargetsError, match="no 3D-OVS targets"):
        load_targets(tmp_path / "t")


def test_viewer_frames_and_export_of_a_3dovs_field(trained, tmp_path):
    import torch

    from ccl_gs.field.render import load_viewable_run
    from ccl_gs.viewer.frame import DisplayState, QueryEncoder, export_selection, render_frame

    model = load_viewable_run(trained["out"], None, torch.device("cpu"))
    enc = QueryEncoder(model)
    item = model.dataset("train")[0]
    classes = tuple(trained["metrics"]["classes"])
    for display in ("heat map", "rgb", "features"):
        f = render_frame(model, enc, item, DisplayState(queries=classes, display=display))
        assert f.image.shape == (int(item["height"]), int(item["width"]), 3)
    out = export_selection(model, enc, DisplayState(queries=classes), tmp_path / "sel")
    assert out


def test_ctrl_c_saves_and_the_same_command_resumes(ws_scene, tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "w"
    args = [sys.executable, "-m", "ccl_gs.weakseg", "--rgb-run", str(ws_scene["rgb"]), "--targets", str(ws_scene["targets"]),
            "--target.clip-encoder", "oracle", "--target.dino-encoder", "oracle_dino", "--out", str(out),
            "--iterations", "60", "--checkpoint-every", "2", "--batch-pixels", "64", "--patches", "1", "--patch-cells", "4",
            "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=child_default_sigint)
    t0 = time.time()
    while not (out / "ckpt" / "progress.json").is_file() and p.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted at step" in lines[0] and "resume" in lines[0], err
    step = json.loads((out / "ckpt" / "progress.json").read_text())["step"]
    r = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["iterations"] == 60 and m["resumed_from_step"] == step > 0


def test_3d_protocol_opacity_follows_the_published_rules(trained):
    """OpenGaussian's argmax rule is the method's own closed-set selection: the same Gaussians, the same opacity."""
    import torch

    from ccl_gs.field.language import encode_queries
    from ccl_gs.field.render import make_encoder
    from ccl_gs.weakseg.query import WeaksegQueryModel

    model = WeaksegQueryModel(trained["out"], torch.device("cpu"))
    q, c = encode_queries(make_encoder(model.encoder_spec), model.classes)
    view = model.render_view(model.dataset("all")[0])
    opa = model.protocol_opacity(view, q, c, "argmax")  # [Q, H, W]
    assert opa.shape[0] == len(model.classes) and 0 <= float(opa.min()) and float(opa.max()) <= 1 + 1e-5
    torch.testing.assert_close(opa, model.selection_maps(view, q, "canonical", c, 0.5))
    canon = model.protocol_opacity(view, q, c, "canonical")
    assert canon.shape == opa.shape and not torch.equal(canon, opa)
