"""The 3D-OVS targets: DINO's token facet at the input's own size, the per-view arrays, seeded jitter."""

from __future__ import annotations

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer

from ccl_gs.encoders import build_encoder
from ccl_gs.weakseg.targets import load_targets


def test_dino_token_facet_is_the_last_block_output_at_native_size():
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=2, num_classes=0,
                            dynamic_img_size=True)
    enc = build_encoder("dino", model=vit, short_side=0, facet="tokens", device="cpu")
    assert enc.cell == 8 and enc.name.endswith("/tokens")
    img = torch.rand(40, 51, 3)
    f = enc.encode_image(img)
    assert f.shape == (5, 6, 24)  # no resize: 40 x 51 -> 5 x 6 patches (the partial column is cut)
    out = {}
    vit.blocks[-1].register_forward_hook(lambda m, i, o: out.setdefault("t", o))
    x = ((img.permute(2, 0, 1)[None, :, :40, :48] - enc.mean) / enc.std)
    with torch.no_grad():
        vit.forward_features(x)
    assert torch.allclose(f, out["t"][0, vit.num_prefix_tokens:].reshape(5, 6, 24), atol=1e-5)


def test_targets_hold_unit_multiscale_maps_and_dino_cells(ws_scene):
    t = load_targets(ws_scene["targets"], ws_scene["tcfg"])
    V = len(t.views)
    assert t.clip.shape[:3] == (V, 3, 32) and t.clip.shape[-1] == 32
    norms = t.clip.float().norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-2)  # every pixel is covered by some crop
    assert t.rgb.dtype == torch.uint8 and t.rgb.shape == (V, 32, 32, 3)
    assert t.dino_cell == 4 and t.dino.shape[1:3] == (8, 8) and t.dino_size == (32, 32)
    assert t.manifest.extra["crop_sides"] == [10, 8, 5]
    # the per-view seed makes the jitter (and so the maps) reproducible: view 0 twice gives the same crops
    from ccl_gs.weakseg.targets import crop_boxes

    a = crop_boxes(32, 32, 10, np.random.default_rng([0, 0]))
    b = crop_boxes(32, 32, 10, np.random.default_rng([0, 0]))
    assert np.array_equal(a, b) and not np.array_equal(a, crop_boxes(32, 32, 10, np.random.default_rng([0, 1])))
