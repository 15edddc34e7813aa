"""A tiny generated 3D-OVS-layout scene with an RGB run and oracle 3D-OVS targets, shared by the weakseg tests."""

from __future__ import annotations

import pytest

from ccl_gs.data.synthetic import OutputConfig, SyntheticConfig, generate
from ccl_gs.data.synthetic.simulate import SimConfig
from ccl_gs.io.view_targets import TargetsRun
from ccl_gs.splat.gaussians import InitConfig
from ccl_gs.splat.strategy import DensifyConfig
from ccl_gs.splat.trainer import RGBTrainConfig, run
from ccl_gs.weakseg.targets import WeaksegTargetsConfig, compute_targets
from ccl_gs.weakseg.train import WeaksegConfig


@pytest.fixture(scope="package")
def ws_scene(tmp_path_factory):
    """A 32x32, 6-view forward-facing 3D-OVS scene (4 classes), a 30-step RGB run on all views, oracle targets."""
    root = tmp_path_factory.mktemp("weakseg")
    (scene,) = generate(
        SyntheticConfig(seed=2, size=32, views=6, path="forward", min_objects=2, max_objects=2, supersample=1),
        OutputConfig(out=root / "data", layout="3dovs", points=300, simulate=False),
        SimConfig(level=0),
    )
    rgb = RGBTrainConfig(data=scene, out=root / "rgb", iterations=30, sh_degree=1, test_every=0,
                         init=InitConfig(max_points=300), densify=DensifyConfig(refine_start_iter=10**6),
                         save_renders=False, progress=False)
    run(rgb)
    tcfg = WeaksegTargetsConfig(data=scene, clip_encoder="oracle", dino_encoder="oracle_dino", clip_downsample=1,
                                dino_downsample=1, crop_divisors=[3, 4, 6])
    tcfg.oracle.dim = 32
    tcfg.oracle_dino.dim = 8
    compute_targets(tcfg, TargetsRun(out=root / "targets", progress=False))
    return dict(root=root, scene=scene, rgb=root / "rgb", targets=root / "targets", tcfg=tcfg)


@pytest.fixture
def ws_config(ws_scene):
    """``ws_config(out, iterations=2, **changes)``: a run config on the tiny scene (see :func:`tiny_config`)."""
    return lambda out, iterations=2, **changes: tiny_config(ws_scene, out, iterations, **changes)


def tiny_config(ws_scene, out, iterations: int = 2, **changes) -> WeaksegConfig:
    """A run config on the tiny scene: few pixels, small patches."""
    cfg = WeaksegConfig(rgb_run=ws_scene["rgb"], out=out, targets=ws_scene["targets"], target=ws_scene["tcfg"],
                        iterations=iterations, batch_pixels=256, patches=2, patch_cells=4, progress=False)
    for k, v in changes.items():
        setattr(cfg, k, v)
    return cfg
