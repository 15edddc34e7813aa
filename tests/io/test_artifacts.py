"""Artifact helpers: standard JSON for non-finite numbers, output path checks."""

import json
import math

import numpy as np
import pytest

from ccl_gs.io.artifacts import ArtifactError, check_out_dir, check_out_file, read_json, to_jsonable, write_json


def test_write_json_writes_non_finite_numbers_as_null(tmp_path):
    obj = {"psnr": float("nan"), "hi": math.inf, "np": np.float32("nan"), "arr": np.array([1.0, -np.inf]), "ok": 1.5}
    write_json(tmp_path / "m.json", obj)
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"psnr": None, "hi": None, "np": None, "arr": [1.0, None], "ok": 1.5}
    assert read_json(tmp_path / "m.json")["ok"] == 1.5
    assert to_jsonable((2.0, np.float64(3.0))) == [2.0, 3.0]


def test_check_out_dir(tmp_path):
    assert check_out_dir(tmp_path) == tmp_path
    assert check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "f").write_text("x")
    with pytest.raises(ArtifactError, match=r"f is an existing file, not a folder \(--out\)"):
        check_out_dir(tmp_path / "f")
    with pytest.raises(ArtifactError, match=r"f/sub: .*f is a file, not a folder"):
        check_out_dir(tmp_path / "f" / "sub")


def test_check_out_file(tmp_path):
    assert check_out_file(str(tmp_path / "r.json")) == tmp_path / "r.json"
    (tmp_path / "f").write_text("x")
    assert check_out_file(tmp_path / "f") == tmp_path / "f"  # an existing file is overwritten
    with pytest.raises(ArtifactError, match="names a folder"):
        check_out_file(tmp_path)
    with pytest.raises(ArtifactError, match=r"new/ names a folder"):
        check_out_file(f"{tmp_path}/new/")
    with pytest.raises(ArtifactError, match="f is a file, not a folder"):
        check_out_file(tmp_path / "f" / "r.json")


def test_atomic_writes_respect_the_umask(tmp_path):
    """Files renamed from a temporary file get 0666 minus the umask, as open() would give, not mkstemp's 0600."""
    import os
    import stat

    from ccl_gs.io.artifacts import atomic_write_text, save_npz_atomic

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        save_npz_atomic(tmp_path / "b.npz", x=np.zeros(2))
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
        assert stat.S_IMODE((tmp_path / "b.npz").stat().st_mode) == 0o644
        os.umask(0o077)
        atomic_write_text(tmp_path / "c.json", "{}")
        assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)
