"""Stages 2-4 on a tiny generated scene: field training, queries, render outputs, errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ccl_gs.codebook.config import CodebookConfig
from ccl_gs.codebook.train import train_codebook
from ccl_gs.data.synthetic import OutputConfig, SyntheticConfig, generate
from ccl_gs.data.synthetic.simulate import SimConfig
from ccl_gs.field.language import LanguageField, QueryError, encode_queries
from ccl_gs.field.model import DecoderConfig, FeatureDecoder, semantic_loss
from ccl_gs.field.render import RenderConfig, render_queries
from ccl_gs.field.train import FieldConfig, run_field
from ccl_gs.io.artifacts import ArtifactError
from ccl_gs.io.ply import read_gaussians_ply
from ccl_gs.masks.merge import MergeConfig
from ccl_gs.preprocess import PreprocessConfig, RunOptions, run_preprocess
from ccl_gs.splat.gaussians import InitConfig
from ccl_gs.splat.strategy import DensifyConfig
from ccl_gs.splat.trainer import RGBTrainConfig, load_run_scene, make_dataset, run

REPO = Path(__file__).resolve().parents[2]


def test_decoder_shapes_no_mask_logit_and_loss():
    dec = FeatureDecoder(DecoderConfig(feature_dim=8, hidden=16), [5, 7])
    f = torch.randn(4, 6, 8)
    lg = dec(f)
    assert [t.shape for t in lg] == [(4, 6, 6), (4, 6, 8)]  # N_l prototypes + "no mask"
    assert dec.decode_indices(f).shape == (2, 4, 6)
    t = torch.full((2, 4, 6), -1, dtype=torch.long)
    t[0, 0, 0] = 3
    loss = semantic_loss(lg, t)
    t0 = torch.full((24,), 5)
    t0[0] = 3
    expected = torch.nn.functional.cross_entropy(lg[0].reshape(24, 6), t0) + torch.nn.functional.cross_entropy(
        lg[1].reshape(24, 8), torch.full((24,), 7)
    )
    torch.testing.assert_close(loss, expected)
    # a winning "no mask" logit decodes to NO_MASK (-1)
    with torch.no_grad():
        dec.heads[1].bias.fill_(0)
        dec.heads[1].bias[7] = 1e4
    assert (dec.decode_indices(f)[1] == -1).all()


def test_field_learns_labels_and_writes_artifacts(pipeline):
    m = pipeline["metrics"]
    out = pipeline["fcfg"].out
    assert m["iterations"] == 60
    # 16 prototypes per level: chance is well under 0.5; a trained field beats it
    assert m["train_label_accuracy"] > 0.5
    ply = read_gaussians_ply(out / "point_cloud.ply")
    assert len(ply) == m["n_gaussians"]
    assert ply.extra["f_lang"].shape == (len(ply), 8)
    assert ply.extra["proto_sp"].dtype.kind == "i" and ply.extra["proto_wp"].max() < 16
    # re-run reuses; a changed codebook makes the field stale and it is redone
    again = run_field(pipeline["fcfg"])
    assert again.get("reused") is True


def test_queries_render_outputs_and_selection(pipeline, tmp_path):
    lf = LanguageField.load(pipeline["fcfg"].out)
    scene = pipeline["scene"]
    labels = scene.parent / "label" / scene.name
    out = tmp_path / "render"
    s = render_queries(RenderConfig(field_dir=pipeline["fcfg"].out, out=out, lerf_labels=labels))
    frames = sorted(p.stem for p in labels.glob("frame_*.json"))
    assert s["views"] == frames and s["levels"] == lf.n_levels
    q = s["queries"][0]
    from ccl_gs.metrics.lerf_ovs import query_slug

    rel = np.load(out / "lerf_ovs" / scene.name / frames[0] / f"{query_slug(q)}.npy")
    assert rel.shape == (2, 64, 64) and np.isfinite(rel).all() and 0 <= rel.min() and rel.max() <= 1
    assert (out / "heatmap" / frames[0] / f"{query_slug(q)}.png").is_file()
    assert (out / "rgb" / f"{frames[0]}.png").is_file()
    # 3D selection: the selected Gaussians' PLY holds exactly the count reported
    for q, n in s["selected"].items():
        p = out / "selection" / f"{query_slug(q)}.ply"
        assert (n == 0) != p.is_file()
        if n:
            assert len(read_gaussians_ply(p)) == n
    # the evaluation reads what render wrote
    r = subprocess.run(
        [sys.executable, str(REPO / "eval" / "lerf_ovs.py"), "--renders", str(out / "lerf_ovs"),
         "--labels", str(labels.parent), "--out", str(tmp_path / "res.json")],
        capture_output=True, text=True, cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "res.json").read_text())
    assert res  # parsed
    # the 3D-selection protocol: render wrote each query's selected-Gaussian opacity; eval scores it on its own
    assert s["selection_rule"] == "argmax"
    opa = np.load(out / "lerf_ovs_3d" / scene.name / frames[0] / f"{query_slug(q)}.npy")
    assert opa.shape == (1, 64, 64) and opa.min() >= 0 and opa.max() <= 1 + 1e-5
    r = subprocess.run(
        [sys.executable, str(REPO / "eval" / "lerf_ovs.py"), "--renders", str(out / "lerf_ovs_3d"), "--protocol", "3d",
         "--labels", str(labels.parent), "--out", str(tmp_path / "res3d.json")],
        capture_output=True, text=True, cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    res3 = json.loads((tmp_path / "res3d.json").read_text())
    assert res3["protocol"].startswith("3d-selection") and "loc_acc" not in res3["pooled"]
    assert 0 <= res3["pooled"]["miou"] <= 1 and 0 <= res3["pooled"]["acc_25"] <= 1
    # the 2D renders are refused by the 3D protocol (several levels), in one line
    r = subprocess.run(
        [sys.executable, str(REPO / "eval" / "lerf_ovs.py"), "--renders", str(out / "lerf_ovs"), "--protocol", "3d",
         "--labels", str(labels.parent), "--out", str(tmp_path / "bad.json")],
        capture_output=True, text=True, cwd=REPO,
    )
    assert r.returncode == 2 and "levels" in r.stderr and "Traceback" not in r.stderr


def test_gathered_gaussian_relevancy_matches_per_gaussian_reference(pipeline):
    lf = LanguageField.load(pipeline["fcfg"].out)
    import ccl_gs.encoders.oracle  # noqa: F401
    from ccl_gs.field.render import make_encoder

    enc = make_encoder(lf.encoder_spec)
    q, c = encode_queries(enc, ["mug", "table"])
    g = lf.gaussian_relevancy(q, "canonical", c)  # [L, Q, N]
    idx = lf.gaussian_prototypes()
    # slow reference: each Gaussian's decoded prototype, scored on its own ("no mask" scores 0)
    from ccl_gs.query import relevancy

    for lv in range(lf.n_levels):
        for n in range(0, idx.shape[1], max(1, idx.shape[1] // 50)):
            j = int(idx[lv, n])
            want = torch.zeros(len(q)) if j < 0 else relevancy("canonical", lf.head.prototypes[lv][j : j + 1], q, c)[0]
            torch.testing.assert_close(g[lv, :, n], want)


def test_query_errors(pipeline, tmp_path):
    with pytest.raises(QueryError, match="no trained language field"):
        LanguageField.load(tmp_path / "nothing")
    lf = LanguageField.load(pipeline["fcfg"].out)

    class Other:
        name = "open_clip:ViT-B-16/laion2b_s34b_b88k"

    with pytest.raises(QueryError, match="differs from the encoder used in preprocessing"):
        lf.check_encoder(Other())
    # a field pointed at a codebook that does not exist
    bad = dataclasses.replace(pipeline["fcfg"], supervision=tmp_path / "missing", out=tmp_path / "f2")
    with pytest.raises(ArtifactError, match="missing"):
        run_field(bad)
    r = subprocess.run(
        [sys.executable, str(REPO / "render.py"), "--field-dir", str(tmp_path / "nothing"), "--out",
         str(tmp_path / "r"), "--queries", "mug"], capture_output=True, text=True, cwd=REPO,
    )
    assert r.returncode == 2 and "no trained run" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_joint_schedule_carries_features_through_densification(pipeline, tmp_path):
    """The paper's schedule: colour and feature from scratch; densification clones the feature rows."""
    import json as _json

    from ccl_gs.io.artifacts import write_json

    rgb_cfg = _json.loads((pipeline["fcfg"].rgb_run / "config.json").read_text())
    rgb_cfg["densify"].update(refine_start_iter=2, refine_every=4, refine_stop_iter=12, grow_grad2d=1e-7)
    rgb_dir = tmp_path / "rgb_cfg"
    write_json(rgb_dir / "config.json", rgb_cfg)
    cfg = dataclasses.replace(pipeline["fcfg"], schedule="joint", rgb_run=rgb_dir, out=tmp_path / "joint", iterations=14)
    m = run_field(cfg)
    lf = LanguageField.load(cfg.out)
    n = lf.params["means"].shape[0]
    assert m["n_gaussians"] == n and lf.params["features"].shape == (n, 8)
    assert n != 800  # densification changed the count and the features followed
    saved = _json.loads((cfg.out / "joint_rgb" / "config.json").read_text())
    assert saved["iterations"] == 14  # render reloads the geometry config from here


