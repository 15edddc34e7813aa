import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccl_gs.metrics.labels import (
    LabelError,
    frame_index,
    load_scene_labels,
    ovs3d_views,
    parse_frame,
    polygon_area,
    polygon_to_mask,
    read_class_list,
    read_ovs3d_classes,
    read_ovs3d_view_masks,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LABELS = DATA / "lerf_ovs_labels"
SCENES = {"figurines": (986, 728, 17), "teatime": (988, 730, 11), "ramen": (988, 731, 10)}


def _perimeter(p):
    p = np.asarray(p, float)
    return float(np.linalg.norm(p - np.roll(p, -1, axis=0), axis=1).sum())


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_real_lerf_ovs_labels_parse_and_rasterize(scene):
    if not (LABELS / scene).is_dir():
        pytest.skip(f"shared LERF-OVS labels not found at {LABELS / scene}")
    frames = load_scene_labels(LABELS / scene)
    assert len(frames) == 1
    fr = frames[0]
    w, h, n = SCENES[scene]
    assert (fr.width, fr.height) == (w, h)
    assert fr.image_index == int(fr.frame_stem.split("_")[1]) - 1
    assert len(fr.categories) == n
    raw = json.loads(fr.path.read_text())
    for obj in raw["objects"]:
        mask = fr.masks[obj["category"]]
        assert mask.shape == (h, w) and mask.dtype == bool
        area = polygon_area(obj["segmentation"])
        assert area == pytest.approx(obj["area"], rel=1e-6)
        # fillPoly fills the interior plus the boundary pixels: a bit more than the shoelace area
        assert area <= mask.sum() <= area + _perimeter(obj["segmentation"]) + 4
        assert mask.sum() / area == pytest.approx(1.0, abs=0.08)
        ys, xs = np.nonzero(mask)
        x1, y1, x2, y2 = obj["bbox"]
        assert xs.min() >= int(x1) and xs.max() <= int(x2) and ys.min() >= int(y1) and ys.max() <= int(y2)
        np.testing.assert_array_equal(fr.bboxes[obj["category"]], np.array([obj["bbox"]], float))


def test_polygon_rasterization_truncates_like_int32_cast():
    # vertices at x.9 / y.9 truncate to the lower pixel
    m = polygon_to_mask([[1.9, 1.9], [4.9, 1.9], [4.9, 3.9], [1.9, 3.9]], 6, 7)
    expected = np.zeros((6, 7), bool)
    expected[1:4, 1:5] = True
    np.testing.assert_array_equal(m, expected)
    assert polygon_area([[0, 0], [4, 0], [4, 3], [0, 3]]) == 12.0


def _write_frame(folder: Path, stem: str, objects, w=20, h=10, name=None):
    folder.mkdir(parents=True, exist_ok=True)
    data = {"info": {"name": name or f"{stem}.jpg", "width": w, "height": h}, "objects": objects}
    (folder / f"{stem}.json").write_text(json.dumps(data))
    return folder / f"{stem}.json"


def _obj(cat, x0, y0, x1, y1):
    return {"category": cat, "segmentation": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], "bbox": [x0, y0, x1, y1]}


def test_repeated_category_is_union_with_all_boxes(tmp_path):
    p = _write_frame(tmp_path, "frame_00003", [_obj("cup", 1, 1, 3, 3), _obj("plate", 5, 5, 8, 8), _obj("cup", 10, 2, 12, 4)])
    fr = parse_frame(p)
    assert fr.categories == ["cup", "plate"]
    assert fr.image_index == 2
    assert fr.masks["cup"][1:4, 1:4].all() and fr.masks["cup"][2:5, 10:13].all()
    assert fr.masks["cup"].sum() == 18
    assert fr.bboxes["cup"].shape == (2, 4)


