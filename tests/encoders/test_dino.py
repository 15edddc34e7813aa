"""The DINO encoder on tiny random-weight timm ViTs of the real class; the DINO and CLIP-tile oracles."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from ccl_gs.encoders import ENCODERS, EncoderLoadError, build_encoder


def tiny_vit() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=2, num_classes=0,
                             dynamic_img_size=True)


def test_key_facet_of_the_last_block():
    enc = build_encoder("dino", model=tiny_vit(), short_side=40, device="cpu")
    assert "dino" in ENCODERS and enc.dim == 24
    img = torch.rand(30, 45, 3)
    f = enc.encode_image(img)
    # shorter side 30 -> 40: 40 x 60 -> 5 x 7 patches of 8 px (the last partial column is cut)
    assert f.shape == (5, 7, 24) and torch.isfinite(f).all()
    qkv = enc.model.blocks[-1].attn.qkv
    with torch.no_grad():  # the values (last third of qkv) do not reach the key facet ...
        qkv.weight[48:] += 1.0
        qkv.bias[48:] += 1.0
    assert torch.allclose(enc.encode_image(img), f)
    with torch.no_grad():  # ... the keys (middle third) do
        qkv.bias[24:48] += 1.0
    assert torch.allclose(enc.encode_image(img), f + 1.0, atol=1e-5)


def test_offline_without_weights_names_the_file_and_flag(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderLoadError, match="--dino-checkpoint"):
        build_encoder("dino", device="cpu")
    with pytest.raises(EncoderLoadError, match="DINO checkpoint not found"):
        build_encoder("dino", checkpoint=str(tmp_path / "dino_deitsmall8_pretrain.pth"), device="cpu")


def test_checkpoint_file_loads_through_timm(tmp_path):
    """A checkpoint in the DINO release's layout (timm converts it) gives the saved weights."""
    import timm

    ref = timm.create_model("vit_small_patch8_224", pretrained=False, num_classes=0)
    torch.save(ref.state_dict(), tmp_path / "dino.pth")
    enc = build_encoder("dino", checkpoint=str(tmp_path / "dino.pth"), device="cpu", short_side=16)
    assert torch.equal(enc.model.blocks[-1].attn.qkv.weight, ref.blocks[-1].attn.qkv.weight)
    assert enc.encode_image(torch.rand(16, 16, 3)).shape == (2, 2, 384)
