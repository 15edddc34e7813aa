import dataclasses
import json

import numpy as np
import pytest
import torch

from ccl_gs.codebook import CODEBOOK_VARIANTS, codebook_variant, load_codebook, load_preprocessed, train_codebook
from ccl_gs.codebook.__main__ import main as cli_main
from ccl_gs.codebook.quality import cross_view_consistency, cross_view_similarity
from ccl_gs.codebook.synthetic import write_synthetic_preprocess
from ccl_gs.io.artifacts import ArtifactError, load_npz, save_npz_atomic

SMALL = dict(n_prototypes=12, iterations=30, batch_size=0, pairs_within=16, pairs_across=32, checkpoint_every=0)


@pytest.fixture(scope="module")
def pre(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pre")
    truth = write_synthetic_preprocess(folder, n_views=8, n_classes=6, dim=32, view_noise=1.0, seed=0)
    return folder, truth


def _own(out, truth):
    return np.concatenate([load_npz(out / f"{s}.npz")["mask_prototypes"] for s in truth.stems])


def test_pull_push_make_an_objects_targets_agree_across_views(pre, tmp_path):
    """The method's point, measured per level on same-object masks of different views."""
    folder, truth = pre
    inp = load_preprocessed(folder)
    stats = {}
    for name in ("no_pull_push", "ccl"):
        cfg = codebook_variant(name, **{**SMALL, "n_prototypes": 16, "iterations": 250, "reseed_every": 50})
        res = train_codebook(inp, cfg, tmp_path / name, progress=False)
        own = _own(tmp_path / name, truth)
        for lvl in (0, 1):
            m = truth.levels == lvl
            sim = cross_view_similarity(res.prototypes[lvl].numpy(), own[m], truth.classes[m], truth.views[m])
            idx = cross_view_consistency(own[m], truth.classes[m], truth.views[m])
            stats[name, lvl] = (sim, idx)
    for lvl in (0, 1):
        (sim0, idx0), (sim1, idx1) = stats["no_pull_push", lvl], stats["ccl", lvl]
        # Prototypes chosen by one object in different views become much more alike.
        assert sim1 > sim0 + 0.1, stats
        # Which prototype is chosen barely moves (pull moves both ends of a pair symmetrically).
        assert idx1 > idx0 - 0.1, stats


def test_dead_prototypes_are_counted_and_reseeded(pre, tmp_path):
    folder, _ = pre
    base = dict(SMALL, init="random", n_prototypes=24, iterations=40, reseed_every=10)
    with_reseed = train_codebook(folder, codebook_variant("ccl", **base), tmp_path / "a", progress=False)
    without = train_codebook(folder, codebook_variant("ccl", **base, reseed_until=0.0), tmp_path / "b", progress=False)
    log_a = with_reseed.manifest.extra["usage_log"]
    assert log_a[0]["step"] == 0 and log_a[0]["dead"][0] > 0 and sum(log_a[0]["reseeded"]) == 0  # after init
    assert log_a[1]["dead"][0] > 0 and log_a[1]["reseeded"][0] == log_a[1]["dead"][0]
    assert all(sum(e["reseeded"]) == 0 for e in without.manifest.extra["usage_log"])
    assert sum(with_reseed.n_used) > sum(without.n_used)
    # Re-seeding stops after reseed_until * iterations: the last count only counts.
    assert sum(log_a[-1]["reseeded"]) == 0


def test_artifact_round_trip(pre, tmp_path):
    folder, truth = pre
    cfg = codebook_variant("ccl", **SMALL)
    res = train_codebook(folder, cfg, tmp_path / "cb", progress=False)
    loaded = load_codebook(tmp_path / "cb", preprocessed=folder)
    assert loaded.prototypes.shape == (2, 12, 32)
    assert torch.allclose(loaded.prototypes, res.prototypes)
    assert torch.allclose(loaded.prototypes.norm(dim=-1), torch.ones(2, 12), atol=1e-5)
    assert loaded.config == cfg
    ex = loaded.manifest.extra
    assert ex["encoder"]["name"] == "synthetic" and ex["dim"] == 32 and ex["images"] == truth.stems
    assert ex["used_prototypes"] == loaded.n_used
    for stem in truth.stems:
        src = load_npz(folder / f"{stem}.npz")
        out = load_npz(tmp_path / "cb" / f"{stem}.npz")
        im, pm = src["index_maps"], out["proto_maps"]
        assert pm.shape == im.shape and pm.dtype == np.int32
        assert ((pm == -1) == (im == -1)).all()
        feats = torch.nn.functional.normalize(torch.from_numpy(src["features"].astype(np.float32)), dim=-1)
        nearest = (feats @ loaded.prototypes.transpose(1, 2)).argmax(2).numpy()  # [2, M]
        for lvl in (0, 1):
            hit = im[lvl] >= 0
            assert (pm[lvl][hit] == nearest[lvl][im[lvl][hit]]).all()
        own = out["mask_prototypes"]
        assert (own == nearest[src["levels"], np.arange(len(own))]).all()


def test_rerun_is_skipped_changed_config_and_stale_input_are_redone(pre, tmp_path):
    src, _ = pre
    folder = tmp_path / "pre"
    write_synthetic_preprocess(folder, n_views=4, n_classes=3, dim=16, seed=1)
    cfg = codebook_variant("ccl", **SMALL)
    out = tmp_path / "cb"
    first = train_codebook(folder, cfg, out, progress=False)
    mtime = (out / "codebook.npz").stat().st_mtime_ns
    again = train_codebook(folder, cfg, out, progress=False)
    assert again.skipped and not first.skipped
    assert (out / "codebook.npz").stat().st_mtime_ns == mtime
    changed = train_codebook(folder, dataclasses.replace(cfg, margin=0.5), out, progress=False)
    assert not changed.skipped and changed.config.margin == 0.5
    # An input file changes after the codebook was made: detected on load and on re-run.
    z = load_npz(folder / "view_000.npz")
    z["features"] = z["features"][::-1].copy()
    save_npz_atomic(folder / "view_000.npz", **z)
    with pytest.raises(ArtifactError, match="stale"):
        load_codebook(out, preprocessed=folder)
    redone = train_codebook(folder, dataclasses.replace(cfg, margin=0.5), out, progress=False)
    assert not redone.skipped
    load_codebook(out, preprocessed=folder)


def test_killed_run_resumes_to_the_same_result(pre, tmp_path):
    folder, _ = pre
    cfg = codebook_variant("ccl", **{**SMALL, "iterations": 30, "checkpoint_every": 5, "reseed_every": 10})
    full = train_codebook(folder, cfg, tmp_path / "full", progress=False)

    class Killed(Exception):
        pass

    def kill_at_17(step, losses):
        if step == 17:
            raise Killed

    out = tmp_path / "resumed"
    with pytest.raises(Killed):
        train_codebook(folder, cfg, out, progress=False, on_step=kill_at_17)
    assert not (out / "manifest.json").exists()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 15
    steps = []
    resumed = train_codebook(folder, cfg, out, progress=False, on_step=lambda s, _: steps.append(s))
    assert steps[0] == 16 and steps[-1] == 30
    assert torch.equal(resumed.prototypes, full.prototypes)
    assert resumed.manifest.extra["final_losses"] == full.manifest.extra["final_losses"]
    assert resumed.manifest.extra["usage_log"] == full.manifest.extra["usage_log"]
    assert not (out / "checkpoint.pt").exists()


def test_shared_codebook_serves_both_levels(pre, tmp_path):
    folder, _ = pre
    res = train_codebook(folder, codebook_variant("ccl", **SMALL, shared_codebook=True), tmp_path / "s", progress=False)
    assert torch.equal(res.prototypes[0], res.prototypes[1])


def test_corrupt_input_names_the_file(tmp_path):
    folder = tmp_path / "pre"
    write_synthetic_preprocess(folder, n_views=2, n_classes=2, dim=8)
    (folder / "view_001.npz").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="view_001.npz"):
        train_codebook(folder, codebook_variant("ccl", **SMALL), tmp_path / "cb", progress=False)


