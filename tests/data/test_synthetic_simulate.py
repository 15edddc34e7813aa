"""Simulated SAM masks and SAM2 tracks: exact at level 0, degraded in the expected ways above it."""

import numpy as np
import pytest

from ccl_gs.data.synthetic import GroundTruth, OutputConfig, SimConfig, SyntheticConfig, generate, simulate_masks, simulate_tracks
from ccl_gs.io.artifacts import Manifest, load_npz

V = 5


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    (r,) = generate(SyntheticConfig(seed=5, size=64, views=V), OutputConfig(out=out, layout="3dovs", label_views="spaced", eval_views=1, points=0),
                    SimConfig(level=0))
    return r


def _regions(gt, v, min_area):
    return {g: gt.regions(v, g, min_area)[0] for g in (0, 1, 2)}


def test_level0_masks_equal_ground_truth(root):
    gt = GroundTruth(root)
    for v, stem in enumerate(gt.stems):
        d = load_npz(root / "sim_masks" / f"{stem}.npz", ("masks", "granularity", "scores"))
        assert d["masks"].dtype == bool and d["granularity"].dtype == np.int8 and d["scores"].dtype == np.float32
        assert d["masks"].shape[1:] == (64, 64) and len(d["masks"]) == len(d["granularity"]) == len(d["scores"])
        assert (d["scores"] == 1.0).all()
        ref = _regions(gt, v, 8)
        for g in (0, 1, 2):
            got = d["masks"][d["granularity"] == g]
            assert np.array_equal(got, ref[g])
        # whole masks include the floor and the walls
        whole = d["masks"][d["granularity"] == 2]
        inst = gt.view(v)["instance"]
        for s in gt.stuff_instances:
            if (inst == s).sum() >= 8:
                assert any(np.array_equal(m, inst == s) for m in whole)
    assert Manifest.load(root / "sim_masks", kind="sim_masks").config["level"] == 0


def test_level0_tracks_follow_first_view_objects(root):
    gt = GroundTruth(root)
    first = gt.view(0)["instance"]
    objs = [i for i in gt.object_instances if (first == i).sum() >= 8]
    for v, stem in enumerate(gt.stems):
        d = load_npz(root / "sim_tracks" / f"{stem}.npz", ("track_masks", "track_ids"))
        assert d["track_ids"].dtype == np.int32 and d["track_masks"].dtype == bool
        inst = gt.view(v)["instance"]
        expect = [k + 1 for k, i in enumerate(objs) if (inst == i).sum() >= 8]
        assert d["track_ids"].tolist() == expect
        for m, k in zip(d["track_masks"], d["track_ids"]):
            assert np.array_equal(m, inst == objs[k - 1])


def _best_iou(m, refs):
    inter = (refs & m).reshape(len(refs), -1).sum(1)
    union = (refs | m).reshape(len(refs), -1).sum(1)
    return (inter / np.maximum(union, 1)).max()


def test_boundary_noise_moves_edges_only(root):
    gt = GroundTruth(root)
    cfg = SimConfig(level=0, boundary=2.0, min_area=8)
    rm = simulate_masks(gt, 1, cfg)
    ref = _regions(gt, 1, 8)
    ious = [_best_iou(m, ref[g]) for m, g in zip(rm.masks, rm.granularity)]
    assert min(ious) > 0.3 and np.mean(ious) > 0.75
    assert np.mean([i < 1.0 for i in ious]) > 0.5  # most edges moved


@pytest.mark.parametrize("kind", ["split", "merge", "miss"])
def test_structural_errors(root, kind):
    gt = GroundTruth(root)
    v = 2
    ref = _regions(gt, v, 8)
    rm = simulate_masks(gt, v, SimConfig(level=0, **{kind: 1.0}))
    for g in (0, 1, 2):
        n_ref, n = len(ref[g]), int((rm.granularity == g).sum())
        if kind == "miss":
            assert n == 0
        elif kind == "split":
            assert n > n_ref
            # every piece lies inside one ground-truth region
            for m in rm.masks[rm.granularity == g]:
                assert max((m & r).sum() for r in ref[g]) == m.sum()
        else:
            assert n < n_ref
            unions = [m for m in rm.masks[rm.granularity == g] if _best_iou(m, ref[g]) < 1.0]
            assert unions, "no merged mask"


def test_level2_differs_and_is_deterministic(root):
    gt = GroundTruth(root)
    a = simulate_masks(gt, 3, SimConfig(level=2, seed=1))
    b = simulate_masks(gt, 3, SimConfig(level=2, seed=1))
    c = simulate_masks(gt, 3, SimConfig(level=2, seed=2))
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.scores, b.scores)
    assert a.masks.shape != c.masks.shape or not np.array_equal(a.masks, c.masks)
    assert (a.scores < 1.0).all() and (a.scores >= 0.85).all()
    ref = _regions(gt, 3, 8)
    assert not all(_best_iou(m, ref[g]) == 1.0 for m, g in zip(a.masks, a.granularity))


def test_track_swaps_and_losses(root):
    gt = GroundTruth(root)
    clean = simulate_tracks(gt, SimConfig(level=0))
    swapped = simulate_tracks(gt, SimConfig(level=0, swap=1.0, seed=3))
    # the same set of masks, but some view reports different ids for them
    changed = 0
    for (cm, ci), (sm, si) in zip(clean, swapped):
        assert sorted(ci.tolist()) == sorted(si.tolist())
        for m, i in zip(sm, si):
            j = next(k for k, cmask in zip(ci, cm) if np.array_equal(cmask, m))
            changed += int(i != j)
    assert changed > 0
    assert np.array_equal(swapped[0][1], clean[0][1]) and all(np.array_equal(a, b) for a, b in zip(swapped[0][0], clean[0][0]))
    lost = simulate_tracks(gt, SimConfig(level=0, lost=1.0, seed=3))
    assert len(lost[0][1]) == len(clean[0][1])
    assert sum(len(i) for _, i in lost) < sum(len(i) for _, i in clean)
    # every track is lost from some view in 1..V-1 on: none reaches the last view
    assert len(lost[-1][1]) == 0 and len(clean[-1][1]) > 0


def test_bad_level_names_the_flag():
    with pytest.raises(ValueError, match="--sim.level"):
        SimConfig(level=4).resolved()
    # level 3 (structured) has the masks and tracks of level 1; only its oracle features differ
    from ccl_gs.data.synthetic.simulate import ORACLE_LEVELS

    assert SimConfig(level=3).resolved() == SimConfig(level=1).resolved().__class__(**{**SimConfig(level=1).resolved().__dict__, "level": 3})
    assert ORACLE_LEVELS[3]["drift"] > 0 and all(ORACLE_LEVELS[k]["drift"] == 0 for k in (0, 1, 2))
    with pytest.raises(ValueError, match="--sim.split"):
        SimConfig(split=1.5).resolved()