def test_label_errors_name_the_file(tmp_path):
    bad = tmp_path / "frame_00001.json"
    bad.write_text("{not json")
    with pytest.raises(LabelError, match="frame_00001.json"):
        parse_frame(bad)
    p = _write_frame(tmp_path / "b", "frame_00002", [_obj("cup", 1, 1, 3, 3)], name="frame_00005.jpg")
    with pytest.raises(LabelError, match="does not match"):
        parse_frame(p)
    p = _write_frame(tmp_path / "c", "frame_00002", [_obj("cup", 30, 30, 40, 40)])  # outside the image
    with pytest.raises(LabelError, match="empty mask"):
        parse_frame(p)
    with pytest.raises(LabelError, match="no frame_"):
        (tmp_path / "empty").mkdir()
        load_scene_labels(tmp_path / "empty")
    assert frame_index("frame_00041") == 40


def _png(path: Path, arr: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), mode="L").save(path)


def test_ovs3d_classes_views_and_masks(tmp_path):
    seg = tmp_path / "segmentations"
    seg.mkdir()
    (seg / "classes.txt").write_text("teddy bear\napple\n\n")
    a = np.zeros((4, 6), np.uint8)
    a[0, :3] = 255
    a[1, :3] = 254  # only 255 counts
    _png(seg / "00" / "apple.png", a)
    _png(seg / "00" / "teddy bear.png", 255 - a)
    _png(seg / "05" / "apple.png", a)
    _png(seg / "05" / "teddy bear.png", a)
    assert read_ovs3d_classes(seg) == ["apple", "teddy bear"]
    assert ovs3d_views(seg) == ["00", "05"]
    m = read_ovs3d_view_masks(seg, "00", ["apple", "teddy bear"])
    assert m.shape == (2, 4, 6) and m.dtype == bool
    assert m[0].sum() == 3 and m[0, 0, :3].all()
    assert m[1].sum() == 24 - 3 - 3  # 255-254 = 1 and 255-0 = 255 -> rows 1 [:3] are 1, not 255
    half = read_ovs3d_view_masks(seg, "00", ["apple", "teddy bear"], size=(3, 2))
    assert half.shape == (2, 2, 3)
    expected = np.asarray(Image.fromarray(a).resize((3, 2), Image.NEAREST)) == 255
    np.testing.assert_array_equal(half[0], expected)


def test_ovs3d_mask_errors(tmp_path):
    seg = tmp_path / "segmentations"
    _png(seg / "00" / "apple.png", np.zeros((4, 4)))
    (seg / "classes.txt").write_text("apple\nbanana\n")
    with pytest.raises(LabelError, match="banana.png"):
        read_ovs3d_view_masks(seg, "00", read_ovs3d_classes(seg))
    _png(seg / "00" / "banana.png", np.zeros((4, 4)))
    _png(seg / "00" / "cherry.png", np.zeros((4, 4)))
    with pytest.raises(LabelError, match="cherry.png names a class missing from classes.txt"):
        read_ovs3d_view_masks(seg, "00", read_ovs3d_classes(seg))
    (seg / "classes.txt").write_text("apple\napple\n")
    with pytest.raises(LabelError, match="repeats"):
        read_ovs3d_classes(seg)


def test_ovs3d_view_index():
    from ccl_gs.metrics.labels import ovs3d_view_index

    assert ovs3d_view_index("03") == 3
    with pytest.raises(LabelError, match="not an image index"):
        ovs3d_view_index("left")


def test_class_list_from_a_segmentations_folder_or_lerf_ovs_labels(tmp_path):
    seg = tmp_path / "segmentations"
    seg.mkdir()
    (seg / "classes.txt").write_text("wall\nbanana\n")
    assert read_class_list(seg) == ["banana", "wall"]
    teatime = LABELS / "teatime"
    if not teatime.is_dir():
        pytest.skip(f"shared LERF-OVS labels not found at {teatime}")
    names = read_class_list(teatime)
    frames = load_scene_labels(teatime)
    assert names == sorted({c for f in frames for c in f.categories}) and len(names) >= 5
    with pytest.raises(LabelError, match="classes.txt"):
        read_class_list(tmp_path)  # neither kind of folder
