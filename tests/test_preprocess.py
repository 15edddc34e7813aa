"""Stage 1 end to end: fern with tiny real models, a synthetic scene with exact sources, resume and shards."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from ccl_gs.io.artifacts import ArtifactError, Manifest  # noqa: E402
from ccl_gs.masks.merge import MergeConfig  # noqa: E402
from ccl_gs.preprocess import (  # noqa: E402
    Components,
    PreprocessConfig,
    PreprocessError,
    RunOptions,
    load_preprocessed,
    run_preprocess,
    target_size,
    verify_artifact,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"  # tests/ is one level below the repo
FERN = DATA / "llff_fern"
REPO = Path(__file__).resolve().parents[1]

TINY_CLIP = "ccl-test-preprocess-clip"
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_SAM2 = [
    "++model.image_size=256",
    "++model.memory_attention.num_layers=1",
    "++model.image_encoder.trunk.stages=[1,1,1,1]",
    "++model.image_encoder.trunk.global_att_blocks=[]",
]
# Exact sources at simulation level 0: wholes win the wp level, parts inside them vanish,
# no whole is taken for a duplicate of its largest part, small objects at 64 px stay.
EXACT_MERGE = MergeConfig(priority="granularity", min_visible_area=10, cross_iou_thr=0.9)


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def fern3(tmp_path_factory) -> Path:
    """Three fern views (images_16, 252 x 189) with their poses, as an LLFF scene."""
    if not (FERN / "images_16").is_dir():
        pytest.skip(f"fern photos not found at {FERN} (shared data absent)")
    root = tmp_path_factory.mktemp("fern3")
    (root / "images_16").mkdir()
    names = sorted(p.name for p in (FERN / "images_16").iterdir() if p.suffix.lower() == ".png")[:3]
    for n in names:
        shutil.copy(FERN / "images_16" / n, root / "images_16" / n)
    np.save(root / "poses_bounds.npy", np.load(FERN / "poses_bounds.npy")[:3])
    return root


@pytest.fixture(scope="module")
def tiny_clip_ckpt(tmp_path_factory) -> Path:
    """A tiny open_clip config registered by name and a random checkpoint of it on disk."""
    import open_clip

    d = tmp_path_factory.mktemp("clip")
    (d / f"{TINY_CLIP}.json").write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(d / f"{TINY_CLIP}.json")
    torch.manual_seed(0)
    torch.save(open_clip.create_model(TINY_CLIP, pretrained=None).state_dict(), d / "tiny_clip.pt")
    return d / "tiny_clip.pt"


@pytest.fixture(scope="module")
def tiny_models():
    """Tiny random-weight SAM (segment_anything classes) and SAM2 (sam2 classes)."""
    from ccl_gs.masks.propagate import Sam2Config, Sam2Tracker
    from ccl_gs.masks.sam import SamConfig, SamMaskSource, build_tiny_sam

    sam_cfg = SamConfig(
        points_per_side=4, crop_n_layers=0, pred_iou_thresh=0.0, stability_score_thresh=0.0, min_mask_region_area=0
    )
    sam = SamMaskSource(build_tiny_sam(), sam_cfg)
    torch.manual_seed(0)
    tracker = Sam2Tracker.from_config(
        Sam2Config(config="configs/sam2.1/sam2.1_hiera_t.yaml", hydra_overrides=list(TINY_SAM2)),
        device="cpu",
        require_checkpoint=False,
    )
    return sam_cfg, sam, tracker


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A 6-view 64 px synthetic scene with simulation level 0 (exact masks and tracks)."""
    from ccl_gs.data.synthetic import OutputConfig, SimConfig, SyntheticConfig, generate

    out = tmp_path_factory.mktemp("syn")
    roots = generate(
        SyntheticConfig(seed=0, views=6, size=64, supersample=1),
        OutputConfig(out=out, layout="3dovs", eval_views=1, points=200),
        SimConfig(level=0),
    )
    return roots[0]


def synthetic_cfg(**kw) -> PreprocessConfig:
    return PreprocessConfig(
        mask_source="precomputed", track_source="precomputed", encoder="oracle", merge=EXACT_MERGE, **kw
    )


