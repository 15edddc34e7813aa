"""The language autoencoder: shapes, loss, fitting a preprocess artifact, reuse, stale and bad inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ccl_gs.autoencoder import AutoencoderConfig, LanguageAutoencoder, load_autoencoder, reconstruction_loss
from ccl_gs.autoencoder.train import train_autoencoder
from ccl_gs.codebook.synthetic import write_synthetic_preprocess
from ccl_gs.io.artifacts import ArtifactError, read_json, write_json

REPO = Path(__file__).resolve().parents[2]


def test_shapes_unit_norm_and_loss():
    ae = LanguageAutoencoder(AutoencoderConfig(), 32)
    x = F.normalize(torch.randn(5, 32), dim=-1)
    z = ae.encode(x)
    assert z.shape == (5, 3)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(5))
    y = ae.decode(z * 0.3)  # rendered latents are blends, not unit vectors
    torch.testing.assert_close(y.norm(dim=-1), torch.ones(5))
    # LangSplat's objective: squared L2 + w (1 - cos); zero for a perfect reconstruction
    assert float(reconstruction_loss(x, x, 1e-3)) == pytest.approx(0.0, abs=1e-6)
    y = F.normalize(torch.randn(5, 32), dim=-1)
    want = ((y - x) ** 2).sum(-1).mean() + 0.5 * (1 - (x * y).sum(-1)).mean()
    torch.testing.assert_close(reconstruction_loss(y, x, 0.5), want)


def test_fits_a_preprocess_artifact_and_is_reused(tmp_path):
    pre = tmp_path / "pre"
    write_synthetic_preprocess(pre, n_views=6, n_classes=5, dim=32, view_noise=0.05, iid_noise=0.01, seed=1)
    cfg = AutoencoderConfig(iterations=400, batch_size=64, lr=3e-3)
    art = train_autoencoder(pre, cfg, tmp_path / "ae", progress=False)
    assert not art.skipped
    # 5 objects (plus noise) fit through a 3-d bottleneck
    assert art.manifest.extra["reconstruction_cosine_mean"] > 0.9
    again = train_autoencoder(pre, cfg, tmp_path / "ae", progress=False)
    assert again.skipped
    x = F.normalize(torch.randn(4, 32), dim=-1)
    torch.testing.assert_close(again.model(x), art.model(x))


def test_stale_corrupt_and_wrong_folder(tmp_path):
    pre = tmp_path / "pre"
    write_synthetic_preprocess(pre, n_views=4, n_classes=3, dim=16, seed=2)
    out = tmp_path / "ae"
    train_autoencoder(pre, AutoencoderConfig(iterations=5), out, progress=False)
    from ccl_gs.codebook.data import load_preprocessed

    other = tmp_path / "pre2"
    write_synthetic_preprocess(other, n_views=4, n_classes=3, dim=16, seed=3)
    with pytest.raises(ArtifactError, match="stale"):
        load_autoencoder(out, load_preprocessed(other))
    (out / "autoencoder.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="corrupt autoencoder weights"):
        load_autoencoder(out)
    # an --out that holds another kind of artifact is not overwritten
    m = read_json(out / "manifest.json")
    m["kind"] = "codebook"
    write_json(out / "manifest.json", m)
    with pytest.raises(ArtifactError, match="refusing to overwrite"):
        train_autoencoder(pre, AutoencoderConfig(iterations=5), out, progress=False)


def test_cli_missing_input_is_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "ccl_gs.autoencoder", "--preprocessed", str(tmp_path / "nope"), "--out",
         str(tmp_path / "ae"), "--quiet"], capture_output=True, text=True, cwd=REPO,
    )
    assert r.returncode == 1
    assert r.stderr.strip().startswith("error:") and "nope" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not np.any([p.name == "manifest.json" for p in (tmp_path).rglob("*")])
