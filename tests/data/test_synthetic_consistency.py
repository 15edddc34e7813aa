"""Feature statistics of a simulation level: nearest-text errors and distinct choices per track."""

import numpy as np

from ccl_gs.data.synthetic.consistency import distinct_per_track, mask_classes


def test_distinct_per_track_counts_only_tracks_seen_twice():
    choice = np.array([1, 1, 2, 5, 7, 7])
    labels = np.array([0, 0, 0, 1, -1, 2])
    views = np.array([0, 1, 2, 0, 0, 0])
    # track 0: views 0-2, choices {1, 2}; track 1 and 2: one view each (ignored); -1 ignored
    assert distinct_per_track(choice, labels, views) == 2.0
    assert np.isnan(distinct_per_track(choice, np.full(6, -1), views))


def test_mask_classes_is_the_majority_class_over_both_levels():
    class_map = np.array([[1, 1, 2], [2, 2, 0]])
    maps = np.full((2, 2, 3), -1)
    maps[0] = [[0, 0, 0], [1, -1, -1]]  # mask 0: classes 1, 1, 2; mask 1: class 2
    maps[1] = [[-1, -1, 2], [2, 2, 2]]  # mask 2: classes 2, 2, 2, 0 (0 = no surface, not counted)
    assert mask_classes(maps, 3, class_map).tolist() == [1, 2, 2]