def test_variants_registry_holds_the_ablation():
    assert CODEBOOK_VARIANTS["no_pull_push"].w_pull == 0 and CODEBOOK_VARIANTS["no_pull_push"].w_push == 0
    assert CODEBOOK_VARIANTS["ccl"].margin == 0.7 and CODEBOOK_VARIANTS["ccl"].w_pull == 0.25
    with pytest.raises(KeyError, match="unknown codebook variant"):
        codebook_variant("nope")


def test_cli(tmp_path, capsys):
    folder = tmp_path / "pre"
    write_synthetic_preprocess(folder, n_views=3, n_classes=2, dim=8)
    assert cli_main(["--preprocessed", str(tmp_path / "missing"), "--out", str(tmp_path / "cb"), "--quiet"]) == 1
    assert "--preprocessed" in capsys.readouterr().err
    assert cli_main(["--preprocessed", str(folder), "--out", str(tmp_path / "cb"), "--n-prototypes", "0"]) == 1
    args = ["--preprocessed", str(folder), "--out", str(tmp_path / "cb"), "--quiet", "--variant", "no_pull_push"]
    assert cli_main(args + ["--iterations", "5", "--n-prototypes", "4"]) == 0
    cfg = json.loads((tmp_path / "cb" / "manifest.json").read_text())["config"]
    assert cfg["w_pull"] == 0 and cfg["w_push"] == 0 and cfg["iterations"] == 5 and cfg["n_prototypes"] == 4
