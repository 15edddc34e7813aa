"""Gaussian and point-cloud PLY files: exact round trips, the 3DGS layout, corrupt files."""

import numpy as np
import pytest
import torch
from plyfile import PlyData

from ccl_gs.io.ply import PlyError, read_gaussians_ply, read_points_ply, write_gaussians_ply, write_points_ply

N = 37


def gaussians(degree: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    K = (degree + 1) ** 2 - 1
    return dict(
        means=rng.normal(size=(N, 3)).astype(np.float32),
        quats=rng.normal(size=(N, 4)).astype(np.float32),
        log_scales=rng.normal(size=(N, 3)).astype(np.float32),
        opacity_logits=rng.normal(size=N).astype(np.float32),
        sh0=rng.normal(size=(N, 1, 3)).astype(np.float32),
        shN=rng.normal(size=(N, K, 3)).astype(np.float32) if K else None,
    )


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_exact(tmp_path, degree):
    rng = np.random.default_rng(degree)
    g = gaussians(degree)
    extra = {
        "feat": rng.normal(size=(N, 8)).astype(np.float32),
        "label": rng.integers(-3, 1000, N).astype(np.int32),
        "level": rng.integers(0, 3, (N, 2)).astype(np.uint8),
        "weight": rng.normal(size=N),  # float64 stays double
        "id_3": np.arange(N, dtype=np.int16),  # an [N] name ending in a digit stays as is
    }
    normals = rng.normal(size=(N, 3)).astype(np.float32)
    path = tmp_path / "g.ply"
    write_gaussians_ply(path, **g, extra=extra, normals=normals)
    back = read_gaussians_ply(path)
    assert len(back) == N and back.sh_degree == degree
    for k, v in g.items():
        if v is None:
            assert getattr(back, k) is None
        else:
            np.testing.assert_array_equal(getattr(back, k), v)
            assert getattr(back, k).dtype == np.float32
    np.testing.assert_array_equal(back.normals, normals)
    assert set(back.extra) == set(extra)
    for k, v in extra.items():
        assert back.extra[k].dtype == v.dtype and back.extra[k].shape == v.shape, k
        np.testing.assert_array_equal(back.extra[k], v)


def test_standard_3dgs_layout(tmp_path):
    g = gaussians(2)
    K = 8
    # shN[n, k, c] = 10 c + k: channel-major files store it as f_rest_{c K + k}.
    g["shN"] = np.broadcast_to(10 * np.arange(3)[None, None, :] + np.arange(K)[None, :, None], (N, K, 3)).astype(np.float32)
    path = tmp_path / "g.ply"
    write_gaussians_ply(path, **g, extra={"feat": np.zeros((N, 2), np.float32)})
    raw = path.read_bytes()
    assert b"format binary_little_endian 1.0" in raw[:200]
    ply = PlyData.read(str(path))
    names = [p.name for p in ply["vertex"].properties]
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    expected += [f"f_rest_{i}" for i in range(3 * K)] + ["opacity"]
    expected += [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)] + ["feat_0", "feat_1"]
    assert names == expected
    v = ply["vertex"].data
    for c in range(3):
        for k in range(K):
            assert (v[f"f_rest_{c * K + k}"] == 10 * c + k).all()
    assert (v["nx"] == 0).all() and read_gaussians_ply(path).normals is None
    np.testing.assert_array_equal(v["opacity"], g["opacity_logits"])
    np.testing.assert_array_equal(v["rot_0"], g["quats"][:, 0])


def test_accepts_torch_tensors_and_int64(tmp_path):
    g = {k: (None if v is None else torch.from_numpy(v).requires_grad_(False)) for k, v in gaussians(1).items()}
    labels = torch.arange(N, dtype=torch.int64) - 5
    write_gaussians_ply(tmp_path / "t.ply", **g, extra={"label": labels})
    back = read_gaussians_ply(tmp_path / "t.ply")
    assert back.extra["label"].dtype == np.int32
    np.testing.assert_array_equal(back.extra["label"], labels.numpy())
    t = back.to_tensors()
    assert t["means"].shape == (N, 3) and t["shN"].shape == (N, 3, 3) and t["extra"]["label"].shape == (N,)
    with pytest.raises(ValueError, match="32-bit"):
        write_gaussians_ply(tmp_path / "big.ply", **g, extra={"label": labels + 2**40})


def test_bad_inputs_raise(tmp_path):
    g = gaussians(0)
    with pytest.raises(ValueError, match="collides"):
        write_gaussians_ply(tmp_path / "x.ply", **g, extra={"scale": np.zeros((N, 3), np.float32)})
    with pytest.raises(ValueError, match="quats"):
        write_gaussians_ply(tmp_path / "x.ply", **{**g, "quats": np.zeros((N, 3), np.float32)})
    with pytest.raises(ValueError, match="feat"):
        write_gaussians_ply(tmp_path / "x.ply", **g, extra={"feat": np.zeros((N + 1, 2), np.float32)})
    assert not (tmp_path / "x.ply").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary files left behind


def test_corrupt_files_name_the_file(tmp_path):
    path = tmp_path / "scene_gaussians.ply"
    write_gaussians_ply(path, **gaussians(1))
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(PlyError, match="scene_gaussians.ply") as e:
        read_gaussians_ply(path)
    assert "\n" not in str(e.value)
    path.write_bytes(b"not a ply file at all")
    with pytest.raises(PlyError, match="corrupt PLY file .*scene_gaussians.ply"):
        read_gaussians_ply(path)
    with pytest.raises(PlyError, match="missing PLY file.*absent.ply"):
        read_gaussians_ply(tmp_path / "absent.ply")
    write_points_ply(path, np.zeros((3, 3)))
    with pytest.raises(PlyError, match="scene_gaussians.ply is not a Gaussian PLY"):
        read_gaussians_ply(path)


def test_points_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 3)).astype(np.float32)
    cols = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    write_points_ply(tmp_path / "p.ply", pts, cols)
    p, c = read_points_ply(tmp_path / "p.ply")
    np.testing.assert_array_equal(p, pts)
    np.testing.assert_array_equal(c, cols)
    write_points_ply(tmp_path / "q.ply", pts)
    assert read_points_ply(tmp_path / "q.ply")[1] is None


def test_empty_gaussian_set(tmp_path):
    z = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    write_gaussians_ply(tmp_path / "e.ply", z(0, 3), z(0, 4), z(0, 3), z(0), z(0, 1, 3), z(0, 3, 3), extra={"f": z(0, 2)})
    g = read_gaussians_ply(tmp_path / "e.ply")
    assert len(g) == 0 and g.shN.shape == (0, 3, 3) and g.extra["f"].shape == (0, 2)
