"""Stage 1 -> stage 2 on a real stage-1 artifact (synthetic scene, exact mask/track sources, oracle encoder)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ccl_gs.codebook import codebook_variant, load_codebook, train_codebook  # noqa: E402
from ccl_gs.io.artifacts import load_npz  # noqa: E402


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory):
    synthetic = pytest.importorskip("ccl_gs.data.synthetic")
    from ccl_gs.masks.merge import MergeConfig
    from ccl_gs.preprocess import PreprocessConfig, RunOptions, run_preprocess

    root = tmp_path_factory.mktemp("scene")
    scene = synthetic.generate(
        synthetic.SyntheticConfig(seed=0, views=4, size=48, supersample=1),
        synthetic.OutputConfig(out=root, layout="3dovs", eval_views=1, points=100),
        synthetic.SimConfig(level=0),
    )[0]
    cfg = PreprocessConfig(
        mask_source="precomputed",
        track_source="precomputed",
        encoder="oracle",
        merge=MergeConfig(priority="granularity", min_visible_area=10, cross_iou_thr=0.9),
    )
    out = root / "pre"
    assert run_preprocess(scene, out, cfg, RunOptions(progress=False, device="cpu")).complete
    return out


def test_codebook_on_a_stage1_artifact(preprocessed, tmp_path):
    cfg = codebook_variant("ccl", n_prototypes=8, iterations=20, batch_size=0, pairs_within=8, pairs_across=16)
    res = train_codebook(preprocessed, cfg, tmp_path / "cb", progress=False)
    ex = res.manifest.extra
    assert ex["encoder"]["kind"] == "oracle" and ex["dim"] == res.prototypes.shape[2] == 512
    assert sum(ex["n_masks"]) > 0 and min(ex["used_prototypes"]) >= 1
    for stem in ex["images"]:
        src = load_npz(preprocessed / f"{stem}.npz")
        pm = load_npz(tmp_path / "cb" / f"{stem}.npz")["proto_maps"]
        assert ((pm >= 0) == (src["index_maps"] >= 0)).all()
        assert pm.max() < cfg.n_prototypes
    # The oracle gives every mask of one object the same feature: one prototype per track, in every view.
    for lvl in ("sp", "wp"):
        c = ex["cross_view_consistency"][lvl]
        assert c is None or c == pytest.approx(1.0)
    assert load_codebook(tmp_path / "cb", preprocessed=preprocessed).n_used == res.n_used
    assert np.isfinite(list(v for v in ex["final_losses"].values() if v is not None)).all()
