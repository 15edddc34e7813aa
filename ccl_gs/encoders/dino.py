"""DINO ViT-S/8 dense features through ``timm`` (LERF's DINO targets).

LERF extracts, from ``dino_vits8``, the **key** facet of the last block's
attention (6 heads x 64 = 384-d per patch, CLS dropped, no normalization),
on the image resized so that its shorter side is 500 px and normalized with
the ImageNet mean / std; one feature per 8 x 8 patch.

Here the model is ``timm``'s ``vit_small_patch8_224.dino`` (the same
weights), loaded by name (timm's own hub cache, which works offline when
the weights are cached) or from a local checkpoint file
(``dino_deitsmall8_pretrain.pth``, the file the DINO release publishes);
timm converts it. Registered as ``"dino"``::

    enc = build_encoder("dino", checkpoint="ckpts/dino_deitsmall8_pretrain.pth")
    feats = enc.encode_image(image)   # [H, W, 3] in [0, 1] -> [h, w, 384]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ccl_gs.encoders.base import DenseImageEncoder, register_encoder
from ccl_gs.encoders.open_clip import EncoderLoadError

DINO_MODEL = "vit_small_patch8_224.dino"
"""timm name of DINO ViT-S/8."""
DINO_CHECKPOINT_FILE = "dino_deitsmall8_pretrain.pth"
"""The DINO release's file of these weights (what ``--dino-checkpoint`` expects)."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_dino(model_name: str = DINO_MODEL, checkpoint: str | None = None) -> torch.nn.Module:
    """Build the timm ViT with its DINO weights (a checkpoint file, else timm's cache by name).

    Raises:
        EncoderLoadError: unknown model, missing checkpoint file or no
            weights offline; the message names the file and the flag.
    """
    import timm

    arch = model_name.split(".")[0]
    if arch not in timm.list_models():
        raise EncoderLoadError(f"unknown DINO model '{model_name}' (set --dino-model; e.g. {DINO_MODEL})")
    kwargs: dict[str, Any] = {"num_classes": 0, "dynamic_img_size": True}
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise EncoderLoadError(f"DINO checkpoint not found: {path} (pass --dino-checkpoint <{DINO_CHECKPOINT_FILE}>)")
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
    try:
        return timm.create_model(model_name, pretrained=True, **kwargs)
    except Exception as e:  # hub errors offline, bad files
        offline = " (HF_HUB_OFFLINE is set and the weights are not cached)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise EncoderLoadError(
            f"cannot get DINO weights {model_name}{offline}: {type(e).__name__}; "
            f"pass --dino-checkpoint <{DINO_CHECKPOINT_FILE}> (the DINO release's ViT-S/8 file)"
        ) from e


@register_encoder("dino")
class DinoEncoder(DenseImageEncoder):
    """Key features of the last attention block of a timm ViT (DINO ViT-S/8 by default).

    Args:
        model_name: timm model name (``--dino-model``).
        checkpoint: local weights file (``--dino-checkpoint``); None loads by name.
        short_side: the image is resized so that its shorter side has this many pixels (LERF: 500).
        device: defaults to CUDA when available, else CPU.
        model: an already built timm ViT (tests use tiny random-weight ones); skips loading.
        facet: ``"key"`` (LERF: the keys of the last block's attention) or
            ``"tokens"`` (3D-OVS: the last block's output tokens, before the final norm).

    ``short_side = 0`` keeps the image's own size (3D-OVS feeds its 1/5-resolution image as is).
    """

    FACETS = ("key", "tokens")

    def __init__(self, model_name: str = DINO_MODEL, checkpoint: str | None = None, short_side: int = 500,
                 device: str | torch.device | None = None, model: torch.nn.Module | None = None,
                 facet: str = "key", **_: Any) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = (model if model is not None else load_dino(model_name, checkpoint)).to(self.device).eval()
        if short_side != 0 and short_side < 8:
            raise ValueError(f"DINO short_side must be 0 (native size) or >= 8, got {short_side}")
        if facet not in self.FACETS:
            raise ValueError(f"DINO facet must be one of {self.FACETS}, got '{facet}'")
        self.short_side = int(short_side)
        self.facet = facet
        blocks = getattr(self.model, "blocks", None)
        if not blocks:
            raise EncoderLoadError(f"DINO model {model_name} has no transformer blocks (a timm ViT is needed)")
        attn = blocks[-1].attn
        self.heads = int(attn.num_heads)
        self.patch = int(self.model.patch_embed.patch_size[0])
        self.prefix = int(getattr(self.model, "num_prefix_tokens", 1))
        self.cell = self.patch
        """Input pixels per feature cell."""
        self.dim = int(attn.qkv.out_features // 3)
        self.name = f"dino:{model_name}/{Path(checkpoint).name if checkpoint else ('given' if model is not None else 'hub')}"
        if facet != "key":
            self.name += f"/{facet}"
        self._keys: Tensor | None = None
        if facet == "key":
            attn.qkv.register_forward_hook(self._hook)
        else:
            blocks[-1].register_forward_hook(self._hook_tokens)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device)[:, None, None]
        self.std = torch.tensor(IMAGENET_STD, device=self.device)[:, None, None]

    def _hook(self, module, inputs, output: Tensor) -> None:
        B, N, C3 = output.shape
        self._keys = output.reshape(B, N, 3, C3 // 3)[:, :, 1]  # [B, N, C]: heads x head_dim, flattened

    def _hook_tokens(self, module, inputs, output: Tensor) -> None:
        self._keys = output  # [B, N, C]: the block's output tokens

    @torch.no_grad()
    def encode_image(self, image: Tensor, view: int | None = None) -> Tensor:
        """``[H, W, 3]`` float in [0, 1] -> ``[h, w, dim]`` float32 features of :attr:`facet` (one per patch)."""
        H, W = int(image.shape[0]), int(image.shape[1])
        x = image.permute(2, 0, 1)[None].to(self.device, torch.float32)
        if self.short_side:
            s = self.short_side / min(H, W)
            h, w = max(round(H * s), self.patch), max(round(W * s), self.patch)
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        else:
            h, w = max(H, self.patch), max(W, self.patch)
            if (h, w) != (H, W):
                x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        gh, gw = h // self.patch, w // self.patch
        x = x[..., : gh * self.patch, : gw * self.patch]
        x = (x - self.mean) / self.std
        self._keys = None
        self.model.forward_features(x)
        if self._keys is None:
            raise RuntimeError("DINO: the last block's attention was not called")
        keys = self._keys[0, self.prefix :]  # [gh * gw, dim]
        return keys.reshape(gh, gw, self.dim).float().cpu()
