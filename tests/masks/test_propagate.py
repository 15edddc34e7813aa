"""SAM2 propagation: view ordering, IoU labelling, the tracker API on a tiny random SAM2."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from ccl_gs.masks.propagate import (
    Sam2Config,
    Sam2Error,
    Sam2Tracker,
    build_sam2_video_predictor,
    label_index_maps,
    label_masks,
    mask_iou,
    order_views,
    propagate_tracks,
    sam2_frames,
    select_first_masks,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_SAM2 = [
    "++model.image_size=256",
    "++model.memory_attention.num_layers=1",
    "++model.image_encoder.trunk.stages=[1,1,1,1]",
    "++model.image_encoder.trunk.global_att_blocks=[]",
]
"""hiera_t shrunk further (one block per stage, 256 px input): real SAM2 classes, random weights."""


def tiny_sam2_config() -> Sam2Config:
    return Sam2Config(config="configs/sam2.1/sam2.1_hiera_t.yaml", hydra_overrides=list(TINY_SAM2))


def test_order_views_follows_a_path():
    # Cameras on a line, listed shuffled: the greedy order walks along the line from view 0.
    xs = np.array([0.0, 3.0, 1.0, 5.0, 2.0, 4.0])
    centers = np.stack([xs, np.zeros(6), np.zeros(6)], 1)
    assert order_views(centers) == [0, 2, 4, 1, 5, 3]
    assert order_views(centers, start=3) == [3, 5, 1, 4, 2, 0]
    order = order_views(np.random.default_rng(0).normal(size=(20, 3)))
    assert sorted(order) == list(range(20)) and order[0] == 0


def test_mask_iou_matches_definition():
    rng = np.random.default_rng(1)
    a = rng.random((5, 12, 9)) > 0.5
    b = rng.random((3, 12, 9)) > 0.6
    iou = mask_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    for i in range(5):
        for k in range(3):
            ref = (a[i] & b[k]).sum() / (a[i] | b[k]).sum()
            assert iou[i, k] == pytest.approx(ref, abs=1e-6)


def test_label_masks_best_iou_above_threshold():
    H, W = 10, 10
    tracks = np.zeros((2, H, W), bool)
    tracks[0, :5] = True  # top half
    tracks[1, 5:] = True  # bottom half
    masks = np.zeros((4, H, W), bool)
    masks[0, :5] = True  # = track 0
    masks[1, 5:, :6] = True  # 60% of track 1
    masks[2, 4:6] = True  # 20% of each track: no label
    # masks[3] empty: no label
    labels = label_masks(masks, tracks, np.array([7, 9], np.int32), iou_threshold=0.5)
    assert labels.dtype == np.int32
    assert labels.tolist() == [7, 9, -1, -1]
    assert label_masks(masks[:0], tracks, np.array([7, 9])).shape == (0,)
    assert (label_masks(masks, tracks[:0], np.zeros(0, np.int32)) == -1).all()


def test_select_first_masks_largest_first():
    m = np.zeros((4, 8, 8), bool)
    m[0, :2] = True
    m[1, :6] = True
    m[3, :4] = True
    assert select_first_masks(m).tolist() == [1, 3, 0]
    assert select_first_masks(m, max_tracks=2).tolist() == [1, 3]


def test_missing_checkpoint_names_file_and_flag(tmp_path):
    with pytest.raises(Sam2Error, match="--sam2-checkpoint"):
        build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", None)
    missing = tmp_path / "sam2.1_hiera_tiny.pt"
    with pytest.raises(Sam2Error, match=r"sam2\.1_hiera_tiny\.pt.*--sam2-checkpoint"):
        build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", missing)
    with pytest.raises(Sam2Error, match="no_such_config"):
        build_sam2_video_predictor("configs/no_such_config.yaml", None, require_checkpoint=False)


@pytest.fixture(scope="module")
def tiny_tracker() -> Sam2Tracker:
    torch.manual_seed(0)
    return Sam2Tracker.from_config(tiny_sam2_config(), device="cpu", require_checkpoint=False)


def test_tracker_generator_api(tiny_tracker):
    rng = np.random.default_rng(0)
    V, H, W = 3, 48, 64
    frames = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(V)]
    state = tiny_tracker.init_state(frames)
    first = np.zeros((2, H, W), bool)
    first[0, 5:20, 5:30] = True
    first[1, 25:45, 30:60] = True
    ids = tiny_tracker.add_masks(state, 0, first)
    assert ids.tolist() == [1, 2]
    seen = []
    for frame_idx, track_ids, masks in tiny_tracker.propagate(state):
        seen.append(frame_idx)
        assert track_ids.tolist() == [1, 2]
        assert masks.shape == (2, H, W) and masks.dtype == bool
        if frame_idx == 0:
            # The conditioning frame gives back the masks it was seeded with.
            assert mask_iou(torch.from_numpy(masks), torch.from_numpy(first)).diagonal().min() > 0.9
    assert seen == [0, 1, 2]


def test_tracker_stops_half_way_and_handles_sizes(tiny_tracker):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)]
    state = tiny_tracker.init_state(frames)
    m = np.zeros((1, 40, 40), bool)
    m[0, 10:30, 10:30] = True
    tiny_tracker.add_masks(state, 0, m)
    gen = tiny_tracker.propagate(state)
    assert next(gen)[0] == 0
    idx, _, masks = next(gen)
    assert idx == 1 and masks.shape == (1, 30, 50)
    gen.close()
    with pytest.raises(ValueError, match="size"):
        tiny_tracker.add_masks(state, 1, m)


def test_propagate_tracks_indexes_by_view(tiny_tracker):
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    first = np.zeros((1, 32, 32), bool)
    first[0, 8:24, 8:24] = True
    out = list(propagate_tracks(tiny_tracker, frames, first, order=[1, 2, 0]))
    assert [v for v, _, _ in out] == [1, 2, 0]
    _, masks1, ids1 = out[0]  # the seed view
    assert ids1.tolist() == [1] and (masks1[0] == first[0]).mean() > 0.95
    for _, masks, ids in out:
        assert masks.shape[0] == ids.shape[0] and masks.shape[1:] == (32, 32) and ids.dtype == np.int32
    empty = list(propagate_tracks(tiny_tracker, frames, first[:0], order=[0, 1, 2]))
    assert [v for v, _, _ in empty] == [0, 1, 2] and all(m.shape == (0, 32, 32) for _, m, _ in empty)


def test_label_index_maps_equals_label_masks():
    rng = np.random.default_rng(3)
    H, W, M0 = 24, 30, 7
    maps = np.full((2, H, W), -1, np.int32)
    # Level 0 rows 0..3, level 1 rows 4..6: random disjoint regions per level.
    maps[0] = np.where(rng.random((H, W)) < 0.8, rng.integers(0, 4, (H, W)), -1)
    maps[1] = np.where(rng.random((H, W)) < 0.9, rng.integers(4, M0, (H, W)), -1)
    maps[1][:, :10] = np.where(maps[1][:, :10] >= 0, 4, -1)  # a big blob so some IoUs pass 0.5
    masks = np.stack([(maps[0] == m) | (maps[1] == m) for m in range(M0 + 1)])  # row 7 is empty
    tracks = np.stack([maps[1] == 4, maps[0] == 2, rng.random((H, W)) < 0.5, maps[0] >= 0])
    ids = np.array([3, 5, 8, 9], np.int32)
    for thr in (0.0, 0.3, 0.5):
        fast = label_index_maps(maps, M0 + 1, tracks, ids, thr)
        np.testing.assert_array_equal(fast, label_masks(masks, tracks, ids, thr))
    assert fast[4] == 3 and fast[2] == 5 and fast[7] == -1


def test_in_memory_frames_match_sam2_jpeg_loader(tmp_path):
    from PIL import Image
    from sam2.utils.misc import load_video_frames

    rng = np.random.default_rng(4)
    decoded = []
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / f"{i}.jpg", quality=90)
        decoded.append(np.asarray(Image.open(tmp_path / f"{i}.jpg").convert("RGB")))
    ref, h, w = load_video_frames(str(tmp_path), 64, offload_video_to_cpu=True, compute_device=torch.device("cpu"))
    assert (h, w) == (30, 40)
    torch.testing.assert_close(sam2_frames(decoded, 64), ref.float(), atol=1e-5, rtol=0)
