"""3D selection rule: level with the highest peak, LERF-OVS normalization, threshold."""

import torch

from ccl_gs.field.language import normalized_relevancy, select_gaussians


def test_normalized_relevancy_maps_the_lower_half_to_zero():
    r = torch.tensor([0.5, 0.6, 0.75, 1.0])
    torch.testing.assert_close(normalized_relevancy(r), torch.tensor([0.0, 0.0, 0.0, 1.0]), atol=1e-6, rtol=0)
    r = torch.tensor([0.0, 0.8, 1.0])
    torch.testing.assert_close(normalized_relevancy(r), torch.tensor([0.0, 0.6, 1.0]), atol=1e-6, rtol=0)


def test_select_picks_the_peak_level_and_ignores_background_near_one_half():
    rel = torch.tensor(
        [
            [0.55, 0.56, 0.54, 0.60, 0.58],  # level 0: nothing stands out
            [0.50, 0.52, 0.51, 0.99, 0.97],  # level 1: two Gaussians of the object
        ]
    )
    assert select_gaussians(rel).tolist() == [False, False, False, True, True]
    # forcing level 0: its own normalization still keeps only its top
    assert select_gaussians(rel, level=0).tolist() == [False, False, False, True, False]
    assert select_gaussians(rel, threshold=0.99, level=1).sum() == 1
