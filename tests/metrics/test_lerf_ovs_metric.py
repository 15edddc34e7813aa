import cv2
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ccl_gs.metrics.lerf_ovs import (
    box_filter_30,
    choose_level,
    localization_hit,
    localization_points,
    majority_smooth_7x7,
    mask_iou,
    normalize_mask,
    points_in_boxes,
    query_slug,
    segment,
    segmentation_iou,
    smooth_relevancy,
)

# ----------------------------------------------------------------- box filter


def _box_by_hand(x: np.ndarray) -> np.ndarray:
    """Mean over rows/cols [i-15, i+14] with reflect-101 borders (numpy 'reflect' = dcb|abcd|cba)."""
    p = np.pad(x.astype(np.float64), ((15, 14), (15, 14)), mode="reflect")
    return sliding_window_view(p, (30, 30)).sum((-1, -2)) / 900.0


def test_box_filter_matches_hand_computation():
    x = np.random.default_rng(0).random((40, 47)).astype(np.float32)
    out = box_filter_30(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, _box_by_hand(x), atol=2e-7)
    stacked = box_filter_30(np.stack([x, 2 * x]))
    assert stacked.shape == (2, 40, 47)
    np.testing.assert_allclose(stacked[1], 2 * out, atol=1e-6)


def test_box_filter_window_is_i_minus_15_to_i_plus_14():
    x = np.zeros((60, 60), np.float32)
    x[20, 30] = 900.0
    out = box_filter_30(x)
    rows = np.nonzero(out[:, 30] > 0.5)[0]
    cols = np.nonzero(out[20, :] > 0.5)[0]
    # pixel i sees k=20 iff i-15 <= 20 <= i+14  <=>  6 <= i <= 35
    assert (rows.min(), rows.max()) == (6, 35)
    assert (cols.min(), cols.max()) == (16, 45)


def test_box_filter_borders_are_reflect_101():
    x = np.zeros((40, 40), np.float32)
    x[0, 0] = 900.0  # the edge pixel is not repeated by reflect-101
    assert box_filter_30(x)[0, 0] == pytest.approx(1.0, abs=1e-5)
    y = np.zeros((40, 40), np.float32)
    y[1, 1] = 900.0  # row/col 1 is mirrored to -1: seen twice per axis from (0, 0)
    assert box_filter_30(y)[0, 0] == pytest.approx(4.0, abs=1e-5)


def test_smooth_relevancy_is_half_box_plus_raw():
    x = np.random.default_rng(1).random((2, 33, 31)).astype(np.float32)
    np.testing.assert_allclose(smooth_relevancy(x), 0.5 * (box_filter_30(x) + x), atol=1e-7)


# ----------------------------------------------------------------- mask steps


def test_normalize_mask_hand_values():
    v = np.array([[0.0, 0.5, 0.69, 0.72, 1.0]], np.float32)
    # (v - 0) / 1 -> x*2-1 = [-1, 0, 0.38, 0.44, 1] -> clip -> > 0.4
    assert normalize_mask(v).tolist() == [[False, False, False, True, True]]
    assert normalize_mask(v * 3 + 5).tolist() == [[False, False, False, True, True]]
    assert normalize_mask(v, threshold=0.3).tolist() == [[False, False, True, True, True]]
    assert not normalize_mask(np.full((3, 3), 0.7, np.float32)).any()  # constant map: 0 / (0 + 1e-9)


def _smooth_published(mask: np.ndarray) -> np.ndarray:
    """The published 7x7 vote, transcribed as a plain double loop."""
    h, w = mask.shape
    out = mask.copy()
    for i in range(h):
        for j in range(w):
            sq = mask[max(0, i - 3) : min(i + 4, h - 1), max(0, j - 3) : min(j + 4, w - 1)]
            out[i, j] = np.argmax(np.bincount(sq.reshape(-1)))
    return out


def test_majority_smooth_matches_published_loop():
    rng = np.random.default_rng(2)
    for p in (0.2, 0.5, 0.8):
        m = (rng.random((23, 19)) < p).astype(np.uint8)
        assert np.array_equal(majority_smooth_7x7(m), _smooth_published(m).astype(bool))


def test_majority_smooth_last_row_quirk_and_ties():
    m = np.zeros((10, 10), bool)
    m[9, :] = True  # only the last row: its own window stops at row 8
    assert not majority_smooth_7x7(m).any()
    m = np.zeros((10, 10), bool)
    m[6:, :] = True
    out = majority_smooth_7x7(m)[:, 4]
    # i=5: rows 2..8 -> 3 of 7 ones; i=6: rows 3..8 -> 3 of 6, a tie -> 0;
    # i=7: rows 4..8 -> 3 of 5 -> 1; i=9: rows 6..8 -> all ones -> 1
    assert out.tolist() == [False] * 7 + [True] * 3


def test_choose_level_largest_peak_first_on_ties():
    s = np.zeros((3, 4, 4), np.float32)
    s[0, 0, 0], s[1, 2, 2], s[2, 3, 3] = 0.5, 0.9, 0.9
    assert choose_level(s) == 1
    s[1, 2, 2] = 0.1
    assert choose_level(s) == 2


# ----------------------------------------------------------------- IoU


def _band(h=60, w=90, x0=30, x1=70):
    m = np.zeros((h, w), bool)
    m[:, x0:x1] = True
    return m


