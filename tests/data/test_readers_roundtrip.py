"""Readers on small written scenes: COLMAP and nerfstudio round trips, camera models, error messages."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccl_gs.data import Camera, Scene, SceneError, load_scene
from ccl_gs.data.readers.colmap import (
    qvec_to_rotmat,
    read_cameras,
    rotmat_to_qvec,
    write_colmap_binary,
    write_colmap_text,
)
from ccl_gs.data.readers.nerfstudio import write_transforms_json
from ccl_gs.data.scene import detect_format

W, H = 16, 12


def look_at_viewmat(centre: np.ndarray, target=np.zeros(3), up=np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """World-to-camera (OpenCV) of a camera at ``centre`` looking at ``target``."""
    z = target - centre
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([x, y, z], 1)
    c2w[:3, 3] = centre
    return np.linalg.inv(c2w)


def make_scene(root: Path, n_views: int = 5, with_points: bool = True, distorted: bool = True) -> Scene:
    """A small scene with images written to ``root/images``: mixed PINHOLE / OPENCV cameras."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    paths, cams, vms = [], [], []
    pin = Camera(W, H, 20.5, 21.25, 8.1, 5.9)
    dist = Camera(W, H, 19.0, 19.5, 7.75, 6.25, "OPENCV", (0.05, -0.01, 0.002, -0.001))
    for i in range(n_views):
        p = root / "images" / f"frame_{i:05d}.png"
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(p)
        paths.append(p)
        cams.append(dist if distorted and i % 2 else pin)
        ang = 2 * np.pi * i / n_views
        vms.append(look_at_viewmat(np.array([3 * np.cos(ang), 3 * np.sin(ang), 1.0 + 0.1 * i])))
    pts = rng.normal(size=(20, 3)).astype(np.float32) if with_points else None
    cols = rng.integers(0, 256, (20, 3), dtype=np.uint8) if with_points else None
    return Scene("toy", root, paths, cams, np.stack(vms), points=pts, point_colors=cols)


def assert_same_scene(a: Scene, b: Scene, atol: float = 1e-12) -> None:
    assert [p.name for p in a.image_paths] == [p.name for p in b.image_paths]
    assert a.cameras == b.cameras
    np.testing.assert_allclose(a.viewmats, b.viewmats, atol=atol)
    if a.points is None:
        assert b.points is None or len(b.points) == 0
    else:
        np.testing.assert_array_equal(a.points, b.points)
        np.testing.assert_array_equal(a.point_colors, b.point_colors)


def test_quaternion_round_trip_including_half_turns():
    rng = np.random.default_rng(1)
    qs = list(rng.normal(size=(200, 4))) + [np.array([0.0, 1, 0, 0]), np.array([0.0, 0, 1, 0]), np.array([0.0, 0, 0, 1])]
    for q in qs:
        q = q / np.linalg.norm(q)
        q = -q if q[0] < 0 else q
        R = qvec_to_rotmat(q)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(qvec_to_rotmat(rotmat_to_qvec(R)), R, atol=1e-12)


@pytest.mark.parametrize("writer", [write_colmap_text, write_colmap_binary])
def test_colmap_round_trip(tmp_path, writer):
    scene = make_scene(tmp_path)
    writer(tmp_path / "sparse" / "0", scene)
    assert detect_format(tmp_path) == "colmap"
    back = load_scene(tmp_path)
    assert back.format == "colmap"
    assert_same_scene(scene, back)
    # Identical cameras are stored once.
    suffix = ".txt" if writer is write_colmap_text else ".bin"
    assert len(read_cameras(tmp_path / "sparse" / "0" / f"cameras{suffix}")) == 2


def test_colmap_in_sparse_root_and_without_points(tmp_path):
    scene = make_scene(tmp_path, with_points=False)
    write_colmap_binary(tmp_path / "sparse", scene)
    (tmp_path / "sparse" / "points3D.bin").unlink()
    back = load_scene(tmp_path, format="colmap")
    assert back.points is None
    assert_same_scene(scene, back)


