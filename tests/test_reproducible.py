"""The same command with the same seeds writes the same figures on CPU: the whole pipeline twice, byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from ccl_gs.codebook.config import CodebookConfig
from ccl_gs.codebook.train import train_codebook
from ccl_gs.data.synthetic import OutputConfig, SyntheticConfig, generate
from ccl_gs.data.synthetic.simulate import ORACLE_LEVELS, SimConfig
from ccl_gs.encoders.oracle import OracleConfig
from ccl_gs.field.train import FieldConfig, run_field
from ccl_gs.masks.merge import MergeConfig
from ccl_gs.preprocess import PreprocessConfig, RunOptions, run_preprocess
from ccl_gs.splat.gaussians import InitConfig
from ccl_gs.splat.strategy import DensifyConfig
from ccl_gs.splat.trainer import RGBTrainConfig, run

REPO = Path(__file__).resolve().parents[1]


def _pipeline(root: Path) -> dict[str, str]:
    """Generate -> simulate (structured level) -> preprocess -> codebook -> RGB (with densification) -> field ->
    render -> LERF-OVS evaluation; returns the sha256 of the figures and artifacts that must repeat."""
    (scene,) = generate(
        SyntheticConfig(seed=5, size=48, views=8, path="forward", min_objects=2, max_objects=3, supersample=1),
        OutputConfig(out=root / "data", layout="lerf", points=600),
        SimConfig(level=3, seed=1),
    )
    opts = ORACLE_LEVELS[3]
    run_preprocess(
        scene, root / "pre",
        PreprocessConfig(mask_source="precomputed", track_source="precomputed", encoder="oracle",
                         oracle=OracleConfig(noise=opts["noise"], drift=opts["drift"]), merge=MergeConfig(min_visible_area=4)),
        RunOptions(progress=False),
    )
    train_codebook(root / "pre", CodebookConfig(n_prototypes=8, iterations=40, checkpoint_every=1000), root / "cb", progress=False)
    run(RGBTrainConfig(
        data=scene, out=root / "rgb", iterations=40, sh_degree=1, init=InitConfig(max_points=600),
        densify=DensifyConfig(refine_start_iter=10, refine_stop_iter=30, refine_every=10), save_renders=False, progress=False,
    ))
    run_field(FieldConfig(supervision=root / "cb", rgb_run=root / "rgb", out=root / "field", iterations=30, progress=False))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    labels = scene.parent / "label" / scene.name
    for cmd in (
        ["render.py", "--field-dir", str(root / "field"), "--out", str(root / "render"), "--lerf-labels", str(labels)],
        ["eval/lerf_ovs.py", "--renders", str(root / "render" / "lerf_ovs"), "--labels", str(labels.parent),
         "--scenes", scene.name, "--out", str(root / "eval.json")],
    ):
        r = subprocess.run([sys.executable, *cmd], cwd=REPO, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
    files = [root / "rgb" / "point_cloud.ply", root / "field" / "point_cloud.ply"]
    files += sorted((root / "pre").glob("*.npz")) + sorted((root / "cb").glob("*.npz"))
    out = {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    metrics = json.loads((root / "eval.json").read_text())
    metrics.pop("config")  # the resolved options name this run's folders
    out["eval.json"] = json.dumps(metrics, sort_keys=True)
    return out


def test_two_runs_with_one_seed_write_identical_figures(tmp_path):
    a = _pipeline(tmp_path / "a")
    b = _pipeline(tmp_path / "b")
    assert len(a) > 4 and a.keys() == b.keys()
    assert a == b
