"""Two-level merge: hand-built cases and parity with the straightforward reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ccl_gs.masks.merge import (
    MergeConfig,
    mask_nms,
    mask_nms_reference,
    mask_regions,
    two_level_masks,
    two_level_masks_reference,
)
from ccl_gs.masks.types import RawMasks

H, W = 32, 40
SUB, PART, WHOLE = 0, 1, 2


def rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def raw_of(masks: list[np.ndarray], gran: list[int], scores: list[float]) -> RawMasks:
    return RawMasks(
        masks=np.stack(masks) if masks else np.zeros((0, H, W), dtype=bool),
        granularity=np.array(gran, dtype=np.int8),
        scores=np.array(scores, dtype=np.float32),
    )


CFG = MergeConfig(min_visible_area=1)


def assert_consistent(out) -> None:
    """Rows match the index maps, levels do not overlap, -1 exactly where no row covers."""
    k = out.masks.shape[0]
    h, w = out.masks.shape[1:]
    assert out.levels.shape == (k,) and out.index_maps.shape == (2, h, w)
    assert out.index_maps.dtype == np.int32 and out.masks.dtype == np.bool_
    for lvl in range(2):
        rows = np.nonzero(out.levels == lvl)[0]
        cover = out.masks[rows].sum(axis=0)
        assert cover.max(initial=0) <= 1  # no overlap within a level
        assert np.array_equal(cover == 0, out.index_maps[lvl] == -1)
        for r in rows:
            assert np.array_equal(out.masks[r], out.index_maps[lvl] == r)
            assert out.masks[r].any()
        other = np.nonzero(out.levels != lvl)[0]
        assert not np.isin(out.index_maps[lvl], other).any()


def rows_at(out, level: int) -> list[int]:
    return list(np.nonzero(out.levels == level)[0])


def test_duplicates_removed_higher_score_kept() -> None:
    a = rect(2, 20, 2, 20)
    raw = raw_of([a, a.copy(), rect(22, 30, 25, 38)], [PART, PART, PART], [0.8, 0.9, 0.85])
    out = two_level_masks(raw, CFG)
    assert_consistent(out)
    # each level holds the 0.9 copy and the separate mask, the 0.8 duplicate is gone
    for lvl in range(2):
        assert sorted(out.scores[rows_at(out, lvl)].tolist()) == pytest.approx([0.85, 0.9])


@pytest.mark.parametrize("small_score", [0.75, 0.95])
def test_nested_same_granularity_removed_by_overlap_rule(small_score: float) -> None:
    big = rect(0, 30, 0, 30)  # 900 px
    small = rect(5, 15, 5, 15)  # 100 px, fully inside, covers 11% of big
    raw = raw_of([big, small], [WHOLE, WHOLE], [0.8, small_score])
    out = two_level_masks(raw, CFG)
    wp = rows_at(out, 1)
    assert len(wp) == 1 and out.masks[wp[0]].sum() == 900  # the nested one is gone either way


def test_nested_across_granularities_is_hierarchy_not_redundancy() -> None:
    part = rect(0, 30, 0, 30)
    sub = rect(5, 15, 5, 15)
    raw = raw_of([part, sub], [PART, SUB], [0.8, 0.9])
    out = two_level_masks(raw, CFG)
    assert_consistent(out)
    sp = rows_at(out, 0)
    assert len(sp) == 2  # both survive at sp
    hi = [r for r in sp if out.granularity[r] == SUB][0]
    lo = [r for r in sp if out.granularity[r] == PART][0]
    assert out.masks[hi].sum() == 100 and out.masks[lo].sum() == 800
    assert out.index_maps[0, 10, 10] == hi and out.index_maps[0, 20, 20] == lo


def test_contested_pixels_go_to_higher_score() -> None:
    a = rect(0, 20, 0, 20)
    b = rect(10, 30, 10, 30)  # IoU 100/700, below the NMS threshold
    for sa, sb in [(0.9, 0.8), (0.8, 0.9)]:
        out = two_level_masks(raw_of([a, b], [PART, PART], [sa, sb]), CFG)
        assert_consistent(out)
        for lvl in range(2):
            r = out.index_maps[lvl, 15, 15]
            assert out.scores[r] == pytest.approx(max(sa, sb))
            assert out.masks[r].sum() == 400  # the winner keeps all of itself
            assert sorted(out.masks[rows_at(out, lvl)].sum(axis=(1, 2)).tolist()) == [300, 400]


def test_area_priority_puts_smaller_masks_on_top() -> None:
    part = rect(0, 30, 0, 30)
    sub = rect(5, 15, 5, 15)
    cfg = MergeConfig(min_visible_area=1, priority="area")
    out = two_level_masks(raw_of([part, sub], [PART, SUB], [0.95, 0.75]), cfg)
    assert out.masks[out.index_maps[0, 10, 10]].sum() == 100


def test_swallowed_masks_dropped_and_uncovered_is_minus_one() -> None:
    part = rect(0, 30, 0, 30)
    sub = rect(5, 15, 5, 15)
    out = two_level_masks(raw_of([part, sub], [PART, SUB], [0.95, 0.75]), dataclasses.replace(CFG, priority="score"))
    assert_consistent(out)
    assert len(rows_at(out, 0)) == 1  # the subpart is hidden under a better part -> dropped
    assert out.index_maps[0, 31, 39] == -1 and out.index_maps[1, 31, 39] == -1
    assert (out.index_maps[0] >= 0).sum() == 900


def test_granularity_priority_keeps_the_level_own_granularity_on_top() -> None:
    part = rect(0, 30, 0, 30)
    sub = rect(5, 15, 5, 15)
    out = two_level_masks(raw_of([part, sub], [PART, SUB], [0.95, 0.75]), dataclasses.replace(CFG, priority="granularity"))
    assert_consistent(out)
    sp = rows_at(out, 0)
    assert len(sp) == 2  # sp: the subpart wins its pixels, the part fills the rest
    assert (out.index_maps[0] >= 0).sum() == 900
    sub_row = [r for r in sp if out.masks[r].sum() == 100]
    assert len(sub_row) == 1 and out.index_maps[0, 10, 10] == sub_row[0]


def test_min_visible_area_drops_slivers_and_repaints() -> None:
    a = rect(0, 20, 0, 20)
    b = rect(0, 20, 0, 22)  # IoU 400/440 > 0.8 -> duplicate, removed by NMS
    c = rect(0, 20, 10, 30)  # half under a -> 200 visible pixels
    cfg = MergeConfig(min_visible_area=370)
    out = two_level_masks(raw_of([a, b, c], [PART, PART, PART], [0.9, 0.85, 0.8]), cfg)
    for lvl in range(2):
        rows = rows_at(out, lvl)
        assert len(rows) == 1 and out.scores[rows[0]] == pytest.approx(0.9)


def test_score_threshold_and_fallback() -> None:
    masks = [rect(0, 8, 0, 8), rect(10, 18, 10, 18), rect(20, 28, 0, 8), rect(20, 28, 20, 28)]
    out = two_level_masks(raw_of(masks, [WHOLE] * 4, [0.9, 0.6, 0.7, 0.95]), CFG)
    assert sorted(out.scores[rows_at(out, 1)].tolist()) == pytest.approx([0.9, 0.95])
    # nobody passes 0.7 -> the 3 best are let through
    out = two_level_masks(raw_of(masks, [WHOLE] * 4, [0.5, 0.6, 0.4, 0.3]), CFG)
    assert sorted(out.scores[rows_at(out, 1)].tolist()) == pytest.approx([0.4, 0.5, 0.6])


def test_empty_input() -> None:
    out = two_level_masks(raw_of([], [], []), CFG)
    assert out.masks.shape == (0, H, W) and (out.index_maps == -1).all()


def test_bad_config_and_input() -> None:
    with pytest.raises(ValueError, match="priority"):
        MergeConfig(priority="biggest")
    with pytest.raises(ValueError, match="RawMasks"):
        two_level_masks(RawMasks(np.zeros((2, H, W), np.uint8), np.zeros(2, np.int8), np.zeros(2, np.float32)))


def test_regions_give_exact_intersections() -> None:
    g = torch.Generator().manual_seed(0)
    m = torch.rand(70, 13, 17, generator=g) > 0.6  # 70 masks -> two 42-bit words
    reg = mask_regions(m)
    f = m.reshape(70, -1).double()
    assert torch.equal(reg.intersections(), (f @ f.T).long())
    assert torch.equal(reg.areas(), m.reshape(70, -1).sum(1))
    # every pixel's cell has exactly that pixel's coverage
    assert torch.equal(reg.members[:, reg.labels], m.reshape(70, -1))


def random_raw(seed: int, n: int, h: int = 36, w: int = 44) -> RawMasks:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    masks = []
    for _ in range(n):
        kind = rng.integers(3)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(2, 14)
        if kind == 0:
            m = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        elif kind == 1:
            m = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < rng.uniform(2, 14))
        elif masks:  # near-duplicate of an earlier mask
            m = masks[rng.integers(len(masks))].copy()
            m ^= rng.random((h, w)) < 0.01
        else:
            m = np.zeros((h, w), bool)
        masks.append(m)
    scores = rng.choice(np.array([0.65, 0.7, 0.75, 0.8, 0.9, 0.95], np.float32), n)
    scores = scores + rng.integers(0, 2, n).astype(np.float32) * rng.uniform(0, 0.05, n).astype(np.float32)
    return RawMasks(np.stack(masks), rng.integers(0, 3, n).astype(np.int8), scores.astype(np.float32))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("priority", ["score", "area", "granularity"])
def test_parity_with_reference(seed: int, priority: str) -> None:
    raw = random_raw(seed, n=24 + 4 * seed)
    cfg = MergeConfig(priority=priority, min_visible_area=4, min_visible_fraction=0.05 * (seed % 3))
    fast, ref = two_level_masks(raw, cfg), two_level_masks_reference(raw, cfg)
    for name in ("masks", "levels", "index_maps", "scores", "granularity"):
        assert np.array_equal(getattr(fast, name), getattr(ref, name)), name
    assert_consistent(fast)


@pytest.mark.parametrize("seed", range(8))
def test_mask_nms_parity(seed: int) -> None:
    raw = random_raw(100 + seed, n=30)
    keep_nonempty = raw.masks.reshape(30, -1).any(1)
    masks, scores = raw.masks[keep_nonempty], raw.scores[keep_nonempty]
    if seed % 2:
        scores = scores * np.float32(0.5)  # nobody passes the score test -> fallback
    m = torch.from_numpy(masks)
    reg = mask_regions(m)
    for iou_thr, score_thr, inner_thr in [(0.8, 0.7, 0.5), (0.5, None, 0.3), (0.9, 0.6, None)]:
        fast = mask_nms(reg.intersections(), reg.areas(), torch.from_numpy(scores), iou_thr, score_thr, inner_thr)
        ref = mask_nms_reference(masks, scores, iou_thr, score_thr, inner_thr)
        assert np.array_equal(fast.numpy(), ref)


def test_exact_fallback_labels_match_hashed_labels() -> None:
    from ccl_gs.masks.merge import _fold_labels, pack_masks

    g = torch.Generator().manual_seed(1)
    m = torch.rand(130, 9, 11, generator=g) > 0.5  # 3 words
    words = pack_masks(m.reshape(130, -1))
    assert words.shape == (99, 3)
    assert torch.equal((words[:, 0] >> 5) & 1, m.reshape(130, -1)[5].long())
    a, b = mask_regions(m).labels, _fold_labels(words)
    # same partition of the pixels
    pairs = torch.unique(torch.stack([a, b], 1), dim=0)
    assert pairs.shape[0] == int(a.max()) + 1 == int(b.max()) + 1
