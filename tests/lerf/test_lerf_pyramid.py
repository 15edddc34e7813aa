"""The CLIP pyramid's tile geometry and lookups against hand-computed values."""

from __future__ import annotations

import torch

from ccl_gs.encoders import tile_crops
from ccl_gs.lerf.pyramid import PyramidConfig, TileGrid, bilinear_lookup, dino_lookup, pad_grid, random_scale_targets, tile_grids


def test_tile_grid_of_lerfs_example():
    """H = 1000 (the recipe's example): (kernel, stride, rows) per level."""
    grids = tile_grids(1000, 1000, PyramidConfig())
    got = [(g.kernel, g.stride, g.rows) for g in grids]
    # int(1000 * 0.275) = 274: linspace gives 0.27499999..., as in LERF (float32 there, float64 here: same ints)
    assert got == [(50, 50, 21), (125, 78, 13), (200, 100, 11), (274, 137, 8), (350, 175, 6), (425, 212, 5), (500, 250, 5)]
    assert [g.pad for g in grids][:2] == [25, 62]


def test_tiles_match_unfold():
    torch.manual_seed(0)
    img = torch.rand(13, 17, 3)
    for g in tile_grids(13, 17, PyramidConfig()):
        ref = torch.nn.Unfold(g.kernel, padding=g.pad, stride=g.stride)(img.permute(2, 0, 1)[None])  # [1, 3 k k, L]
        ref = ref[0].T.reshape(-1, 3, g.kernel, g.kernel)
        ours = tile_crops(img, g.boxes())
        assert ours.shape == ref.shape and torch.equal(ours, ref)


def test_bilinear_lookup_hand_computed():
    g = TileGrid(kernel=4, stride=2, pad=2, rows=5, cols=5)  # centres at -0.5, 1.5, 3.5, ...
    r, c = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    emb = pad_grid((10 * r + c)[..., None])[None]  # [1, 6, 6, 1]: value 10 r + c at tile (r, c)
    assert emb.shape == (1, 6, 6, 1) and emb[0, 5, 5, 0] == 44
    v = bilinear_lookup(g, emb, torch.tensor([0]), torch.tensor([2]), torch.tensor([3]))
    # pixel (2, 3): fractional tile index ((2 + 0.5) / 2, (3 + 0.5) / 2) = (1.25, 1.75) -> 12.5 + 1.75
    assert torch.allclose(v, torch.tensor([[14.25]]))
    # the last pixel row lies past the last centre: clamped to the (repeated) last tile row
    v = bilinear_lookup(g, emb, torch.tensor([0]), torch.tensor([9]), torch.tensor([0]))
    assert torch.allclose(v, torch.tensor([[40.25]]))


def test_random_scale_targets_lerp_adjacent_levels():
    grids = [TileGrid(2, 2, 1, 3, 3)] * 7
    levels = [torch.full((2, 4, 4, 3), float(lv)) for lv in range(7)]  # level lv embeds to lv everywhere
    R = 500
    g = torch.Generator().manual_seed(0)
    emb, s = random_scale_targets(grids, levels, torch.randint(0, 2, (R,)), torch.randint(0, 4, (R,)),
                                  torch.randint(0, 4, (R,)), generator=g)
    assert torch.allclose(emb[:, 0], s * 6, atol=1e-5)  # lerp(b, b + 1, w) = b + w = 6 s
    assert (s >= 0).all() and (s < 1).all() and s.max() > 0.9 and s.min() < 0.1


def test_dino_lookup_floor():
    maps = torch.arange(12.0).view(1, 3, 4, 1)
    v = dino_lookup(maps, torch.tensor([0, 0]), torch.tensor([0, 11]), torch.tensor([7, 15]), 12, 16)
    assert v[:, 0].tolist() == [1.0, 11.0]
