"""A tiny generated scene with LERF targets from the synthetic oracles, shared by the LERF tests."""

from __future__ import annotations

import pytest

from ccl_gs.data.synthetic import OutputConfig, SyntheticConfig, generate
from ccl_gs.data.synthetic.simulate import SimConfig
from ccl_gs.lerf.targets import TargetsConfig, TargetsRun, compute_targets
from ccl_gs.lerf.train import LerfTrainConfig, config_for


@pytest.fixture(scope="package")
def lerf_scene(tmp_path_factory):
    """A 32x32, 6-view forward-facing scene with its labels, and its oracle targets."""
    root = tmp_path_factory.mktemp("lerf")
    (scene,) = generate(
        SyntheticConfig(seed=5, size=32, views=6, path="forward", min_objects=2, max_objects=2, supersample=1),
        OutputConfig(out=root / "data", layout="lerf", points=200),
        SimConfig(level=0),
    )
    tcfg = TargetsConfig(data=scene, clip_encoder="oracle", dino_encoder="oracle_dino", test_every=3)
    tcfg.oracle.dim = 32
    tcfg.oracle_dino.dim = 8
    compute_targets(tcfg, TargetsRun(out=root / "targets", progress=False))
    return dict(root=root, scene=scene, labels=root / "data" / "lerf_ovs" / "label" / scene.name, tcfg=tcfg,
                targets=root / "targets")


@pytest.fixture
def make_run(lerf_scene):
    """``make_run(out, preset="cpu", iterations=2, **changes)``: a run config on the tiny scene with few rays."""
    return lambda out, preset="cpu", iterations=2, **changes: tiny_run(lerf_scene, out, preset, iterations, **changes)


def tiny_run(lerf_scene, out, preset: str = "cpu", iterations: int = 2, **changes) -> LerfTrainConfig:
    cfg = config_for(preset)
    cfg.data, cfg.out, cfg.test_every, cfg.targets = lerf_scene["scene"], out, 3, lerf_scene["targets"]
    cfg.target = lerf_scene["tcfg"]
    cfg.iterations, cfg.rays_per_batch, cfg.progress, cfg.eval_chunk = iterations, 64, False, 1024
    for k, v in changes.items():
        setattr(cfg, k, v)
    return cfg
