import numpy as np
import pytest

from ccl_gs.codebook.quality import codebook_quality, cross_view_consistency, cross_view_similarity


def test_quality_counts_mixing_and_splitting():
    assign = np.array([0, 0, 0, 1, 1, 2, 2])
    classes = np.array([5, 5, 6, 6, 6, 7, -1])  # prototype 0 mixes 5 and 6; class 6 split over 0 and 1
    q = codebook_quality(assign, classes)
    assert q["n_masks"] == 6 and q["n_classes"] == 3 and q["n_used"] == 3
    assert q["purity"] == pytest.approx(5 / 6)
    assert q["completeness"] == pytest.approx(5 / 6)
    assert q["shared_prototypes"] == 1
    assert q["prototypes_per_class"] == pytest.approx(4 / 3)


def test_cross_view_consistency_matches_pair_enumeration():
    rng = np.random.default_rng(0)
    M = 60
    assign, labels, views = rng.integers(0, 4, M), rng.integers(-1, 3, M), rng.integers(0, 5, M)
    agree = total = 0
    for i in range(M):
        for k in range(i + 1, M):
            if labels[i] >= 0 and labels[i] == labels[k] and views[i] != views[k]:
                total += 1
                agree += assign[i] == assign[k]
    assert cross_view_consistency(assign, labels, views) == pytest.approx(agree / total)


def test_cross_view_similarity_matches_pair_enumeration():
    rng = np.random.default_rng(1)
    protos = rng.normal(size=(4, 3))
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    M = 40
    assign, labels, views = rng.integers(0, 4, M), rng.integers(-1, 3, M), rng.integers(0, 4, M)
    sims = [
        protos[assign[i]] @ protos[assign[k]]
        for i in range(M)
        for k in range(i + 1, M)
        if labels[i] >= 0 and labels[i] == labels[k] and views[i] != views[k]
    ]
    assert cross_view_similarity(protos, assign, labels, views) == pytest.approx(np.mean(sims))


def test_no_pairs_is_nan():
    assert np.isnan(cross_view_consistency(np.array([0, 1]), np.array([1, 1]), np.array([0, 0])))
