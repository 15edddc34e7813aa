"""The evaluation CLIs on a generated synthetic scene: exact predictions pass, bad inputs stop them.

Error cases that tests/metrics/test_eval_cli.py already covers on hand-made
fixtures (a missing LERF-OVS render file, a render meta.json naming an
unknown class, an extra segmentation PNG, a missing 3D-OVS render) are not
repeated here; these are the ones a generated scene makes natural: label
files and segmentation views that point past the scene's views, a class
dropped from classes.txt, a missing ground-truth PNG.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ccl_gs.data.synthetic import GroundTruth, OutputConfig, SyntheticConfig, generate
from ccl_gs.metrics import lerf_ovs, ovs3d
from ccl_gs.metrics.labels import load_scene_labels, ovs3d_views

REPO = Path(__file__).resolve().parents[2]
SCENE = "syn"
VIEWS = 10


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A 96x96 scene in both layouts (2 labelled views) and exact-ground-truth predictions for both evaluations."""
    root = tmp_path_factory.mktemp("evalsyn")
    data = root / "data"
    cfg = SyntheticConfig(seed=3, size=96, views=VIEWS, path="orbit", supersample=1, min_objects=3, max_objects=4)
    r3, rl = generate(cfg, OutputConfig(out=data, layout="both", name=SCENE, label_views="spaced", eval_views=2,
                                        points=100, simulate=False))
    labels = data / "lerf_ovs" / "label"
    renders = root / "renders"
    gt = GroundTruth(rl)
    for fr in load_scene_labels(labels / SCENE):
        cmap = gt.view(gt.view_of_stem(fr.frame_stem))["class_id"]
        for q in fr.categories:
            lerf_ovs.save_render(renders / "lerf", SCENE, fr.frame_stem, q, (cmap == 1 + gt.classes.index(q))[None])
    gt3 = GroundTruth(r3)
    for view in ovs3d_views(r3 / "segmentations"):
        cmap = gt3.view(gt3.view_of_stem(view))["class_id"]
        onehot = cmap[None] == np.arange(1, len(gt3.classes) + 1)[:, None, None]
        ovs3d.save_render(renders / "ovs3d", SCENE, view, onehot.astype(np.float32), gt3.classes)
    return root


def _copy(generated: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "case"
    shutil.copytree(generated, dst)
    return dst


def _lerf(root: Path) -> subprocess.CompletedProcess:
    args = ["--renders", str(root / "renders" / "lerf"), "--labels", str(root / "data" / "lerf_ovs" / "label"),
            "--out", str(root / "lerf.json")]
    return subprocess.run([sys.executable, str(REPO / "eval" / "lerf_ovs.py"), *args], capture_output=True, text=True)


def _ovs3d(root: Path) -> subprocess.CompletedProcess:
    args = ["--renders", str(root / "renders" / "ovs3d"), "--data", str(root / "data" / "3dovs"), "--out", str(root / "ovs3d.json")]
    return subprocess.run([sys.executable, str(REPO / "eval" / "ovs3d.py"), *args], capture_output=True, text=True)


def _one_line_error(proc: subprocess.CompletedProcess, out: Path) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert err.startswith("error: ") and "\n" not in err, err
    assert not out.exists(), "no result file may be written on bad input"
    return err


def test_exact_predictions_evaluate_every_labelled_pair(generated, tmp_path):
    root = _copy(generated, tmp_path)
    proc = _lerf(root)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((root / "lerf.json").read_text())["scenes"][SCENE]
    frames = load_scene_labels(root / "data" / "lerf_ovs" / "label" / SCENE)
    assert len(frames) == 2
    assert res["n_pairs"] == sum(len(f.categories) for f in frames)  # nothing skipped
    assert set(res["frames"]) == {f.frame_stem for f in frames}
    assert 0.0 < res["miou"] <= 1.0

    proc = _ovs3d(root)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((root / "ovs3d.json").read_text())["scenes"][SCENE]
    seg = root / "data" / "3dovs" / SCENE / "segmentations"
    assert res["n_views"] == len(ovs3d_views(seg)) == 2
    assert res["accuracy"] == 1.0
    # IoU 1 for each class seen in a view, 0 (the release's rule) for a class absent from it
    ious = [v for view in res["views"].values() for v in view["ious"].values()]
    assert set(ious) <= {0.0, 1.0} and res["miou"] == pytest.approx(np.mean(ious))
    assert min(ious) == 0.0 or res["miou"] == 1.0


def test_lerf_label_for_a_frame_beyond_the_scene(generated, tmp_path):
    root = _copy(generated, tmp_path)
    label_dir = root / "data" / "lerf_ovs" / "label" / SCENE
    src = sorted(label_dir.glob("frame_*.json"))[0]
    stem = f"frame_{VIEWS + 5:05d}"  # the scene has frames 1..VIEWS
    data = json.loads(src.read_text())
    data["info"]["name"] = f"{stem}.jpg"
    (label_dir / f"{stem}.json").write_text(json.dumps(data))
    err = _one_line_error(_lerf(root), root / "lerf.json")
    assert f"{stem}.json" in err and "no render folder" in err


def test_ovs3d_segmentation_view_beyond_the_scene(generated, tmp_path):
    root = _copy(generated, tmp_path)
    seg = root / "data" / "3dovs" / SCENE / "segmentations"
    shutil.copytree(seg / ovs3d_views(seg)[0], seg / "99")
    err = _one_line_error(_ovs3d(root), root / "ovs3d.json")
    assert "99.npy" in err and "missing render" in err


def test_ovs3d_class_dropped_from_classes_txt(generated, tmp_path):
    root = _copy(generated, tmp_path)
    seg = root / "data" / "3dovs" / SCENE / "segmentations"
    classes = [c for c in (seg / "classes.txt").read_text().splitlines() if c]
    dropped = classes[0]
    (seg / "classes.txt").write_text("\n".join(classes[1:]) + "\n")
    # renders that name the dropped class are refused, naming meta.json and classes.txt
    err = _one_line_error(_ovs3d(root), root / "ovs3d.json")
    assert "meta.json" in err and f"'{dropped}'" in err and "classes.txt" in err
    # renders made from the reduced list: the segmentation PNG of the dropped class is refused, not ignored
    renders = root / "renders" / "ovs3d" / SCENE
    old = ovs3d.read_render_classes(renders)
    (renders / "meta.json").unlink()
    for view in ovs3d_views(seg):
        scores = np.load(renders / f"{view}.npy")
        ovs3d.save_render(root / "renders" / "ovs3d", SCENE, view, np.delete(scores, old.index(dropped), axis=0), classes[1:])
    err = _one_line_error(_ovs3d(root), root / "ovs3d.json")
    assert f"{dropped}.png" in err and "missing from classes.txt" in err


def test_ovs3d_missing_ground_truth_png(generated, tmp_path):
    root = _copy(generated, tmp_path)
    seg = root / "data" / "3dovs" / SCENE / "segmentations"
    view = ovs3d_views(seg)[-1]
    png = seg / view / "floor.png"
    png.unlink()
    err = _one_line_error(_ovs3d(root), root / "ovs3d.json")
    assert str(png) in err and "missing segmentation mask" in err
