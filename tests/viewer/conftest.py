"""A tiny trained semantic field (generate -> preprocess -> codebook -> RGB -> field) shared by the viewer tests."""

from __future__ import annotations

import numpy as np
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


def train_tiny_field(root):
    """A 64x64, 8-view scene with exact masks, trained just enough to localize its objects; returns its folders."""
    (scene,) = generate(
        SyntheticConfig(seed=3, size=64, views=8, path="forward", min_objects=2, max_objects=2, supersample=1,
                        distance=1.6, fov=40.0, place_radius=0.45),
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

    train_codebook(pre, CodebookConfig(n_prototypes=16, iterations=300, checkpoint_every=1000), root / "cb", progress=False)
    rgb = RGBTrainConfig(
        data=scene, out=root / "rgb", iterations=150, sh_degree=1, init=InitConfig(max_points=800),
        densify=DensifyConfig(refine_start_iter=10**6), save_renders=False, progress=False,
    )
    run(rgb)
    fcfg = FieldConfig(supervision=root / "cb", rgb_run=root / "rgb", out=root / "field", iterations=300, progress=False)
    run_field(fcfg)
    return dict(root=root, scene=scene, field=root / "field", rgb=root / "rgb")


@pytest.fixture(scope="package")
def tiny_field(tmp_path_factory):
    """The trained tiny field (built once for the viewer tests)."""
    return train_tiny_field(tmp_path_factory.mktemp("viewer_field"))


def heat_values(image: np.ndarray, base: np.ndarray, tol: int = 60) -> np.ndarray:
    """Where ``image [H, W, 3]`` shows a heat map over ``base`` (the same frame without it): the turbo value in
    [0, 1] of each changed pixel whose colour is within ``tol`` (sum of absolute differences) of the turbo
    colour map, -1 elsewhere."""
    import cv2

    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1].astype(np.int32)
    img = image[..., :3].astype(np.int32)
    d = np.abs(img[..., None, :] - lut).sum(-1)  # [H, W, 256]
    value = d.argmin(-1) / 255.0
    changed = np.abs(img - base[..., :3].astype(np.int32)).sum(-1) > 30
    return np.where(changed & (d.min(-1) < tol), value, -1.0)


@pytest.fixture(scope="package")
def heat():
    """:func:`heat_values`."""
    return heat_values


@pytest.fixture(scope="package")
def ground_truth(tiny_field):
    """The exact ground truth of the tiny scene (class maps per view)."""
    from ccl_gs.data.synthetic.gt import GroundTruth

    return GroundTruth(tiny_field["scene"])
