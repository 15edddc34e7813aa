"""The open_clip encoder on tiny random-weight CLIP models of open_clip's own classes."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

import open_clip  # noqa: E402

from ccl_gs.encoders.base import ENCODERS  # noqa: E402
from ccl_gs.encoders.open_clip import EncoderLoadError, OpenClipEncoder, resolve_pretrained  # noqa: E402

TINY_NAME = "ccl-test-tiny-clip"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_registered(tmp_path_factory):
    """A tiny config registered with open_clip and a saved random checkpoint of it."""
    d = tmp_path_factory.mktemp("clip")
    cfg_path = d / f"{TINY_NAME}.json"
    cfg_path.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(cfg_path)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_NAME, pretrained=None)
    ckpt = d / "tiny_clip.pt"
    torch.save(model.state_dict(), ckpt)
    return ckpt, model


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return open_clip.model.CLIP(
        embed_dim=32,
        vision_cfg=open_clip.model.CLIPVisionCfg(**TINY_CFG["vision_cfg"]),
        text_cfg=open_clip.model.CLIPTextCfg(**TINY_CFG["text_cfg"]),
    )


def test_registered_as_open_clip():
    assert ENCODERS["open_clip"] is OpenClipEncoder


def test_prebuilt_model_unit_norm_and_model_normalization():
    model = tiny_model()
    enc = OpenClipEncoder(model_name="tiny", pretrained=None, model=model, device="cpu", batch_size=3)
    assert enc.dim == 32 and enc.crop_size == 64
    assert enc.name == "open_clip:tiny/random"
    crops = torch.rand(7, 3, 64, 64)
    f = enc.encode_crops(crops)
    assert f.shape == (7, 32) and f.dtype == torch.float32
    torch.testing.assert_close(f.norm(dim=-1), torch.ones(7))
    # Batched == one by one, and the model's own mean / std are applied.
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN)[:, None, None]
    std = torch.tensor(open_clip.OPENAI_DATASET_STD)[:, None, None]
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model.encode_image((crops[4:5] - mean) / std), dim=-1)
    torch.testing.assert_close(f[4:5], ref, atol=1e-5, rtol=1e-5)
    t = enc.encode_text(["a teapot", "a chair", "stuff"])
    assert t.shape == (3, 32)
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(3))


def test_encode_masks_crops_each_mask():
    enc = OpenClipEncoder(model_name="tiny", pretrained=None, model=tiny_model(), device="cpu")
    image = torch.rand(40, 50, 3)
    masks = torch.zeros(3, 40, 50, dtype=torch.bool)
    masks[0, :20, :25] = True
    masks[1, 20:, 25:] = True
    masks[2, 5:35, 5:45] = True
    f = enc.encode_masks(image, masks)
    assert f.shape == (3, 32)
    assert not torch.allclose(f[0], f[1])
    assert enc.encode_masks(image, masks[:0]).shape == (0, 32)


def test_create_model_and_transforms_path_with_local_checkpoint(tiny_registered):
    ckpt, model = tiny_registered
    enc = OpenClipEncoder(model_name=TINY_NAME, pretrained=str(ckpt), device="cpu")
    assert enc.checkpoint_path == ckpt and enc.dim == 32
    # The weights really are those of the file.
    for (k, a), b in zip(model.state_dict().items(), enc.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    crops = torch.rand(2, 3, 64, 64)
    ref = OpenClipEncoder(model_name=TINY_NAME, pretrained=None, model=model, device="cpu")
    torch.testing.assert_close(enc.encode_crops(crops), ref.encode_crops(crops))


def test_offline_without_weights_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(EncoderLoadError, match=r"--clip-pretrained") as e:
        resolve_pretrained("ViT-B-16", "laion2b_s34b_b88k", cache_dir=str(tmp_path / "cache"))
    assert "ViT-B-16/laion2b_s34b_b88k" in str(e.value) and "\n" not in str(e.value)
    missing = tmp_path / "clip_b16.pt"
    with pytest.raises(EncoderLoadError, match=r"clip_b16\.pt.*--clip-pretrained"):
        OpenClipEncoder("ViT-B-16", pretrained=str(missing), device="cpu")
    with pytest.raises(EncoderLoadError, match="--clip-model"):
        OpenClipEncoder("ViT-Nope-99", pretrained="laion2b_s34b_b88k", device="cpu")
