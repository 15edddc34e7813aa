"""The oracle encoder: deterministic text embeddings, masks encoded closest to their class."""

import numpy as np
import pytest
import torch

from ccl_gs.data.synthetic import GroundTruth, OutputConfig, SyntheticConfig, generate
from ccl_gs.encoders import build_encoder
from ccl_gs.encoders.base import ENCODERS, build_encoder as build_from_spec, encoder_spec
from ccl_gs.encoders.oracle import OracleEncoder, normalize_text


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle")
    (r,) = generate(SyntheticConfig(seed=7, size=48, views=3), OutputConfig(out=out, layout="3dovs", points=0, simulate=False))
    return r


def test_registered_and_named_by_config():
    assert ENCODERS["oracle"] is OracleEncoder
    a = build_encoder("oracle", dim=64, noise=0.1, seed=2)
    assert a.name == "oracle:dim=64,noise=0.1,seed=2" and a.dim == 64
    assert build_encoder("oracle").name != a.name
    spec = encoder_spec("oracle", a, dim=64, noise=0.1, seed=2)
    assert build_from_spec(spec).name == a.name


def test_text_embeddings_deterministic_unit_and_near_orthogonal():
    enc = OracleEncoder(dim=512)
    t = enc.encode_text(["mug", "Mug ", "a photo of a mug.", "teapot", "something to write with"])
    assert t.shape == (5, 512) and t.dtype == torch.float32
    assert torch.allclose(t.norm(dim=1), torch.ones(5))
    assert torch.equal(t[0], t[1]) and torch.equal(t[0], t[2])
    assert torch.equal(OracleEncoder(dim=512).encode_text(["mug"])[0], t[0])
    assert abs(float(t[0] @ t[3])) < 0.2 and abs(float(t[0] @ t[4])) < 0.2
    assert not torch.equal(OracleEncoder(dim=512, seed=1).encode_text(["mug"])[0], t[0])
    assert normalize_text("  The   Red  Ball. ") == "red ball"


def test_single_class_mask_encodes_to_its_class(root):
    gt = GroundTruth(root)
    enc = OracleEncoder(scene_root=root, dim=256, noise=0.3)
    text = enc.encode_text(gt.classes)  # [C, D]
    for v in range(len(gt)):
        cmap = torch.from_numpy(gt.view(v)["class_id"])
        present = [c for c in range(1, len(gt.classes) + 1) if (cmap == c).sum() > 0]
        masks = torch.stack([cmap == c for c in present])
        f = enc.encode_masks(torch.zeros(48, 48, 3), masks, view=v)
        assert f.shape == (len(present), 256) and torch.allclose(f.norm(dim=1), torch.ones(len(present)))
        assert ((f @ text.T).argmax(1) + 1).tolist() == present
        # noise is deterministic per (view, mask) and differs between views
        assert torch.equal(f, enc.encode_masks(torch.zeros(48, 48, 3), masks, view=v))
    exact = OracleEncoder(scene_root=root, dim=256)
    m = torch.from_numpy(gt.view(0)["class_id"] == gt.classes.index("floor") + 1)[None]
    assert torch.allclose(exact.encode_masks(torch.zeros(48, 48, 3), m, view=0)[0], text[gt.classes.index("floor")], atol=1e-6)
    assert not torch.equal(enc.encode_masks(torch.zeros(48, 48, 3), m, view=0), enc.encode_masks(torch.zeros(48, 48, 3), m, view=1))


def test_mixed_mask_is_area_weighted(root):
    gt = GroundTruth(root)
    enc = OracleEncoder(scene_root=root, dim=512)
    cmap = gt.view(0)["class_id"]
    fl, wa = gt.classes.index("floor") + 1, gt.classes.index("wall") + 1
    ys, xs = np.nonzero(cmap == fl)
    yw, xw = np.nonzero(cmap == wa)
    m = np.zeros_like(cmap, bool)
    m[ys[:30], xs[:30]] = True
    m[yw[:10], xw[:10]] = True
    f = enc.encode_masks(torch.zeros(48, 48, 3), torch.from_numpy(m)[None], view=0)[0]
    t = enc.encode_text(["floor", "wall"])
    expect = torch.nn.functional.normalize(30 * t[0] + 10 * t[1], dim=0)
    assert torch.allclose(f, expect, atol=1e-5)


def test_resized_image_uses_nearest_ground_truth(root):
    gt = GroundTruth(root)
    enc = OracleEncoder(scene_root=root, dim=128)
    big = np.kron(gt.view(1)["class_id"], np.ones((2, 2), np.int32))  # [96, 96]
    c = int(np.bincount(big.ravel())[1:].argmax()) + 1
    f = enc.encode_masks(torch.zeros(96, 96, 3), torch.from_numpy(big == c)[None], view=1)
    assert int((f @ enc.encode_text(gt.classes).T).argmax()) + 1 == c


def test_clear_errors(root):
    enc = OracleEncoder(scene_root=root)
    with pytest.raises(RuntimeError, match="cannot encode bare crops"):
        enc.encode_crops(torch.zeros(1, 3, 224, 224))
    with pytest.raises(ValueError, match="view"):
        enc.encode_masks(torch.zeros(48, 48, 3), torch.zeros(1, 48, 48, dtype=torch.bool))
    with pytest.raises(ValueError, match="scene_root"):
        OracleEncoder().encode_masks(torch.zeros(48, 48, 3), torch.zeros(1, 48, 48, dtype=torch.bool), view=0)


def test_tiles_are_the_class_mix_under_them(tmp_path):
    """The CLIP oracle on a square tile (no mask): the area-weighted classes of the tile's pixels inside the image."""
    import numpy as np

    from ccl_gs.data.synthetic import OutputConfig, SyntheticConfig, generate
    from ccl_gs.encoders import build_encoder

    (scene,) = generate(SyntheticConfig(seed=1, size=32, views=2, supersample=1),
                        OutputConfig(out=tmp_path, layout="lerf", points=0, simulate=False))
    enc = build_encoder("oracle", scene_root=scene)
    img = torch.zeros(32, 32, 3)
    boxes = torch.tensor([[-4, -4, 12, 12], [10, 5, 26, 21]])
    tiles = enc.encode_tiles(img, boxes, view=1)
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[0, :12, :12] = True
    masks[1, 10:26, 5:21] = True
    assert torch.allclose(tiles, enc.encode_masks(img, masks, view=1))
    dino = build_encoder("oracle_dino", scene_root=scene, dim=8, stride=4, noise=0.0)
    f = dino.encode_image(img, view=1)
    assert f.shape == (8, 8, 8)
    inst = enc.ground_truth.view(1)["instance"][2::4, 2::4]
    # cells of one instance and part share one feature; different instances differ
    same = np.equal(inst[:, :, None, None], inst[None, None])
    d = torch.cdist(f.view(-1, 8), f.view(-1, 8)).view(8, 8, 8, 8).numpy()
    assert (d[~same] > 1e-3).all()
