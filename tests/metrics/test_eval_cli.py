"""End-to-end runs of eval/lerf_ovs.py and eval/ovs3d.py on tiny fake inputs, and their error cases."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccl_gs.metrics import lerf_ovs, ovs3d

REPO = Path(__file__).resolve().parents[2]
LABELS = REPO.parent / "shared" / "data" / "lerf_ovs_labels"
H, W = 60, 90


def _cli(name: str):
    spec = importlib.util.spec_from_file_location(f"eval_cli_{name}", REPO / "eval" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _band_obj(cat, x0, x1):
    return {"category": cat, "segmentation": [[x0, 0], [x1, 0], [x1, H - 1], [x0, H - 1]], "bbox": [x0, 0, x1, H - 1]}


def _lerf_fixture(root: Path):
    """Two scenes; scene 'good' is predicted perfectly, scene 'bad' on the wrong side of the image."""
    labels, renders = root / "labels", root / "renders"
    objs = {"frame_00001": [_band_obj("red cup", 0, 39), _band_obj("blue plate", 50, 89)], "frame_00004": [_band_obj("red cup", 30, 69)]}
    for scene in ("good", "bad"):
        for stem, objects in objs.items():
            d = labels / scene
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{stem}.json").write_text(json.dumps({"info": {"name": f"{stem}.jpg", "width": W, "height": H}, "objects": objects}))
            for o in objects:
                x0, x1 = o["bbox"][0], o["bbox"][2]
                m = np.zeros((H, W), np.float32)
                m[:, x0 : x1 + 1] = 1.0
                if scene == "bad":
                    m = 1.0 - m
                lerf_ovs.save_render(renders, scene, stem, o["category"], np.stack([0.5 * m, m]))
    return labels, renders


def test_lerf_ovs_cli_end_to_end(tmp_path):
    labels, renders = _lerf_fixture(tmp_path)
    out = tmp_path / "res.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "eval" / "lerf_ovs.py"), "--renders", str(renders), "--labels", str(labels), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "good" in proc.stdout and "mean (over scenes)" in proc.stdout
    res = json.loads(out.read_text())
    assert res["scenes"]["good"]["miou"] == 1.0 and res["scenes"]["good"]["loc_acc"] == 1.0
    assert res["scenes"]["good"]["n_pairs"] == 3
    assert res["scenes"]["bad"]["miou"] == 0.0 and res["scenes"]["bad"]["loc_acc"] == 0.0
    assert res["mean_over_scenes"]["miou"] == 0.5 and res["pooled"]["n_pairs"] == 6
    assert res["scenes"]["good"]["frames"]["frame_00001"]["red cup"]["level"] == 1


def test_lerf_ovs_scene_selection_and_resize(tmp_path, capsys):
    labels, renders = _lerf_fixture(tmp_path)
    # a half-size render with the same aspect ratio is resized bilinearly
    small = np.zeros((2, H // 2, W // 2), np.float32)
    small[:, :, :20] = 1.0
    lerf_ovs.save_render(renders, "good", "frame_00001", "red cup", small)
    main = _cli("lerf_ovs")
    assert main(["--renders", str(renders), "--labels", str(labels), "--scenes", "good", "--out", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert list(res["scenes"]) == ["good"]
    assert res["scenes"]["good"]["frames"]["frame_00001"]["red cup"]["iou"] > 0.9
    code = main(["--renders", str(renders), "--labels", str(labels), "--scenes", "good", "--resize", "error", "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert code == 2 and "red_cup.npy" in err and "resize is 'error'" in err


def _run_error(main, argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_lerf_ovs_cli_errors(tmp_path, capsys):
    labels, renders = _lerf_fixture(tmp_path)
    main = _cli("lerf_ovs")
    args = ["--renders", str(renders), "--labels", str(labels), "--scenes", "good", "--out", str(tmp_path / "o.json")]

    # a label file whose frame has no render
    (renders / "good" / "frame_00004" / "red_cup.npy").unlink()
    (renders / "good" / "frame_00004").rmdir()
    err = _run_error(main, args, capsys)
    assert "frame_00004.json" in err and "no render folder" in err
    lerf_ovs.save_render(renders, "good", "frame_00004", "red cup", np.ones((2, H, W), np.float32))

    # a missing render for one query
    (renders / "good" / "frame_00001" / "blue_plate.npy").unlink()
    err = _run_error(main, args, capsys)
    assert "blue_plate.npy" in err and "missing render" in err

    # wrong aspect ratio
    lerf_ovs.save_render(renders, "good", "frame_00001", "blue plate", np.ones((2, H, H), np.float32))
    err = _run_error(main, args, capsys)
    assert "blue_plate.npy" in err and "aspect ratio" in err

    # level count differs between renders of one scene
    lerf_ovs.save_render(renders, "good", "frame_00001", "blue plate", np.ones((3, H, W), np.float32))
    err = _run_error(main, args, capsys)
    assert "blue_plate.npy" in err and "levels" in err

    # not [L, H, W]
    np.save(renders / "good" / "frame_00001" / "blue_plate.npy", np.ones((H, W), np.float32))
    err = _run_error(main, args, capsys)
    assert "blue_plate.npy" in err and "[L, H, W]" in err

    # unknown scene, missing renders folder
    err = _run_error(main, ["--renders", str(renders), "--labels", str(labels), "--scenes", "nope", "--out", "x.json"], capsys)
    assert "nope" in err and "--scenes" in err
    err = _run_error(main, ["--renders", str(tmp_path / "none"), "--labels", str(labels), "--out", "x.json"], capsys)
    assert "--renders" in err
    assert not (tmp_path / "o.json").exists()


def test_lerf_ovs_cli_on_real_labels_with_mask_renders(tmp_path):
    if not LABELS.is_dir():
        pytest.skip(f"shared LERF-OVS labels not found at {LABELS}")
    from ccl_gs.metrics.labels import load_scene_labels

    renders = tmp_path / "renders"
    for fr in load_scene_labels(LABELS / "ramen"):
        for q in fr.categories:
            lerf_ovs.save_render(renders, "ramen", fr.frame_stem, q, fr.masks[q][None].astype(np.float32))
    out = tmp_path / "res.json"
    assert _cli("lerf_ovs")(["--renders", str(renders), "--labels", str(LABELS), "--scenes", "ramen", "--out", str(out)]) == 0
    res = json.loads(out.read_text())["scenes"]["ramen"]
    # ground-truth masks as relevancy: the protocol's smoothing costs a few points, never more than ~15
    assert res["n_pairs"] == 10 and 0.85 < res["miou"] < 1.0 and res["loc_acc"] == 1.0


# ----------------------------------------------------------------- 3D-OVS


def _png(path: Path, mask: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask * 255).astype(np.uint8)).save(path)


def _ovs_fixture(root: Path, h=8, w=12):
    data, renders = root / "data", root / "renders"
    seg = data / "bed" / "segmentations"
    seg.mkdir(parents=True)
    (seg / "classes.txt").write_text("pillow\nbed\nlamp\n")  # sorted: bed, lamp, pillow
    labels = np.zeros((h, w), int)
    labels[:, 4:8], labels[:, 8:] = 1, 2  # bed | lamp | pillow
    for view in ("00", "07"):
        for k, name in enumerate(["bed", "lamp", "pillow"]):
            _png(seg / view / f"{name}.png", labels == k)
        # channels written in another order than sorted; meta.json says which
        classes = ["pillow", "bed", "lamp"]
        scores = np.stack([(labels == ["bed", "lamp", "pillow"].index(c)).astype(np.float32) for c in classes])
        ovs3d.save_render(renders, "bed", view, scores, classes)
    return data, renders


def test_ovs3d_cli_end_to_end(tmp_path):
    data, renders = _ovs_fixture(tmp_path)
    out = tmp_path / "res.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "eval" / "ovs3d.py"), "--renders", str(renders), "--data", str(data), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["scenes"]["bed"]["miou"] == 1.0 and res["scenes"]["bed"]["accuracy"] == 1.0
    assert res["scenes"]["bed"]["classes"] == ["bed", "lamp", "pillow"]
    assert res["mean_over_scenes"]["miou"] == 1.0
    # a half-size render: the ground truth is resized (nearest) to it
    for view in ("00", "07"):
        full = np.load(renders / "bed" / f"{view}.npy")
        np.save(renders / "bed" / f"{view}.npy", full[:, ::2, ::2])
    main = _cli("ovs3d")
    assert main(["--renders", str(renders), "--data", str(data), "--out", str(out), "--protocol", "threshold"]) == 0
    res = json.loads(out.read_text())
    assert res["protocol"] == "threshold" and res["scenes"]["bed"]["accuracy"] is None


def test_ovs3d_cli_errors(tmp_path, capsys):
    data, renders = _ovs_fixture(tmp_path)
    main = _cli("ovs3d")
    args = ["--renders", str(renders), "--data", str(data), "--out", str(tmp_path / "o.json")]
    meta = renders / "bed" / "meta.json"

    meta.write_text(json.dumps({"classes": ["pillow", "bed", "sofa"]}))
    err = _run_error(main, args, capsys)
    assert "meta.json" in err and "'sofa' missing from" in err and "classes.txt" in err
    meta.write_text(json.dumps({"classes": ["pillow", "bed", "lamp"]}))

    _png(data / "bed" / "segmentations" / "07" / "chair.png", np.zeros((8, 12)))
    err = _run_error(main, args, capsys)
    assert "chair.png" in err and "classes.txt" in err
    (data / "bed" / "segmentations" / "07" / "chair.png").unlink()

    np.save(renders / "bed" / "07.npy", np.zeros((2, 8, 12), np.float32))
    err = _run_error(main, args, capsys)
    assert "07.npy" in err and "class channels" in err

    (renders / "bed" / "07.npy").unlink()
    err = _run_error(main, args, capsys)
    assert "07.npy" in err and "missing render" in err

    meta.unlink()
    err = _run_error(main, args, capsys)
    assert "meta.json" in err
    assert not (tmp_path / "o.json").exists()
