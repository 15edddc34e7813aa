"""The oracle's structured view inconsistency: off means unchanged, on means drift toward the stated concepts."""

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ccl_gs.data.synthetic import GroundTruth, OutputConfig, SyntheticConfig, generate
from ccl_gs.encoders import drift
from ccl_gs.encoders.oracle import OracleEncoder, _seed_of


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("drift")
    (r,) = generate(SyntheticConfig(seed=3, size=64, views=4), OutputConfig(out=out, layout="3dovs", points=0, simulate=False))
    return r


def _region_masks(gt, v):
    masks = []
    for g in range(3):
        m, _ = gt.regions(v, g, min_area=4)
        masks.append(m)
    return torch.from_numpy(np.concatenate(masks))


def _reference(enc, masks, view):
    """The oracle before the structured drift existed: area-weighted class mix, normalized, plus seeded noise."""
    gt = enc.ground_truth
    cmap = gt.view(view)["class_id"]
    E = enc.class_embeddings()
    out = []
    for m in masks.numpy():
        counts = np.bincount(cmap[m], minlength=E.shape[0]).astype(np.float32)
        if counts.sum() == 0:
            counts[0] = 1
        f = F.normalize(torch.from_numpy(counts) @ E, dim=0)
        if enc.noise > 0:
            key = hashlib.sha256(np.packbits(m.reshape(-1)).tobytes()).hexdigest()
            g = torch.Generator().manual_seed(_seed_of("noise", enc.seed, view, key))
            f = F.normalize(f + enc.noise * torch.randn(enc.dim, generator=g) / np.sqrt(enc.dim), dim=0)
        out.append(f)
    return torch.stack(out)


@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_strength_zero_is_the_plain_oracle_bit_for_bit(root, noise):
    gt = GroundTruth(root)
    off = OracleEncoder(scene_root=root, noise=noise, drift=0.0)
    assert off.name == OracleEncoder(scene_root=root, noise=noise).name
    for v in range(len(gt)):
        masks = _region_masks(gt, v)
        f = off.encode_masks(torch.zeros(64, 64, 3), masks, view=v)
        assert torch.allclose(f, _reference(off, masks, v), atol=1e-6)
        assert torch.equal(f, OracleEncoder(scene_root=root, noise=noise).encode_masks(torch.zeros(64, 64, 3), masks, view=v))
    # texts of look-alike concepts keep their plain random vectors when the drift is off
    assert abs(float(off.encode_text(["jar"])[0] @ off.encode_text(["vase"])[0])) < 0.2


def test_confuser_texts_sit_at_the_stated_cosine():
    enc = OracleEncoder(drift=1.0)
    lo, hi = drift.CONFUSER_COS
    for cls, names in drift.CONFUSERS.items():
        c = enc.encode_text([cls])[0]
        for n in names:
            cos = float(enc.encode_text([n])[0] @ c)
            assert lo - 1e-5 <= cos <= hi + 1e-5, (cls, n, cos)
    assert not set(drift.CONFUSERS) & set(drift.confuser_owner())  # no confuser is a class name


def test_drift_moves_whole_masks_toward_the_views_confuser(root):
    gt = GroundTruth(root)
    off = OracleEncoder(scene_root=root, drift=0.0)
    on = OracleEncoder(scene_root=root, drift=1.0)
    moved = 0
    for v in range(len(gt)):
        masks, ids = gt.regions(v, 2, min_area=20)
        f0 = off.encode_masks(torch.zeros(64, 64, 3), torch.from_numpy(masks), view=v)
        f1 = on.encode_masks(torch.zeros(64, 64, 3), torch.from_numpy(masks), view=v)
        cls_of = gt.instance_class()
        for i, inst in enumerate(ids):
            name = gt.classes[cls_of[inst] - 1]
            names = drift.CONFUSERS[name]
            chosen = names[_seed_of("drift-pick", on.seed, v, name) % len(names)]
            c = on.encode_text([chosen])[0]
            others = [on.encode_text([n])[0] for n in names if n != chosen]
            # along the look-alikes' own directions (orthogonal to the class), the chosen one leads
            e = on.encode_text([name])[0]

            def own(t):
                return F.normalize(t - (t @ e) * e, dim=0)

            if drift._uniform("drift-amount", on.seed, v, int(inst)) < 0.2:
                continue
            assert abs(float(f0[i] @ own(c))) < 1e-5
            assert all(float(f1[i] @ own(c)) > float(f1[i] @ own(o)) + 0.05 for o in others)
            moved += 1
    assert moved > 0


def test_occluded_mask_drifts_toward_its_occluder(root):
    gt = GroundTruth(root)
    cls_of = gt.instance_class()
    found = False
    for v in range(len(gt)):
        g = gt.view(v)
        masks, ids = gt.regions(v, 2, min_area=20)
        occ, trunc = drift.contour_terms(
            torch.from_numpy(masks), torch.from_numpy(g["instance"].astype(np.int64)), torch.from_numpy(g["depth"]),
            torch.from_numpy(cls_of.astype(np.int64)), torch.from_numpy(ids.astype(np.int64)),
        )
        assert torch.all(occ.sum(1) + trunc <= 1 + 1e-9)
        for i, inst in enumerate(ids):
            if cls_of[inst] - 1 >= len(gt.classes) or gt.classes[cls_of[inst] - 1] in ("floor", "wall"):
                continue
            k = int(occ[i].argmax())
            if occ[i, k] < 0.05 or k == cls_of[inst]:
                continue
            # the occluder is a nearer surface across the contour
            off = OracleEncoder(scene_root=root, drift=0.0).encode_masks(torch.zeros(64, 64, 3), torch.from_numpy(masks[i : i + 1]), view=v)
            on = OracleEncoder(scene_root=root, drift=1.0).encode_masks(torch.zeros(64, 64, 3), torch.from_numpy(masks[i : i + 1]), view=v)
            E = OracleEncoder(scene_root=root).class_embeddings()
            assert float(on[0] @ E[k]) > float(off[0] @ E[k])
            found = True
    if not found:
        pytest.skip("no occluded object in this generated scene")


def test_contour_terms_by_hand():
    # a 2x2 object (instance 1, depth 2) at the top-left corner, half its right side against a nearer instance 2
    inst = torch.zeros(4, 4, dtype=torch.int64)
    depth = torch.full((4, 4), 5.0)
    inst[:2, :2] = 1
    depth[:2, :2] = 2.0
    inst[0, 2] = 2
    depth[0, 2] = 1.0
    mask = (inst == 1)[None]
    occ, trunc = drift.contour_terms(mask, inst, depth, torch.tensor([0, 1, 2]), torch.tensor([1]))
    # contour pixels: all 4; first decided neighbour (up, down, left, right):
    # (0,0) up -> border; (0,1) up -> border; (1,0) down -> inst 0; (1,1) down -> inst 0
    assert float(trunc[0]) == pytest.approx(0.5)
    assert float(occ[0].sum()) == pytest.approx(0.0)
    inst[2, 1] = 2
    depth[2, 1] = 1.0  # now (1,1)'s lower neighbour is a nearer instance 2 of class 2
    occ, trunc = drift.contour_terms(mask, inst, depth, torch.tensor([0, 1, 2]), torch.tensor([1]))
    assert float(occ[0, 2]) == pytest.approx(0.25) and float(trunc[0]) == pytest.approx(0.5)
