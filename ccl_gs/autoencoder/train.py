"""Stage 2 of the autoencoder baseline: fit the language autoencoder to a scene's mask features.

Input: a preprocess artifact (stage 1). Output folder::

    autoencoder.pt   {"format_version", "kind", "config", "feature_dim", "state_dict"}
    manifest.json    kind "autoencoder"; inputs = the preprocess fingerprint;
                     extra: encoder spec, preprocess folder, final losses

The artifact is reused when its manifest matches (same config, same inputs);
it is written atomically, so a killed run leaves no half artifact and simply
trains again (a few thousand small steps).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ccl_gs.autoencoder.model import AutoencoderConfig, LanguageAutoencoder, reconstruction_loss
from ccl_gs.codebook.data import PreprocessedInput, load_preprocessed
from ccl_gs.config import from_dict, to_dict
from ccl_gs.io.artifacts import ArtifactError, Manifest, atomic_path, reusable_manifest
from ccl_gs.runtime import device_for_run

log = logging.getLogger(__name__)

KIND = "autoencoder"
FORMAT_VERSION = 1
WEIGHTS_FILE = "autoencoder.pt"


@dataclass
class AutoencoderArtifact:
    """A loaded autoencoder artifact."""

    model: LanguageAutoencoder
    manifest: Manifest
    folder: Path
    skipped: bool = True

    @property
    def preprocessed(self) -> Path:
        """The preprocess artifact it was fitted to."""
        return Path(self.manifest.extra["preprocessed"])


def _expected_manifest(inp: PreprocessedInput, cfg: AutoencoderConfig) -> Manifest:
    return Manifest(kind=KIND, format_version=FORMAT_VERSION, config=to_dict(cfg), inputs=inp.fingerprint())


def load_autoencoder(
    folder: str | Path, preprocessed: PreprocessedInput | None = None, device: torch.device | str = "cpu"
) -> AutoencoderArtifact:
    """Load a complete autoencoder artifact.

    Args:
        folder: the artifact folder.
        preprocessed: when given, the preprocess artifact it must have been
            fitted to; a changed input raises instead of returning a stale model.
    Raises:
        ArtifactError: missing / corrupt / incomplete / stale artifact (the message names the file).
    """
    folder = Path(folder)
    manifest = Manifest.load(folder, kind=KIND)
    if manifest.format_version != FORMAT_VERSION:
        raise ArtifactError(f"{folder}: autoencoder format {manifest.format_version}, this version reads {FORMAT_VERSION}")
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise ArtifactError(f"{folder}: autoencoder artifact is incomplete (missing {WEIGHTS_FILE})")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        cfg = from_dict(AutoencoderConfig, blob["config"])
        model = LanguageAutoencoder(cfg, int(blob["feature_dim"]))
        model.load_state_dict(blob["state_dict"])
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
        raise ArtifactError(f"corrupt autoencoder weights {path}: {e}") from e
    if preprocessed is not None and manifest.inputs != preprocessed.fingerprint():
        raise ArtifactError(
            f"autoencoder {folder} is stale: preprocess artifact {preprocessed.folder} changed since it was fitted; "
            "re-run `python -m ccl_gs.autoencoder`"
        )
    return AutoencoderArtifact(model.to(device).eval(), manifest, folder)


def train_autoencoder(
    inputs: str | Path | PreprocessedInput,
    cfg: AutoencoderConfig,
    out_dir: str | Path,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> AutoencoderArtifact:
    """Fit the autoencoder to every mask feature (both levels) of a preprocess artifact and write it.

    Returns the artifact (``skipped`` when an up-to-date one already existed).
    Raises:
        ArtifactError: unreadable inputs; an existing ``--out`` that is not an autoencoder artifact.
        FloatingPointError: the loss became non-finite.
    """
    out_dir = Path(out_dir)
    inp = inputs if isinstance(inputs, PreprocessedInput) else load_preprocessed(inputs)
    expected = _expected_manifest(inp, cfg)
    if reusable_manifest(out_dir, expected, lambda m: (out_dir / WEIGHTS_FILE).is_file()) is not None:
        log.info("autoencoder %s is up to date; skipping", out_dir)
        return load_autoencoder(out_dir, inp)
    dev = device_for_run(device)
    torch.manual_seed(cfg.seed)
    feats = inp.masks.features.to(dev)  # [M, D] unit norm
    model = LanguageAutoencoder(cfg, inp.dim).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.iterations, desc="autoencoder", dynamic_ncols=True)
    t0 = time.perf_counter()
    loss = torch.zeros(())
    for step in range(cfg.iterations):
        idx = torch.randint(0, feats.shape[0], (min(cfg.batch_size, feats.shape[0]),), generator=gen).to(dev)
        x = feats[idx]
        loss = reconstruction_loss(model(x), x, cfg.cos_weight)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"autoencoder training diverged at step {step}: non-finite loss (try a lower --lr)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar is not None:
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
    if bar is not None:
        bar.close()
    model.eval()
    with torch.no_grad():
        cos = torch.cat([
            F.cosine_similarity(model(feats[s : s + 65536]), feats[s : s + 65536], dim=-1)
            for s in range(0, feats.shape[0], 65536)
        ])
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
        torch.save(
            {"format_version": FORMAT_VERSION, "kind": KIND, "config": to_dict(cfg), "feature_dim": inp.dim,
             "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}},
            tmp,
        )
    manifest = dataclasses.replace(
        expected,
        extra={
            "encoder": inp.encoder,
            "dim": inp.dim,
            "latent_dim": cfg.latent_dim,
            "preprocessed": str(Path(inp.folder).resolve()),
            "n_masks": int(feats.shape[0]),
            "final_loss": float(loss.detach()),
            "reconstruction_cosine_mean": float(cos.mean()),
            "seconds": time.perf_counter() - t0,
        },
    )
    manifest.save(out_dir)
    return AutoencoderArtifact(model.cpu(), manifest, out_dir, skipped=False)
