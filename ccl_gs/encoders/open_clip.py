"""OpenCLIP image-text encoder (ViT-B-16 / laion2b_s34b_b88k by default, as LangSplat and CCL-LGS).

Registered in :data:`ccl_gs.encoders.base.ENCODERS` as ``"open_clip"``::

    enc = ENCODERS["open_clip"](model_name="ViT-B-16", pretrained="laion2b_s34b_b88k")
    feats = enc.encode_masks(image, masks)   # [H, W, 3] float, [M, H, W] bool -> [M, 512]
    text = enc.encode_text(["a teapot"])     # [1, 512]

The model is built with ``open_clip.create_model_and_transforms(name,
pretrained=tag_or_path)``; crops are normalized with the model's own
preprocessing mean / std, resized to its input size, encoded in batches
(fp16 autocast on CUDA) and L2-normalized. An already built open_clip model
can be passed instead (tests use tiny random-weight models).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ccl_gs.encoders.base import ImageTextEncoder, register_encoder

DEFAULT_MODEL = "ViT-B-16"
DEFAULT_PRETRAINED = "laion2b_s34b_b88k"


class EncoderLoadError(RuntimeError):
    """The CLIP model or its weights cannot be loaded; the message names what and the flag."""


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_pretrained(model_name: str, pretrained: str | None, cache_dir: str | None = None) -> Path | None:
    """The local file holding ``pretrained`` weights for ``model_name``.

    ``pretrained`` is an open_clip tag (resolved through open_clip's own
    download / cache, which works offline when the file is cached) or a path to
    a local checkpoint. ``None`` or ``""`` means random weights (returns None).
    Raises :class:`EncoderLoadError` naming the missing piece and the flags.
    """
    import open_clip

    if not pretrained:
        return None
    if model_name not in open_clip.list_models():
        raise EncoderLoadError(
            f"unknown CLIP model '{model_name}' (set --clip-model; e.g. {DEFAULT_MODEL}, see open_clip.list_models())"
        )
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not tag_cfg:
        path = Path(pretrained).expanduser()
        if path.is_file():
            return path
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise EncoderLoadError(
            f"CLIP weights '{pretrained}' are neither a local file nor a known tag of {model_name} "
            f"(set --clip-pretrained to a checkpoint path or one of {tags})"
        )
    from open_clip.pretrained import download_pretrained

    try:
        target = download_pretrained(tag_cfg, cache_dir=cache_dir)
    except Exception as e:  # network errors, HF offline mode, missing cache
        offline = " (HF_HUB_OFFLINE is set and the weights are not cached)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise EncoderLoadError(
            f"cannot get CLIP weights {model_name}/{pretrained}{offline}: {type(e).__name__}; "
            "download them once online, or pass --clip-pretrained <local checkpoint file> (and --clip-model)"
        ) from e
    if not target or not Path(target).is_file():
        raise EncoderLoadError(f"CLIP weights {model_name}/{pretrained} resolved to no file (set --clip-pretrained)")
    return Path(target)


@register_encoder("open_clip")
class OpenClipEncoder(ImageTextEncoder):
    """An :class:`ImageTextEncoder` over an open_clip CLIP model.

    Args:
        model_name: open_clip architecture name (``--clip-model``).
        pretrained: open_clip tag or local checkpoint path (``--clip-pretrained``);
            ``None`` / ``""`` builds random weights.
        device: defaults to CUDA when available, else CPU.
        batch_size: crops / texts per forward pass.
        model: an already built open_clip model (``model_name`` / ``pretrained``
            then only name it); skips loading.
        tokenizer: its tokenizer (default ``open_clip.get_tokenizer(model_name)``).
        cache_dir: where open_clip caches downloaded weights.
    """

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        pretrained: str | None = DEFAULT_PRETRAINED,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        model: torch.nn.Module | None = None,
        tokenizer: Callable[..., Tensor] | None = None,
        cache_dir: str | None = None,
        **_: Any,
    ) -> None:
        import open_clip

        self.device = torch.device(device) if device is not None else _default_device()
        self.batch_size = int(batch_size)
        self.model_name = model_name
        self.pretrained = pretrained or ""
        self.checkpoint_path: Path | None = None
        if model is None:
            self.checkpoint_path = resolve_pretrained(model_name, pretrained, cache_dir)
            # Tags go through open_clip by tag (so tag-specific preprocessing applies);
            # the file behind it is the one resolved (and cached) above.
            try:
                model, _, _ = open_clip.create_model_and_transforms(
                    model_name, pretrained=pretrained or None, device=self.device, cache_dir=cache_dir
                )
            except RuntimeError as e:
                raise EncoderLoadError(
                    f"cannot load CLIP {model_name} with weights '{pretrained}': {str(e).splitlines()[0]} "
                    "(check --clip-model / --clip-pretrained)"
                ) from e
        self.model = model.to(self.device).eval()
        if tokenizer is None:
            ctx = getattr(self.model, "context_length", None)
            tokenizer = open_clip.get_tokenizer(model_name, context_length=ctx)
        self.tokenizer = tokenizer
        pp = open_clip.get_model_preprocess_cfg(self.model)
        mean = pp.get("mean", open_clip.OPENAI_DATASET_MEAN)
        std = pp.get("std", open_clip.OPENAI_DATASET_STD)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device)[:, None, None]  # [3, 1, 1]
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device)[:, None, None]  # [3, 1, 1]
        size = pp.get("size", getattr(getattr(self.model, "visual", None), "image_size", 224))
        self.crop_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.dim = int(self._probe_dim())
        self.name = f"open_clip:{model_name}/{self.pretrained or 'random'}"

    def _probe_dim(self) -> int:
        proj = getattr(self.model, "text_projection", None)
        if isinstance(proj, torch.Tensor):
            return proj.shape[1]
        if isinstance(proj, torch.nn.Linear):
            return proj.out_features
        with torch.no_grad():
            return self.encode_text(["a"]).shape[1]

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda")

    @torch.no_grad()
    def encode_crops(self, crops: Tensor) -> Tensor:
        """``[B, 3, S, S]`` float in [0, 1] -> ``[B, D]`` float32, unit norm.

        Crops of another size are resized (bilinear) to :attr:`crop_size`.
        """
        if crops.ndim != 4 or crops.shape[1] != 3:
            raise ValueError(f"crops must be [B, 3, S, S], got {tuple(crops.shape)}")
        out = []
        for s in range(0, crops.shape[0], self.batch_size):
            x = crops[s : s + self.batch_size].to(self.device, torch.float32)
            if x.shape[-2:] != (self.crop_size, self.crop_size):
                x = F.interpolate(x, size=(self.crop_size, self.crop_size), mode="bilinear", align_corners=False)
            x = (x - self.mean) / self.std
            with self._autocast():
                f = self.model.encode_image(x)
            out.append(F.normalize(f.float(), dim=-1))
        if not out:
            return torch.zeros(0, self.dim)
        return torch.cat(out, 0).cpu()

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """``T`` strings -> ``[T, D]`` float32, unit norm."""
        texts = list(texts)
        out = []
        for s in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[s : s + self.batch_size]).to(self.device)
            with self._autocast():
                f = self.model.encode_text(tokens)
            out.append(F.normalize(f.float(), dim=-1))
        if not out:
            return torch.zeros(0, getattr(self, "dim", 0))
        return torch.cat(out, 0).cpu()

    def encode_masks(self, image: Tensor, masks: Tensor, view: int | None = None, batch_size: int | None = None) -> Tensor:
        """``[H, W, 3]`` float in [0, 1] and ``[M, H, W]`` bool -> ``[M, D]`` float32, unit norm.

        Crops are cut on the encoder's device (see :func:`ccl_gs.encoders.base.masked_crops`).
        """
        return super().encode_masks(
            image.to(self.device), masks.to(self.device), view=view, batch_size=batch_size or self.batch_size
        )