def quiet(**kw) -> RunOptions:
    return RunOptions(progress=False, device="cpu", **kw)


def artifact_files(folder: Path) -> dict[str, bytes]:
    """Every file of an artifact by relative path -> its content (npz: the members' bytes, zip times aside)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(folder))
        if p.suffix == ".npz":
            with zipfile.ZipFile(p) as z:
                out[rel] = b"".join(n.encode() + z.read(n) for n in sorted(z.namelist()))
        else:
            out[rel] = p.read_bytes()
    return out


# ---------------------------------------------------------------------------
# Fern, tiny real models


def test_fern_end_to_end_tiny_models(fern3, tiny_models, tiny_clip_ckpt, tmp_path):
    sam_cfg, sam, tracker = tiny_models
    cfg = PreprocessConfig(
        clip_model=TINY_CLIP, clip_pretrained=str(tiny_clip_ckpt), max_side=128, sam=sam_cfg, merge=MergeConfig(min_visible_area=4)
    )
    comp = Components(mask_source=lambda view, image: sam(image), tracker=tracker)  # CLIP goes through the registry
    out = tmp_path / "pre"
    res = run_preprocess(fern3, out, cfg, quiet(), comp)
    assert res.complete and res.tracks_computed and len(res.processed) == 3

    manifest, images = load_preprocessed(out)
    assert manifest.kind == "preprocess" and list(images) == manifest.extra["images"]
    enc = manifest.extra["encoder"]
    assert enc["kind"] == "open_clip" and enc["dim"] == 32 and enc["name"] == f"open_clip:{TINY_CLIP}/{tiny_clip_ckpt}"
    assert set(manifest.inputs["images"]) == set(images)
    assert manifest.inputs["checkpoints"]["clip"] and manifest.inputs["checkpoints"]["masks"] == "injected"
    assert manifest.config["merge"]["min_visible_area"] == 4 and manifest.config["max_side"] == 128
    # 252 x 189 downscaled so the longer side is 128.
    assert target_size(252, 189, 128) == (128, 96)
    assert manifest.extra["image_info"][0]["width"] == 128 and manifest.extra["image_info"][0]["height"] == 96
    assert manifest.extra["video_order"][0] == 0 and sorted(manifest.extra["video_order"]) == [0, 1, 2]
    n_masks = 0
    for stem, z in images.items():
        M = z["features"].shape[0]
        n_masks += M
        assert z["features"].dtype == np.float16 and z["features"].shape == (M, 32)
        np.testing.assert_allclose(np.linalg.norm(z["features"].astype(np.float32), axis=1), 1.0, atol=2e-3)
        assert z["index_maps"].shape == (2, 96, 128) and z["index_maps"].dtype == np.int32
        for level in (0, 1):  # a level's map only points at that level's rows
            rows = np.unique(z["index_maps"][level])
            rows = rows[rows >= 0]
            assert (z["levels"][rows] == level).all()
        assert z["labels"].dtype == np.int32 and ((z["labels"] == -1) | (z["labels"] >= 1)).all()
    assert n_masks > 0
    # The seed view's wp masks are the tracks: each takes its own track label.
    first = images[manifest.extra["images"][0]]
    wp_labels = first["labels"][first["levels"] == 1]
    assert len(wp_labels) and (wp_labels >= 1).all() and len(set(wp_labels.tolist())) == len(wp_labels)
    assert (out / "tracks" / f"{manifest.extra['images'][0]}.npz").is_file()

    # A second run reuses everything (no model is even needed).
    untouched = Components(mask_source=lambda v, i: pytest.fail("recomputed"), tracker=tracker)
    again = run_preprocess(fern3, out, cfg, quiet(), untouched)
    assert again.processed == [] and len(again.skipped) == 3 and not again.tracks_computed


# ---------------------------------------------------------------------------
# Synthetic scene, exact sources


def test_synthetic_level0_matches_ground_truth(synthetic, tmp_path):
    from ccl_gs.data.synthetic.gt import GroundTruth
    from ccl_gs.encoders.oracle import OracleEncoder

    out = tmp_path / "pre"
    res = run_preprocess(synthetic, out, synthetic_cfg(), quiet())
    assert res.complete
    manifest, images = load_preprocessed(out)
    assert manifest.extra["encoder"]["kind"] == "oracle" and manifest.extra["encoder"]["dim"] == 512
    gt = GroundTruth(synthetic)
    text = OracleEncoder(scene_root=synthetic).encode_text(gt.classes).numpy()  # [C, D]
    inst_class = gt.instance_class()
    label_of_instance: dict[int, int] = {}
    for v, stem in enumerate(manifest.extra["images"]):
        z = images[stem]
        inst = gt.view(v)["instance"]
        tracks = np.load(synthetic / "sim_tracks" / f"{stem}.npz")
        wp_rows = np.where(z["levels"] == 1)[0]
        visible = [i for i in np.unique(inst) if i > 0 and (inst == i).sum() >= EXACT_MERGE.min_visible_area]
        assert len(wp_rows) == len(visible)
        for r in wp_rows:
            mask = z["index_maps"][1] == r
            ids = np.unique(inst[mask])
            assert len(ids) == 1 and ids[0] > 0, f"{stem} row {r} spans instances {ids}"
            assert (mask == (inst == ids[0])).all(), f"{stem} row {r} is not instance {ids[0]}"
            cls = int(np.argmax(text @ z["features"][r].astype(np.float32)))
            assert gt.classes[cls] == gt.classes[inst_class[ids[0]] - 1]
            # Label: the id of the track on this instance, the same in every view; stuff is untracked.
            hit = [int(t) for m, t in zip(tracks["track_masks"], tracks["track_ids"]) if (m == mask).all()]
            assert z["labels"][r] == (hit[0] if hit else -1)
            if hit:
                assert label_of_instance.setdefault(int(ids[0]), hit[0]) == hit[0]
    assert len(label_of_instance) >= 2


# ---------------------------------------------------------------------------
# Resume, corruption, config changes, shards


class Abort(Exception):
    pass


def test_killed_run_resumes_to_identical_files(synthetic, tmp_path):
    clean = tmp_path / "clean"
    run_preprocess(synthetic, clean, synthetic_cfg(), quiet())

    killed = tmp_path / "killed"
    done = []

    def stop_after_two(stem: str) -> None:
        done.append(stem)
        if len(done) == 2:
            raise Abort

    with pytest.raises(Abort):
        run_preprocess(synthetic, killed, synthetic_cfg(), quiet(), on_image_done=stop_after_two)
    assert verify_artifact(killed) == [s for s in json.loads((killed / "manifest.json").read_text())["extra"]["images"][2:]]
    assert not list(killed.rglob("*.tmp"))
    res = run_preprocess(synthetic, killed, synthetic_cfg(), quiet())
    assert res.skipped == done and len(res.processed) == 4 and res.complete
    assert artifact_files(killed) == artifact_files(clean)


def test_corrupt_and_truncated_files_are_redone(synthetic, tmp_path):
    clean = tmp_path / "clean"
    run_preprocess(synthetic, clean, synthetic_cfg(), quiet())
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    f1, f2, f3 = out / "01.npz", out / "03.npz", out / "tracks" / "02.npz"
    f1.write_bytes(f1.read_bytes()[: len(f1.read_bytes()) // 2])  # truncated
    f2.write_bytes(b"garbage" * 100)  # corrupt
    f3.write_bytes(f3.read_bytes()[:100])  # truncated track cache
    with pytest.raises(ArtifactError, match="01.npz"):
        load_preprocessed(out)
    res = run_preprocess(synthetic, out, synthetic_cfg(), quiet())
    assert sorted(res.redone) == ["01", "03"] and sorted(res.processed) == ["01", "03"]
    assert res.tracks_computed and res.complete
    assert artifact_files(out) == artifact_files(clean)


def test_changed_config_is_refused_then_overwritten(synthetic, tmp_path):
    out = tmp_path / "pre"
    run_preprocess(synthetic, out, synthetic_cfg(), quiet())
    changed = synthetic_cfg(max_side=32)
    with pytest.raises(PreprocessError, match=r"config\.max_side.*--overwrite") as e:
        run_preprocess(synthetic, out, changed, quiet())
    assert "\n" not in str(e.value)
    res = run_preprocess(synthetic, out, changed, quiet(overwrite=True))
    assert len(res.processed) == 6 and res.complete
    _, images = load_preprocessed(out)
    assert all(z["index_maps"].shape == (2, 32, 32) for z in images.values())
    # An input changing (a precomputed mask file) is a change too.
    m = np.load(synthetic / "sim_masks" / "00.npz")
    backup = (synthetic / "sim_masks" / "00.npz").read_bytes()
    try:
        np.savez(synthetic / "sim_masks" / "00.npz", masks=m["masks"][:-1], granularity=m["granularity"][:-1], scores=m["scores"][:-1])
        with pytest.raises(PreprocessError, match=r"inputs\.precomputed_masks\.00"):
            run_preprocess(synthetic, out, changed, quiet())
    finally:
        (synthetic / "sim_masks" / "00.npz").write_bytes(backup)


def test_shards_split_images_and_agree_with_one_run(synthetic, tmp_path):
    clean = tmp_path / "clean"
    run_preprocess(synthetic, clean, synthetic_cfg(), quiet())
    out = tmp_path / "sharded"
    with pytest.raises(PreprocessError, match="shard 0 or --steps tracks"):
        run_preprocess(synthetic, out, synthetic_cfg(), quiet(shard="1/2"))
    r0 = run_preprocess(synthetic, out, synthetic_cfg(), quiet(shard="0/2"))
    assert r0.processed == ["00", "02", "04"] and r0.missing == ["01", "03", "05"]
    r1 = run_preprocess(synthetic, out, synthetic_cfg(), quiet(shard="1/2"))
    assert r1.processed == ["01", "03", "05"] and r1.complete and not r1.tracks_computed
    assert run_preprocess(synthetic, out, synthetic_cfg(), quiet(steps="verify")).complete
    assert artifact_files(out) == artifact_files(clean)
    with pytest.raises(PreprocessError, match="--shard"):
        run_preprocess(synthetic, out, synthetic_cfg(), quiet(shard="2/2"))


# ---------------------------------------------------------------------------
# Loader and CLI


def test_loader_rejects_stale_and_foreign_folders(synthetic, tmp_path):
    out = tmp_path / "pre"
    run_preprocess(synthetic, out, synthetic_cfg(), quiet())
    m = Manifest.load(out)
    m.config["max_side"] = 12345  # the files now carry another fingerprint
    m.save(out)
    with pytest.raises(ArtifactError, match="another config"):
        load_preprocessed(out)
    Manifest("codebook", 1, {}).save(out)
    with pytest.raises(ArtifactError, match="'codebook'"):
        load_preprocessed(out)


def _cli():
    spec = importlib.util.spec_from_file_location("preprocess_run", REPO / "preprocess" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_runs_and_errors_in_one_line(synthetic, tmp_path, capsys):
    cli = _cli()
    out = tmp_path / "pre"
    args = ["--data", str(synthetic), "--out", str(out), "--mask-source", "precomputed", "--track-source", "precomputed",
            "--encoder", "oracle", "--merge.priority", "granularity", "--merge.min-visible-area", "10",
            "--merge.cross-iou-thr", "0.9", "--no-progress", "--device", "cpu"]
    assert cli.main(args) == 0
    assert "6 of 6 images complete" in capsys.readouterr().out
    assert cli.main(args + ["--steps", "verify"]) == 0
    # Real models without checkpoints: one line naming the file / flag, exit code 2.
    assert cli.main(["--data", str(synthetic), "--out", str(tmp_path / "x"), "--mask-source", "precomputed",
                     "--encoder", "oracle", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--sam2-checkpoint" in err
    assert cli.main(["--data", str(synthetic), "--out", str(tmp_path / "y"), "--sam-checkpoint", str(tmp_path / "sam.pth"),
                     "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sam.pth" in err and "--sam-checkpoint" in err
    assert cli.main(["--data", str(synthetic), "--out", str(tmp_path / "z"), "--mask-source", "precomputed",
                     "--track-source", "precomputed", "--clip-pretrained", str(tmp_path / "clip.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "clip.pt" in err and "--clip-pretrained" in err
    assert cli.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "w")]) == 2
