"""A tiny generated scene taken through preprocess, codebook, RGB and the codebook field, shared by the field tests."""

from __future__ import annotations

import pytest

from ccl_gs.codebook.config import CodebookConfig
from ccl_gs.codebook.train import train_codebook
from ccl_gs.data.synthetic import OutputConfig, SyntheticConfig, generate
from ccl_gs.data.synthetic.simulate import SimConfig
from ccl_gs.field.train import FieldConfig, run_field
from ccl_gs.masks.merge import MergeConfig
from ccl_gs.preprocess import PreprocessConfig, RunOptions, run_preprocess
from ccl_gs.splat.gaussians import InitConfig
from ccl_gs.splat.strategy import DensifyConfig
from ccl_gs.splat.trainer import RGBTrainConfig, run


@pytest.fixture(scope="package")
def pipeline(tmp_path_factory):
    """Generate -> preprocess -> codebook -> RGB -> field, all tiny."""
    root = tmp_path_factory.mktemp("pipe")
    (scene,) = generate(
        SyntheticConfig(seed=3, size=64, views=10, path="forward", min_objects=2, max_objects=3, supersample=1),
        OutputConfig(out=root / "data", layout="lerf", points=800),
        SimConfig(level=0),
    )
    pre = root / "pre"
    run_preprocess(
        scene, pre,
        PreprocessConfig(mask_source="precomputed", track_source="precomputed", encoder="oracle",
                         merge=MergeConfig(min_visible_area=4)),
        RunOptions(progress=False),
    )
    import ccl_gs.encoders.oracle  # noqa: F401

    train_codebook(pre, CodebookConfig(n_prototypes=16, iterations=60, checkpoint_every=1000), root / "cb", progress=False)
    rgb = RGBTrainConfig(
        data=scene, out=root / "rgb", iterations=40, sh_degree=1, init=InitConfig(max_points=800),
        densify=DensifyConfig(refine_start_iter=10**6), save_renders=False, progress=False,
    )
    run(rgb)
    fcfg = FieldConfig(supervision=root / "cb", rgb_run=root / "rgb", out=root / "field", iterations=60, progress=False)
    metrics = run_field(fcfg)
    return dict(root=root, scene=scene, pre=pre, fcfg=fcfg, metrics=metrics)


