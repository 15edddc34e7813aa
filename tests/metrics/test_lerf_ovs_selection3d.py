"""The LERF-OVS 3D-selection protocol: the selection rules and the silhouette scoring."""

import numpy as np
import torch

from ccl_gs.field.language import protocol_selection
from ccl_gs.metrics.lerf_ovs.selection3d import ACC_IOU, OPACITY_THRESHOLD, silhouette_iou


def test_argmax_rule_gives_each_gaussian_its_most_similar_query_over_levels():
    # 2 levels, 3 queries, 4 Gaussians
    cos = torch.tensor([
        [[0.9, 0.1, 0.2, 0.0], [0.1, 0.2, 0.3, 0.0], [0.0, 0.0, 0.1, 0.0]],
        [[0.0, 0.1, 0.2, 0.0], [0.2, 0.8, 0.1, 0.0], [0.1, 0.0, 0.5, 0.1]],
    ])
    keep = protocol_selection(cos, torch.zeros_like(cos), "argmax")
    assert keep.tolist() == [[True, False, False, False], [False, True, False, False], [False, False, True, True]]
    assert keep.sum(0).tolist() == [1, 1, 1, 1]  # every Gaussian goes to exactly one query


def test_canonical_rule_thresholds_at_the_peak_level():
    rel = torch.tensor([[[0.6, 0.4, 0.55]], [[0.9, 0.52, 0.3]]])  # [L=2, Q=1, N=3]: level 1 peaks
    keep = protocol_selection(torch.zeros_like(rel), rel, "canonical")
    assert keep.tolist() == [[True, True, False]]


def test_silhouette_iou_thresholds_opacity_and_scores_empty_union_zero():
    opa = np.array([[0.8, 0.71, 0.7], [0.2, 0.9, 0.0]])
    gt = np.array([[True, False, True], [False, True, False]])
    # predicted: (0,0), (0,1), (1,1); gt: (0,0), (0,2), (1,1) -> 2 / 4
    assert silhouette_iou(opa, gt) == 0.5
    assert silhouette_iou(np.zeros((2, 2)), np.zeros((2, 2), bool)) == 0.0
    assert OPACITY_THRESHOLD == 0.7 and ACC_IOU == 0.25
