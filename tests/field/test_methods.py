"""Stage-3 methods: the heads' scores against slow references, state round trips, and the
raw-feature and autoencoder baselines trained, queried and exported on the tiny scene."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ccl_gs.autoencoder import AutoencoderConfig, LanguageAutoencoder, train_autoencoder
from ccl_gs.field.language import LanguageField, QueryError, encode_queries
from ccl_gs.field.methods import FIELD_METHODS, AutoencoderHead, CodebookHead, RawHead, method_of
from ccl_gs.field.model import DecoderConfig
from ccl_gs.field.render import RenderConfig, make_encoder, render_queries
from ccl_gs.field.train import run_field
from ccl_gs.io.artifacts import ArtifactError
from ccl_gs.io.ply import read_gaussians_ply
from ccl_gs.query import relevancy

CFG = DecoderConfig(feature_dim=8, hidden=16)


def _fn(q):
    return lambda e: relevancy("softmax", e, q)


def _heads():
    torch.manual_seed(0)
    protos = [F.normalize(torch.randn(5, 12), dim=-1), F.normalize(torch.randn(7, 12), dim=-1)]
    ae = LanguageAutoencoder(AutoencoderConfig(encoder_dims=[8, 3], decoder_dims=[8]), 12)
    return [CodebookHead(CFG, protos), RawHead(CFG, 12, 2), AutoencoderHead(ae, 2)]


@pytest.mark.parametrize("i", range(3))
def test_scores_match_a_per_feature_reference_and_survive_a_state_round_trip(i):
    head = _heads()[i].eval()
    q = F.normalize(torch.randn(3, 12), dim=-1)
    feats = torch.randn(40, head.feature_dim)
    got = head.scores(feats, _fn(q), fill=-5.0)
    assert got.shape == (2, 40, 3)
    for lv in range(2):
        for p in range(40):
            if isinstance(head, CodebookHead):
                j = int(head.indices(feats[p : p + 1])[lv, 0])
                want = torch.full((3,), -5.0) if j < 0 else _fn(q)(head.prototypes[lv][j : j + 1])[0]
            elif float(head.coverage_logit(feats[p : p + 1], lv)[0]) <= 0:
                want = torch.full((3,), -5.0)  # "not covered" scores the fill value, like the codebook's no-mask
            else:
                want = _fn(q)(head.embed(feats[p : p + 1], lv))[0]
            torch.testing.assert_close(got[lv, p], want)
    # chunked scoring equals one pass
    if not isinstance(head, CodebookHead):
        torch.testing.assert_close(head.scores(feats, _fn(q), -5.0, chunk=7), got)
    again = type(head).from_state(head.get_state()).eval()
    torch.testing.assert_close(again.scores(feats, _fn(q), fill=-5.0), got)


def test_embedding_losses_regress_covered_pixels_and_learn_coverage_everywhere():
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    raw = RawHead(CFG, 12, 2)
    feats = torch.randn(4, 5, 8, requires_grad=True)
    index = torch.full((2, 4, 5), -1, dtype=torch.long)
    table = F.normalize(torch.randn(3, 12), dim=-1)
    index[0, 1, 2] = 2
    index[1, 3, 4] = 0
    loss = raw.loss(feats, {"index": index, "table": table})
    flat = feats.reshape(20, 8)
    want = (1 - (raw.predict(feats[1, 2], 0) * table[2]).sum()) + (1 - (raw.predict(feats[3, 4], 1) * table[0]).sum())
    for lv in range(2):
        want = want + bce(raw.coverage_logit(flat, lv), (index[lv].reshape(-1) >= 0).float())
    torch.testing.assert_close(loss, want)
    # the autoencoder head: per level [latent (3), coverage logit (1)]; L1 on the latents of covered pixels
    ae = AutoencoderHead(LanguageAutoencoder(AutoencoderConfig(encoder_dims=[3], decoder_dims=[4]), 12), 2)
    assert ae.feature_dim == 8
    f8 = torch.randn(4, 5, 8)
    lat = torch.randn(3, 3)
    got = ae.loss(f8, {"index": index, "table": lat})
    want = (f8[1, 2, :3] - lat[2]).abs().sum() + (f8[3, 4, 4:7] - lat[0]).abs().sum()
    for lv, c in ((0, 3), (1, 7)):
        want = want + bce(f8.reshape(20, 8)[:, c], (index[lv].reshape(-1) >= 0).float())
    torch.testing.assert_close(got, want)
    assert not any(p.requires_grad for p in ae.parameters())  # the autoencoder is frozen


def test_uncovered_view_gives_a_differentiable_zero_and_buffers_follow_the_module():
    for head in _heads()[1:]:
        feats = torch.randn(3, 4, head.feature_dim, requires_grad=True)
        target = {"index": torch.full((2, 3, 4), -1), "table": torch.randn(2, 12), "features": torch.randn(2, 12)}
        loss = head.loss(feats, target)
        loss.backward()  # no mask covers this view: only "not covered" is learned, and no error
        assert torch.isfinite(loss) and feats.grad.abs().sum() > 0
    cb = _heads()[0].double()
    assert all(p.dtype == torch.float64 for p in cb.prototypes)
    assert set(cb.state_dict()) >= {"prototypes_0", "prototypes_1"}


def test_method_follows_the_artifact_kind(pipeline, tmp_path):
    assert method_of(pipeline["root"] / "cb").name == "codebook"
    assert method_of(pipeline["pre"]).name == "raw"
    with pytest.raises(ArtifactError, match="'semantic_field' artifact"):
        method_of(pipeline["fcfg"].out)
    with pytest.raises(ArtifactError, match="manifest"):
        method_of(tmp_path)
    assert set(FIELD_METHODS) == {"codebook", "raw", "autoencoder"}


@pytest.fixture(scope="module")
def baselines(pipeline):
    root = pipeline["root"]
    train_autoencoder(pipeline["pre"], AutoencoderConfig(iterations=300, batch_size=64, lr=3e-3), root / "ae",
                      progress=False)
    out = {}
    for name, sup in (("raw", pipeline["pre"]), ("autoencoder", root / "ae")):
        cfg = dataclasses.replace(pipeline["fcfg"], supervision=sup, out=root / f"field_{name}", iterations=300)
        out[name] = (cfg, run_field(cfg))
    return out


@pytest.mark.parametrize("name", ["raw", "autoencoder"])
def test_baseline_fields_train_query_and_export(pipeline, baselines, name, tmp_path):
    cfg, m = baselines[name]
    assert m["method"] == name and m["fit_measure"] == "cosine"
    # the rendered language points towards the covering mask's feature (random is ~0 in 512-d)
    assert m["train_cosine"] > 0.3  # decoded vs mask feature; an untrained field scores ~0 in 512-d
    lf = LanguageField.load(cfg.out)
    assert lf.method == name
    d_f = 8  # raw: the 8-d feature; autoencoder: (3-d latent + coverage logit) x 2 levels
    ply = read_gaussians_ply(cfg.out / "point_cloud.ply")
    assert ply.extra["f_lang"].shape == (len(ply), d_f)
    assert not any(k.startswith("proto_") for k in ply.extra)
    with pytest.raises(QueryError, match="no prototypes"):
        lf.gaussian_prototypes()
    # render + eval inputs in the same layout as the codebook method
    scene = pipeline["scene"]
    labels = scene.parent / "label" / scene.name
    s = render_queries(RenderConfig(field_dir=cfg.out, out=tmp_path / "r", lerf_labels=labels))
    frame = s["views"][0]
    from ccl_gs.metrics.lerf_ovs import query_slug

    rel = np.load(tmp_path / "r" / "lerf_ovs" / scene.name / frame / f"{query_slug(s['queries'][0])}.npy")
    assert rel.shape == (2, 64, 64) and np.isfinite(rel).all()
    # per-Gaussian relevancy is the same function as per-pixel: [L, Q, N]
    q, c = encode_queries(make_encoder(lf.encoder_spec), s["queries"][:2])
    g = lf.gaussian_relevancy(q, "canonical", c)
    assert g.shape == (2, 2, len(ply)) and torch.isfinite(g).all()
    # a re-run reuses the field; its manifest names the stage-2 artifact it was trained from
    assert run_field(cfg).get("reused") is True
    kind = {"raw": "preprocess", "autoencoder": "autoencoder"}[name]
    assert list(json.loads((cfg.out / "manifest.json").read_text())["inputs"]) == [kind, "rgb_ckpt"]
