"""LangSplat-style language autoencoder (a baseline's stage 2): mask features <-> 3-d latents."""

from ccl_gs.autoencoder.model import AutoencoderConfig, LanguageAutoencoder, reconstruction_loss
from ccl_gs.autoencoder.train import KIND, AutoencoderArtifact, load_autoencoder, train_autoencoder

__all__ = [
    "KIND",
    "AutoencoderArtifact",
    "AutoencoderConfig",
    "LanguageAutoencoder",
    "load_autoencoder",
    "reconstruction_loss",
    "train_autoencoder",
]