def test_segmentation_perfect_and_disjoint():
    gt = _band()
    rel = np.stack([gt.astype(np.float32) * 0.3, gt.astype(np.float32)])
    assert segmentation_iou(rel, gt) == 1.0
    mask, level = segment(rel)
    assert level == 1 and np.array_equal(mask, gt)
    other = np.zeros_like(gt)
    other[:, :20] = True
    assert segmentation_iou(other[None].astype(np.float32), gt) == 0.0


def test_segmentation_iou_uses_chosen_level_only():
    gt = _band()
    wrong = np.zeros_like(gt, dtype=np.float32)
    wrong[:, :20] = 2.0  # higher peak: chosen although it is wrong
    rel = np.stack([gt.astype(np.float32), wrong])
    assert segmentation_iou(rel, gt) == 0.0


def test_mask_iou_hand():
    a = np.array([[1, 1, 0, 0]], bool)
    b = np.array([[0, 1, 1, 0]], bool)
    assert mask_iou(a, b) == pytest.approx(1 / 3)
    assert np.isnan(mask_iou(np.zeros((2, 2)), np.zeros((2, 2))))


def _published_pipeline(rel: np.ndarray, gt: np.ndarray, boxes: np.ndarray, thresh=0.4):
    """LangSplat's activate_stream + lerf_localization math for one query, transcribed (torch float32)."""
    kernel = np.ones((30, 30)) / 900
    valid = torch.from_numpy(rel.copy())
    n = valid.shape[0]
    ious = np.zeros(n)
    for i in range(n):
        avg = torch.from_numpy(cv2.filter2D(valid[i].numpy(), -1, kernel))
        valid[i] = 0.5 * (avg + valid[i])
        out = valid[i] - torch.min(valid[i])
        out = out / (torch.max(out) + 1e-9)
        out = torch.clip(out * 2.0 + (-1.0), 0, 1)
        pred = _smooth_published((out.numpy() > thresh).astype(np.uint8))
        ious[i] = np.logical_and(gt, pred).sum() / np.logical_or(gt, pred).sum()
    lvl = int(torch.argmax(torch.stack([valid[i].max() for i in range(n)])))
    filt = cv2.filter2D(rel.transpose(1, 2, 0), -1, kernel)
    if filt.ndim == 2:
        filt = filt[..., None]
    peaks = [filt[..., i].max() for i in range(n)]
    sel = int(np.argmax(peaks))
    coords = np.asarray(np.nonzero(filt[..., sel] == peaks[sel])).T[:, ::-1]
    hit = False
    for x1, y1, x2, y2 in boxes.reshape(-1, 4):
        for x, y in coords:
            if min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2):
                hit = True
    return ious[lvl], lvl, hit


def test_whole_protocol_matches_published_transcription():
    rng = np.random.default_rng(3)
    for trial in range(4):
        h, w = 37, 53
        base = cv2.GaussianBlur(rng.random((3, h, w)).astype(np.float32).transpose(1, 2, 0), (0, 0), 4).transpose(2, 0, 1)
        rel = np.ascontiguousarray(base.astype(np.float32))
        gt = _band(h, w, 10 + trial, 30 + trial)
        boxes = np.array([[10 + trial, 0, 29 + trial, h - 1], [50, 30, 45, 20]], np.float64)
        iou_ref, lvl_ref, hit_ref = _published_pipeline(rel, gt, boxes)
        mask, lvl = segment(rel)
        assert lvl == lvl_ref
        assert mask_iou(mask, gt) == pytest.approx(iou_ref, abs=1e-12)
        assert localization_hit(rel, boxes) == hit_ref


# ----------------------------------------------------------------- localization


def _delta(h=80, w=90, y=40, x=45, level_count=1, level=0):
    r = np.zeros((level_count, h, w), np.float32)
    r[level, y, x] = 1.0
    return r


def test_localization_ties_all_count_and_bounds_inclusive():
    rel = _delta()
    points, level = localization_points(rel)
    # the filtered delta is a 30x30 plateau: x in [45-14, 45+15], y in [40-14, 40+15]
    assert level == 0 and len(points) == 900
    assert points[:, 0].min() == 31 and points[:, 0].max() == 60
    assert points[:, 1].min() == 26 and points[:, 1].max() == 55
    assert localization_hit(rel, np.array([60, 55, 70, 70]))  # touches the plateau's far corner
    assert not localization_hit(rel, np.array([61, 55, 70, 70]))
    assert localization_hit(rel, np.array([70, 70, 60, 55]))  # corners in either order
    assert localization_hit(rel, np.array([[0, 0, 5, 5], [20, 20, 31, 26]]))  # any of several boxes


def test_localization_picks_level_with_highest_filtered_peak():
    rel = np.zeros((2, 80, 90), np.float32)
    rel[0, 10, 10] = 5.0  # tall but single pixel: filtered peak 5/900
    rel[1, 50:60, 60:70] = 1.0  # filtered peak 100/900
    points, level = localization_points(rel)
    assert level == 1
    assert not localization_hit(rel, np.array([0, 0, 20, 20]))
    assert localization_hit(rel, np.array([60, 50, 69, 59]))


def test_points_in_boxes_vectorized():
    pts = np.array([[5, 5], [10, 0]])
    assert points_in_boxes(pts, np.array([[10, 0, 12, 3]]))
    assert not points_in_boxes(pts, np.array([[6, 6, 9, 9]]))


def test_query_slug():
    assert query_slug("Rubber duck with hat") == "rubber_duck_with_hat"
    assert query_slug("  tea  in a-glass! ") == "tea_in_a_glass"
    with pytest.raises(ValueError):
        query_slug("  !! ")
