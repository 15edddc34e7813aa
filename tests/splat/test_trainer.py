"""RGB trainer: steps reduce the loss, checkpoints resume exactly, the CLI's outputs and errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ccl_gs.io.ply import read_gaussians_ply
from ccl_gs.splat.strategy import DensifyConfig
from ccl_gs.splat.trainer import RGBTrainConfig, Trainer, load_datasets, scene_focus

REPO = Path(__file__).resolve().parents[2]
FERN = REPO.parent / "shared" / "data" / "llff_fern"

pytestmark = pytest.mark.skipif(not FERN.is_dir(), reason=f"shared fern data not found at {FERN}")


def tiny_cfg(tmp_path: Path, **kw) -> RGBTrainConfig:
    from ccl_gs.splat.gaussians import InitConfig

    base = RGBTrainConfig(
        data=FERN,
        out=tmp_path / "run",
        factor=16,
        iterations=6,
        sh_degree=1,
        sh_degree_interval=3,
        init=InitConfig(max_points=2000),
        densify=DensifyConfig(refine_start_iter=1, refine_stop_iter=5, refine_every=2, grow_grad2d=1e-6),
        checkpoint_every=3,
        save_renders=False,
        progress=False,
    )
    return dataclasses.replace(base, **kw)


def test_focus_of_forward_facing_scene_is_finite(tmp_path):
    scene, _, _ = load_datasets(tiny_cfg(tmp_path), torch.device("cpu"))
    f = scene_focus(scene)
    assert f.shape == (3,) and torch.isfinite(torch.as_tensor(f)).all()


def test_resume_matches_uninterrupted(tmp_path):
    cfg = tiny_cfg(tmp_path)
    scene, train, _ = load_datasets(cfg, torch.device("cpu"))

    straight = Trainer(cfg, train, scene)
    for _ in range(6):
        straight.step()

    first = Trainer(cfg, train, scene)
    for _ in range(3):
        first.step()
    first.save_checkpoint(tmp_path / "ck.pt")
    resumed = Trainer(cfg, train, scene)
    resumed.load_checkpoint(tmp_path / "ck.pt")
    assert resumed.step_count == 3
    for _ in range(3):
        resumed.step()

    assert straight.n_gaussians == resumed.n_gaussians
    assert straight.n_gaussians != 2000, "densification should have changed the count"
    for k in straight.params:
        torch.testing.assert_close(straight.params[k], resumed.params[k], rtol=1e-4, atol=1e-5)


def test_loss_decreases(tmp_path):
    cfg = tiny_cfg(tmp_path, densify=DensifyConfig(refine_start_iter=10**6))
    scene, train, _ = load_datasets(cfg, torch.device("cpu"))
    t = Trainer(cfg, train, scene)
    item = train[0]
    with torch.no_grad():
        before = float(t.rgb_loss(t.render(item)[0][..., :3], item["image"][None]))
    t._order = [0] * 30  # always the same view
    for _ in range(30):
        t.step()
    with torch.no_grad():
        after = float(t.rgb_loss(t.render(item)[0][..., :3], item["image"][None]))
    assert after < 0.9 * before


def _train_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def test_cli_outputs_reuse_and_config_change(tmp_path):
    out = tmp_path / "cli"
    common = ["--data", str(FERN), "--factor", "16", "--out", str(out), "--iterations", "4", "--init.max-points", "1500",
              "--sh-degree", "1", "--no-progress", "--no-save-renders"]
    r = _train_cli(*common)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["iterations"] == 4 and m["test_views"] == [0, 8, 16] and m["psnr"] > 5
    ply = read_gaussians_ply(out / "point_cloud.ply")
    assert len(ply) == m["n_gaussians"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["iterations"] == 4 and cfg["init"]["max_points"] == 1500

    r2 = _train_cli(*common)
    assert r2.returncode == 0 and "reused" in r2.stdout

    r3 = _train_cli(*common[:-4], "--sh-degree", "2", "--no-progress")
    assert r3.returncode == 2
    assert "different config" in r3.stderr and "sh_degree" in r3.stderr
    assert len(r3.stderr.strip().splitlines()) == 1


def test_cli_missing_scene_is_one_line_error(tmp_path):
    r = _train_cli("--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert str(tmp_path / "nope") in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_run_saved_before_an_option_existed_is_not_a_different_config(tmp_path):
    from ccl_gs.config import to_dict
    from ccl_gs.io.artifacts import write_json
    from ccl_gs.splat.trainer import check_run_folder

    cfg = tiny_cfg(tmp_path)
    old = to_dict(cfg)
    del old["random_background"]
    cfg.out.mkdir(parents=True)
    write_json(cfg.out / "config.json", old)
    assert check_run_folder(cfg) == "fresh"
    changed = dict(old, ssim_lambda=0.5)
    write_json(cfg.out / "config.json", changed)
    with pytest.raises(Exception, match="ssim_lambda"):
        check_run_folder(cfg)


def test_run_saved_before_raster_settings_existed_counts_as_classic(tmp_path):
    """Such a run was rasterized the classic way: today's default (antialiased) is a different config,
    and a config asking for classic with eps2d 0.3 is the same one."""
    from ccl_gs.config import to_dict
    from ccl_gs.io.artifacts import write_json
    from ccl_gs.splat.rasterize import RasterConfig
    from ccl_gs.splat.trainer import check_run_folder, config_from_json

    cfg = tiny_cfg(tmp_path)
    old = to_dict(cfg)
    del old["raster"]
    cfg.out.mkdir(parents=True)
    write_json(cfg.out / "config.json", old)
    assert config_from_json(cfg.out / "config.json").raster == RasterConfig(mode="classic", eps2d=0.3)
    with pytest.raises(Exception, match="raster"):
        check_run_folder(cfg)
    classic = dataclasses.replace(cfg, raster=RasterConfig(mode="classic", eps2d=0.3))
    assert check_run_folder(classic) == "fresh"