def test_render_refuses_a_stale_field(pipeline, tmp_path):
    """A field whose stage-2 input changed since training: render stops with one line, exit 2."""
    import shutil

    from ccl_gs.field.train import check_current
    from ccl_gs.io.artifacts import read_json, write_json

    check_current(pipeline["fcfg"].out)  # the fixture's field is current
    stale = tmp_path / "field"
    shutil.copytree(pipeline["fcfg"].out, stale)
    m = read_json(stale / "manifest.json")
    m["inputs"]["codebook"] = "0" * 16  # as if the codebook had been retrained since
    write_json(stale / "manifest.json", m)
    with pytest.raises(ArtifactError, match="stale: its input"):
        check_current(stale)
    r = subprocess.run(
        [sys.executable, str(REPO / "render.py"), "--field-dir", str(stale), "--out", str(tmp_path / "r"),
         "--queries", "mug"], capture_output=True, text=True, cwd=REPO,
    )
    assert r.returncode == 2 and "is stale" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_camera_path_interpolates_poses_and_renders_pngs_only(pipeline, tmp_path):
    from scipy.spatial.transform import Rotation

    from ccl_gs.field.render import camera_path

    c2w = np.tile(np.eye(4), (3, 1, 1))
    c2w[1, :3, :3] = Rotation.from_euler("y", 90, degrees=True).as_matrix()
    c2w[1, :3, 3] = [2.0, 0.0, 0.0]
    c2w[2, :3, 3] = [2.0, 2.0, 0.0]
    p = camera_path(c2w, 5)  # parameters 0, 0.5, 1, 1.5, 2
    np.testing.assert_allclose(p[[0, 2, 4]], c2w, atol=1e-9)  # passes through the cameras
    np.testing.assert_allclose(p[1, :3, 3], [1.0, 0.0, 0.0], atol=1e-9)
    angle = np.degrees(Rotation.from_matrix(p[1, :3, :3]).magnitude())
    assert angle == pytest.approx(45.0, abs=1e-6)  # halfway rotation
    out = tmp_path / "r"
    s = render_queries(RenderConfig(field_dir=pipeline["fcfg"].out, out=out, queries=["ball"], split="path",
                                    path_frames=3, write_selection=False))
    assert s["path_frames"] == 3 and s["views"] == []
    for f in range(3):
        for sub in ("rgb", "features"):
            assert (out / sub / f"path_{f:05d}.png").is_file()
        assert (out / "heatmap" / f"path_{f:05d}" / "ball.png").is_file()
    assert not (out / "lerf_ovs").exists()  # no ground truth on a path: no eval inputs


