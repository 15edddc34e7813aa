import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, jaccard_score

from ccl_gs.metrics.ovs3d import (
    argmax_prediction,
    gt_rows,
    jaccard_per_class,
    one_hot_rows,
    subset_accuracy,
    thresholded_view_ious,
    view_metrics,
)


def _gt_from_labels(labels: np.ndarray, c: int) -> np.ndarray:
    return np.stack([labels == k for k in range(c)])


def test_perfect_and_disjoint_prediction():
    labels = np.repeat(np.arange(3), 8).reshape(4, 6)
    gt = _gt_from_labels(labels, 3)
    ious, acc = view_metrics(gt.astype(np.float32), gt)
    assert ious.tolist() == [1.0, 1.0, 1.0] and acc == 1.0
    shifted = np.roll(gt, 1, axis=0).astype(np.float32)  # every pixel predicts the next class
    ious, acc = view_metrics(shifted, gt)
    assert ious.tolist() == [0.0, 0.0, 0.0] and acc == 0.0


def test_class_absent_from_gt_and_prediction_scores_zero():
    gt = np.zeros((3, 2, 2), bool)
    gt[0] = True  # class 0 everywhere, classes 1 and 2 nowhere
    scores = np.zeros((3, 2, 2), np.float32)
    scores[0] = 1.0
    ious, acc = view_metrics(scores, gt)
    assert ious.tolist() == [1.0, 0.0, 0.0]  # the release's quirk: not 1, not skipped
    assert np.mean(ious) == pytest.approx(1 / 3)
    assert acc == 1.0


def test_accuracy_counts_unlabeled_and_double_labeled_pixels_wrong():
    gt = np.zeros((2, 1, 4), bool)
    gt[0, 0, 0] = True  # pixel 0: class 0
    gt[1, 0, 1] = True  # pixel 1: class 1
    gt[:, 0, 2] = True  # pixel 2: both classes
    #                     pixel 3: no class
    scores = np.array([[[1, 0, 1, 1]], [[0, 1, 0, 0]]], np.float32)
    ious, acc = view_metrics(scores, gt)
    assert acc == 0.5
    # class 0: gt {0, 2}, pred {0, 2, 3} -> 2/3; class 1: gt {1, 2}, pred {1} -> 1/2
    assert ious.tolist() == pytest.approx([2 / 3, 1 / 2])


def test_argmax_first_class_on_ties():
    s = np.ones((3, 1, 2), np.float32)
    s[2, 0, 1] = 2.0
    assert argmax_prediction(s).tolist() == [[0, 2]]


def test_numpy_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(10):
        n, c = 300, 6
        gt = (rng.random((n, c)) < 0.25).astype(np.int8)
        gt[:, 4] = 0  # a class absent from the ground truth
        pred = one_hot_rows(rng.integers(0, c - 1, n), c).astype(np.int8)  # class 5 never predicted
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns about the zero-division classes
            ref = jaccard_score(gt, pred, average=None)
        np.testing.assert_array_equal(jaccard_per_class(gt, pred), ref)
        assert subset_accuracy(gt, pred) == accuracy_score(gt, pred)


def test_gt_rows_layout():
    gt = np.zeros((2, 2, 3), bool)
    gt[1, 0, 2] = True
    rows = gt_rows(gt)
    assert rows.shape == (6, 2) and rows[2].tolist() == [False, True]


def test_thresholded_protocol_per_class():
    h, w = 40, 60
    gt = np.zeros((3, h, w), bool)
    gt[0, :, :30] = True
    gt[1, :, 30:] = True  # class 2 absent: excluded (NaN)
    rel = gt.astype(np.float32)
    ious = thresholded_view_ious(rel, gt)
    assert ious[:2].tolist() == [1.0, 1.0] and np.isnan(ious[2])
    swapped = thresholded_view_ious(rel[[1, 0, 2]], gt)
    assert swapped[:2].tolist() == [0.0, 0.0]
    levels = np.stack([rel[[1, 0, 2]] * 0.5, rel])  # [L=2, C, H, W]: level 1 has the higher peak
    assert thresholded_view_ious(levels, gt)[:2].tolist() == [1.0, 1.0]
