"""Export a semantic Gaussian field as PLY: the 3DGS layout plus language attributes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ccl_gs.field.model import FeatureDecoder
from ccl_gs.masks.types import LEVELS


@torch.no_grad()
def export_field_ply(
    path: Path,
    params,
    decoder: FeatureDecoder | None = None,
    keep: torch.Tensor | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Write Gaussians (optionally a subset) with ``f_lang_*`` and ``proto_<level>`` properties.

    Args:
        params: raw Gaussian parameters incl. ``features [N, d_f]``.
        decoder: when given, each Gaussian's argmax prototype per level is stored as
            the integer property ``proto_sp`` / ``proto_wp``.
        keep: ``[N]`` bool selecting the Gaussians to export (e.g. a 3D query selection).
        extra: further per-Gaussian arrays (``[N]`` or ``[N, d]``) to store.
    """
    from ccl_gs.io.ply import write_gaussians_ply

    sel = slice(None) if keep is None else keep.cpu()
    p = {k: v.detach().cpu()[sel] for k, v in params.items()}
    props: dict[str, np.ndarray] = {}
    if "features" in p:
        props["f_lang"] = p["features"].numpy().astype(np.float32)
        if decoder is not None:
            idx = decoder.decode_indices(p["features"].to(next(decoder.parameters()).device)).cpu()
            for lv in range(idx.shape[0]):
                props[f"proto_{LEVELS[lv] if lv < len(LEVELS) else lv}"] = idx[lv].numpy().astype(np.int32)
    for k, v in (extra or {}).items():
        props[k] = np.asarray(v)[np.asarray(sel) if keep is not None else slice(None)]
    write_gaussians_ply(
        path,
        means=p["means"].numpy(),
        quats=p["quats"].numpy(),
        log_scales=p["scales"].numpy(),
        opacity_logits=p["opacities"].numpy(),
        sh0=p["sh0"].numpy(),
        shN=p["shN"].numpy(),
        extra=props,
    )