def test_field_renders_features_the_way_its_rgb_run_rasterized(pipeline):
    """Features render with the RGB run's raster settings, from the field checkpoint's copy of its config; a
    checkpoint saved before those settings existed renders the classic way it was trained."""
    from ccl_gs.field.train import render_features
    from ccl_gs.splat.rasterize import RasterConfig

    ckpt = torch.load(pipeline["fcfg"].out / "field.pt", map_location="cpu", weights_only=False)
    current = LanguageField(ckpt)
    assert current.raster == RasterConfig()
    legacy = LanguageField({**ckpt, "rgb_config": {k: v for k, v in ckpt["rgb_config"].items() if k != "raster"}})
    assert legacy.raster == RasterConfig(mode="classic", eps2d=0.3)
    rgb_cfg = RGBTrainConfig(data=pipeline["scene"], out=pipeline["root"] / "rgb")
    item = make_dataset(rgb_cfg, load_run_scene(rgb_cfg), "train", torch.device("cpu"))[0]
    f_current, f_legacy = current.render_features(item), legacy.render_features(item)
    torch.testing.assert_close(f_current, render_features(current.params, item, torch.device("cpu"), raster=RasterConfig()))
    torch.testing.assert_close(f_legacy, render_features(current.params, item, torch.device("cpu")))
    assert (f_current - f_legacy).abs().max() > 1e-3
