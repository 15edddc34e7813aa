"""SAM mask source with a tiny random-weight model of the real classes; checkpoint loading."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from segment_anything import SamPredictor  # noqa: E402

from ccl_gs.masks.sam import (  # noqa: E402
    SamCheckpointError,
    SamConfig,
    SamMaskSource,
    build_tiny_sam,
    load_sam,
)

# thresholds opened up so that random weights produce masks
OPEN = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0, min_mask_region_area=0)


@pytest.fixture(scope="module")
def tiny_sam():
    return build_tiny_sam(img_size=64, embed_dim=32, seed=0)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.zeros((40, 56, 3), dtype=np.uint8)
    img[:, :28] = (200, 40, 40)
    img[10:30, 30:50] = (30, 180, 60)
    return np.clip(img.astype(int) + rng.integers(0, 30, img.shape), 0, 255).astype(np.uint8)


def test_source_end_to_end(tiny_sam, image) -> None:
    cfg = SamConfig(points_per_side=4, points_per_batch=8, crop_n_layers=1, **OPEN)
    raw = SamMaskSource(tiny_sam, cfg)(image)
    m = raw.masks.shape[0]
    assert m > 0
    assert raw.masks.shape == (m, 40, 56) and raw.masks.dtype == np.bool_
    assert raw.granularity.dtype == np.int8 and set(raw.granularity.tolist()) == {0, 1, 2}
    assert raw.scores.dtype == np.float32 and raw.scores.shape == (m,)
    np.testing.assert_allclose(raw.scores, raw.predicted_iou * raw.stability, rtol=1e-6)
    assert raw.masks.reshape(m, -1).any(1).all()


def test_granularity_is_the_multimask_output_index(tiny_sam, image) -> None:
    """One point, one crop, no filters: the three masks are SAM's outputs 0, 1, 2 for that point."""
    cfg = SamConfig(points_per_side=1, crop_n_layers=0, box_nms_thresh=1.0, **OPEN)
    raw = SamMaskSource(tiny_sam, cfg)(image)
    pred = SamPredictor(tiny_sam)
    pred.set_image(image)
    expect, iou, _ = pred.predict(np.array([[28.0, 20.0]]), np.array([1]), multimask_output=True)
    keep = expect.reshape(3, -1).any(1)  # empty outputs have no box and are not returned
    order = np.argsort(raw.granularity)
    assert raw.granularity[order].tolist() == np.nonzero(keep)[0].tolist()
    assert np.array_equal(raw.masks[order], expect[keep])
    np.testing.assert_allclose(raw.predicted_iou[order], iou[keep], rtol=1e-5)


def test_quality_filters_apply(tiny_sam, image) -> None:
    loose = SamMaskSource(tiny_sam, SamConfig(points_per_side=4, crop_n_layers=0, **OPEN))(image)
    cut = float(np.median(loose.predicted_iou))
    strict_cfg = SamConfig(points_per_side=4, crop_n_layers=0, **{**OPEN, "pred_iou_thresh": cut})
    strict = SamMaskSource(tiny_sam, strict_cfg)(image)
    assert (strict.predicted_iou > cut).all()
    assert strict.masks.shape[0] < loose.masks.shape[0]


def test_bad_image(tiny_sam) -> None:
    with pytest.raises(ValueError, match="uint8"):
        SamMaskSource(tiny_sam, SamConfig(**OPEN))(np.zeros((8, 8, 3), dtype=np.float32))


def test_missing_checkpoint_names_file_and_flag(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "sam_vit_h_4b8939.pth"
    with pytest.raises(SamCheckpointError) as e:
        load_sam(SamConfig(checkpoint=path))
    msg = str(e.value)
    assert str(path) in msg and "--sam-checkpoint" in msg and "\n" not in msg
    with pytest.raises(SamCheckpointError, match="--sam-checkpoint"):
        SamMaskSource(SamConfig(checkpoint=path))


def test_checkpoint_round_trip_through_loader(tmp_path: Path, tiny_sam) -> None:
    path = tmp_path / "tiny.pth"
    torch.save(tiny_sam.state_dict(), path)
    # a differently-seeded model, loaded from the file, must equal the saved one
    model = load_sam(SamConfig(checkpoint=path), builder=lambda: build_tiny_sam(seed=1))
    for (k, a), b in zip(tiny_sam.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k
    assert not model.training


def test_checkpoint_mismatch_and_corrupt(tmp_path: Path, tiny_sam) -> None:
    path = tmp_path / "tiny.pth"
    torch.save(tiny_sam.state_dict(), path)
    with pytest.raises(SamCheckpointError, match="does not fit"):
        load_sam(SamConfig(checkpoint=path), builder=lambda: build_tiny_sam(embed_dim=16))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SamCheckpointError, match="cannot read"):
        load_sam(SamConfig(checkpoint=bad))


def test_registry_builder_path(tmp_path: Path, tiny_sam) -> None:
    """Without an injected builder, the model comes from sam_model_registry[model_type]."""
    path = tmp_path / "tiny.pth"
    torch.save(tiny_sam.state_dict(), path)
    with pytest.raises(SamCheckpointError, match="vit_b"):
        load_sam(SamConfig(model_type="vit_b", checkpoint=path))