def test_colmap_images_dir_rescales_intrinsics(tmp_path):
    scene = make_scene(tmp_path, distorted=False)
    write_colmap_text(tmp_path / "sparse" / "0", scene)
    (tmp_path / "images_2").mkdir()
    for p in scene.image_paths:
        Image.open(p).resize((W // 2, H // 2)).save(tmp_path / "images_2" / p.name)
    back = load_scene(tmp_path, factor=2)
    assert back.image_paths[0].parent.name == "images_2"
    cam = back.cameras[0]
    assert (cam.width, cam.height) == (W // 2, H // 2)
    assert cam.fx == pytest.approx(scene.cameras[0].fx / 2) and cam.cx == pytest.approx(scene.cameras[0].cx / 2)
    assert load_scene(tmp_path, images_dir="images_2").cameras == back.cameras


def test_colmap_camera_models(tmp_path):
    scene = make_scene(tmp_path, n_views=4, distorted=False)
    write_colmap_text(tmp_path / "sparse" / "0", scene)
    cams = tmp_path / "sparse" / "0" / "cameras.txt"
    cams.write_text(
        "# models\n"
        f"1 SIMPLE_PINHOLE {W} {H} 20 8 6\n"
        f"2 SIMPLE_RADIAL {W} {H} 21 8 6 0.1\n"
        f"3 RADIAL {W} {H} 22 8 6 0.1 0.2\n"
        f"4 OPENCV {W} {H} 23 24 8 6 0.1 0.2 0.3 0.4\n"
    )
    images = tmp_path / "sparse" / "0" / "images.txt"
    lines = images.read_text().splitlines()
    out, k = [], 0
    for line in lines:
        if line and not line.startswith("#"):
            e = line.split()
            k += 1
            e[8] = str(k)
            line = " ".join(e)
        out.append(line)
    images.write_text("\n".join(out) + "\n")
    back = load_scene(tmp_path)
    c = back.cameras
    assert c[0] == Camera(W, H, 20, 20, 8, 6)
    assert c[1] == Camera(W, H, 21, 21, 8, 6, "OPENCV", (0.1, 0.0, 0.0, 0.0))
    assert c[2] == Camera(W, H, 22, 22, 8, 6, "OPENCV", (0.1, 0.2, 0.0, 0.0))
    assert c[3] == Camera(W, H, 23, 24, 8, 6, "OPENCV", (0.1, 0.2, 0.3, 0.4))

    cams.write_text(f"1 OPENCV_FISHEYE {W} {H} 23 24 8 6 0.1 0.2 0.3 0.4\n")
    with pytest.raises(SceneError, match=r"cameras\.txt.*OPENCV_FISHEYE"):
        load_scene(tmp_path)


@pytest.mark.parametrize("name", ["cameras.bin", "images.bin", "points3D.bin"])
def test_colmap_truncated_binary_names_file(tmp_path, name):
    scene = make_scene(tmp_path)
    write_colmap_binary(tmp_path / "sparse" / "0", scene)
    f = tmp_path / "sparse" / "0" / name
    f.write_bytes(f.read_bytes()[:-5])
    with pytest.raises(SceneError, match=name):
        load_scene(tmp_path)


def test_colmap_non_finite_pose_names_file(tmp_path):
    scene = make_scene(tmp_path)
    write_colmap_text(tmp_path / "sparse" / "0", scene)
    images = tmp_path / "sparse" / "0" / "images.txt"
    lines = images.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line and not line.startswith("#"))
    e = lines[i].split()
    e[5] = "nan"
    lines[i] = " ".join(e)
    images.write_text("\n".join(lines) + "\n")
    with pytest.raises(SceneError, match=r"images\.txt.*non-finite"):
        load_scene(tmp_path)


def test_missing_and_unreadable_images_name_file(tmp_path):
    scene = make_scene(tmp_path)
    write_colmap_binary(tmp_path / "sparse" / "0", scene)
    scene.image_paths[2].write_bytes(b"not a png")
    with pytest.raises(SceneError, match="unreadable image .*frame_00002.png"):
        load_scene(tmp_path)
    scene.image_paths[2].unlink()
    with pytest.raises(SceneError, match="missing image.*frame_00002.png"):
        load_scene(tmp_path)


def test_no_usable_layout(tmp_path):
    (tmp_path / "empty_scene").mkdir()
    with pytest.raises(SceneError, match="empty_scene.*no usable scene layout"):
        load_scene(tmp_path / "empty_scene")
    with pytest.raises(SceneError, match="nowhere"):
        load_scene(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- LLFF


def write_llff(root: Path, n: int = 4, H_full: int = 120, W_full: int = 160, f: float = 150.0) -> np.ndarray:
    """A tiny LLFF folder (images at 1/4 of the hwf size); returns the OpenCV c2w used."""
    rng = np.random.default_rng(3)
    (root / "images_4").mkdir(parents=True)
    rows, c2ws = [], []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (H_full // 4, W_full // 4, 3), dtype=np.uint8)).save(
            root / "images_4" / f"img{i:02d}.png"
        )
        c2w = np.linalg.inv(look_at_viewmat(np.array([0.5 * i, 0.0, -5.0]), up=np.array([0.0, -1.0, 0.0])))
        right, down, fwd, t = c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3]
        P = np.stack([down, right, -fwd, t, [H_full, W_full, f]], 1)  # [3, 5] in LLFF column order
        rows.append(np.concatenate([P.reshape(-1), [1.0, 10.0]]))
        c2ws.append(c2w)
    np.save(root / "poses_bounds.npy", np.stack(rows))
    return np.stack(c2ws)


def test_llff_convention_and_errors(tmp_path):
    c2w = write_llff(tmp_path)
    scene = load_scene(tmp_path)
    assert scene.format == "llff" and scene.image_paths[0].parent.name == "images_4"
    np.testing.assert_allclose(scene.camtoworlds, c2w, atol=1e-12)
    assert scene.cameras[0] == Camera(40, 30, 37.5, 37.5, 20.0, 15.0)
    np.testing.assert_array_equal(scene.bounds, [[1.0, 10.0]] * 4)
    assert scene.points is None

    with pytest.raises(SceneError, match="images_2"):
        load_scene(tmp_path, factor=2)
    pb = np.load(tmp_path / "poses_bounds.npy")
    np.save(tmp_path / "poses_bounds.npy", pb[:3])
    with pytest.raises(SceneError, match=r"poses_bounds\.npy: 3 poses but 4 images"):
        load_scene(tmp_path)
    pb[2, 3] = np.inf
    np.save(tmp_path / "poses_bounds.npy", pb)
    with pytest.raises(SceneError, match=r"poses_bounds\.npy.*non-finite.*img02"):
        load_scene(tmp_path)
    (tmp_path / "poses_bounds.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(SceneError, match=r"poses_bounds\.npy"):
        load_scene(tmp_path)


# ----------------------------------------------------------------------------- nerfstudio


@pytest.mark.parametrize("distorted", [True, False])
def test_nerfstudio_round_trip(tmp_path, distorted):
    scene = make_scene(tmp_path, distorted=distorted)
    scene.split = {"train": [1, 2, 3], "test": [0, 4]}
    write_transforms_json(tmp_path / "transforms.json", scene)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    assert ("fl_x" in meta) == (not distorted)  # global intrinsics only when shared
    assert meta["frames"][0]["file_path"] == "images/frame_00000.png"
    assert detect_format(tmp_path) == "nerfstudio"
    back = load_scene(tmp_path)
    assert back.format == "nerfstudio"
    assert back.split == scene.split
    assert_same_scene(scene, back, atol=1e-9)
    if distorted:
        assert back.cameras[1].model == "OPENCV" and back.cameras[1].distortion == (0.05, -0.01, 0.002, -0.001)


def test_nerfstudio_applied_transform_and_downscale(tmp_path):
    scene = make_scene(tmp_path, distorted=False)
    write_transforms_json(tmp_path / "transforms.json", scene)
    # Rotate the file's world frame as ns-process-data does and record it.
    A = np.eye(4)[[0, 2, 1, 3]]
    A[2] *= -1
    meta = json.loads((tmp_path / "transforms.json").read_text())
    for fr in meta["frames"]:
        fr["transform_matrix"] = (A @ np.array(fr["transform_matrix"])).tolist()
    meta["applied_transform"] = A[:3].tolist()
    from ccl_gs.io.ply import write_points_ply

    write_points_ply(tmp_path / "sparse_pc.ply", scene.points @ A[:3, :3].T, scene.point_colors)
    (tmp_path / "transforms.json").write_text(json.dumps(meta))

    in_file_frame = load_scene(tmp_path)
    np.testing.assert_allclose(in_file_frame.camtoworlds, A @ scene.camtoworlds, atol=1e-9)
    original = load_scene(tmp_path, original_frame=True)
    np.testing.assert_allclose(original.viewmats, scene.viewmats, atol=1e-9)
    np.testing.assert_allclose(original.points, scene.points, atol=1e-6)

    (tmp_path / "images_2").mkdir()
    for p in scene.image_paths:
        Image.open(p).resize((W // 2, H // 2)).save(tmp_path / "images_2" / p.name)
    half = load_scene(tmp_path, factor=2)
    assert half.image_paths[0].parent.name == "images_2"
    assert half.cameras[0].fx == pytest.approx(scene.cameras[0].fx / 2)


def test_nerfstudio_errors_name_file(tmp_path):
    scene = make_scene(tmp_path)
    write_transforms_json(tmp_path / "transforms.json", scene)
    good = (tmp_path / "transforms.json").read_text()
    meta = json.loads(good)
    meta["frames"][1]["transform_matrix"][0][3] = float("nan")
    (tmp_path / "transforms.json").write_text(json.dumps(meta))  # json writes NaN
    with pytest.raises(SceneError, match=r"transforms\.json.*non-finite"):
        load_scene(tmp_path)
    (tmp_path / "transforms.json").write_text(good[:-20])
    with pytest.raises(SceneError, match=r"malformed JSON in .*transforms\.json"):
        load_scene(tmp_path)
    meta = json.loads(good)
    meta["frames"][0]["camera_model"] = "OPENCV_FISHEYE"
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(SceneError, match=r"transforms\.json.*OPENCV_FISHEYE"):
        load_scene(tmp_path)


def test_blender_errors_name_file(tmp_path):
    (tmp_path / "transforms_train.json").write_text('{"camera_angle_x": 0.7, "frames": [')
    with pytest.raises(SceneError, match=r"transforms_train\.json"):
        load_scene(tmp_path)
    (tmp_path / "transforms_train.json").write_text(
        json.dumps({"camera_angle_x": 0.7, "frames": [{"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}]})
    )
    (tmp_path / "transforms_test.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": []}))
    with pytest.raises(SceneError, match=r"missing image.*r_0\.png"):
        load_scene(tmp_path)


def test_unknown_reader_option_is_a_scene_error(tmp_path):
    scene = make_scene(tmp_path)
    write_colmap_binary(tmp_path / "sparse" / "0", scene)
    with pytest.raises(SceneError, match="'colmap' reader has no option colour_space"):
        load_scene(tmp_path, colour_space="srgb")
    with pytest.raises(SceneError, match="unknown scene format 'ply'"):
        load_scene(tmp_path, format="ply")


def test_inspect_cli(tmp_path, capsys):
    from ccl_gs.data.readers.__main__ import main

    scene = make_scene(tmp_path / "s")
    write_colmap_binary(tmp_path / "s" / "sparse" / "0", scene)
    assert main([str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "(colmap)" in out and "views       5: train 4, test 1" in out and "points      20" in out
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "empty" in err


def test_nerfstudio_camera_angle_x_fallback(tmp_path):
    scene = make_scene(tmp_path, n_views=2, with_points=False, distorted=False)
    write_transforms_json(tmp_path / "transforms.json", scene)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    for k in ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_model"):
        meta.pop(k)
    meta["camera_angle_x"] = 2 * np.arctan(0.5 * W / 20.0)
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    cam = load_scene(tmp_path).cameras[0]
    assert cam.fx == pytest.approx(20.0) and cam.fy == pytest.approx(20.0) and (cam.cx, cam.cy) == (W / 2, H / 2)


def test_blender_refuses_frames_mixing_alpha_and_none(tmp_path):
    def write(root: Path, modes: list[str]) -> None:
        (root / "train").mkdir(parents=True)
        frames = []
        for i, mode in enumerate(modes):
            Image.new(mode, (W, H)).save(root / "train" / f"r_{i}.png")
            frames.append({"file_path": f"./train/r_{i}", "transform_matrix": np.eye(4).tolist()})
        (root / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
        (root / "transforms_test.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": []}))

    write(tmp_path / "mixed", ["RGBA", "RGBA", "RGB"])
    with pytest.raises(SceneError, match=r"r_2\.png: no alpha channel, while 2 of 3 frames have one \(e\.g\. r_0\.png\)"):
        load_scene(tmp_path / "mixed")
    write(tmp_path / "rgba", ["RGBA", "LA"])
    write(tmp_path / "rgb", ["RGB", "RGB"])
    assert len(load_scene(tmp_path / "rgba")) == 2 and len(load_scene(tmp_path / "rgb")) == 2


def test_negative_test_every_is_refused():
    from ccl_gs.data import split_views

    assert split_views(3, 0) == {"train": [0, 1, 2], "test": []}
    with pytest.raises(ValueError, match="--test-every must be >= 0"):
        split_views(3, -1)


# ----------------------------------------------------------------------------- downscaled copies made on the fly


@pytest.mark.parametrize("fmt", ["nerfstudio", "colmap"])
def test_missing_downscaled_images_are_made_once_and_reused(tmp_path, fmt):
    scene = make_scene(tmp_path, distorted=False)
    if fmt == "nerfstudio":
        write_transforms_json(tmp_path / "transforms.json", scene)
    else:
        write_colmap_binary(tmp_path / "sparse" / "0", scene)
    assert not (tmp_path / "images_2").exists()
    half = load_scene(tmp_path, fmt, factor=2)
    assert [p.parent.name for p in half.image_paths] == ["images_2"] * len(scene)
    for p, full in zip(half.image_paths, scene.image_paths):
        small, big = np.asarray(Image.open(p), np.float64), np.asarray(Image.open(full), np.float64)
        assert small.shape == (H // 2, W // 2, 3)
        # a filtered downscale, not a crop or a subsample: the copy keeps the mean colour and smooths
        np.testing.assert_allclose(small.mean((0, 1)), big.mean((0, 1)), atol=4)
        assert small.std() < big[::2, ::2].std()
    assert half.cameras[0].fx == pytest.approx(scene.cameras[0].fx / 2)
    stamp = [p.stat().st_mtime_ns for p in half.image_paths]
    again = load_scene(tmp_path, fmt, factor=2)
    assert [p.stat().st_mtime_ns for p in again.image_paths] == stamp
    assert not [p for p in (tmp_path / "images_2").iterdir() if p.name.startswith(".")]


def test_llff_missing_factor_folder_is_made_from_images(tmp_path):
    write_llff(tmp_path)
    (tmp_path / "images_4").rename(tmp_path / "images")  # full size is now 40x30 on disk
    scene = load_scene(tmp_path, factor=2)
    assert scene.image_paths[0].parent.name == "images_2"
    assert Image.open(scene.image_paths[0]).size == (20, 15)
    assert scene.cameras[0].fx == pytest.approx(150.0 * 20 / 160)


def test_unwritable_downscale_folder_is_one_scene_error(tmp_path):
    scene = make_scene(tmp_path, distorted=False)
    write_transforms_json(tmp_path / "transforms.json", scene)
    (tmp_path / "images_2").write_text("a file where the folder should be")
    with pytest.raises(SceneError, match="images_2"):
        load_scene(tmp_path, factor=2)
