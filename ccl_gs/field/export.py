"""Export a semantic Gaussian field as PLY: the 3DGS layout plus language attributes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ccl_gs.field.methods import LanguageHead


@torch.no_grad()
def export_field_ply(
    path: Path,
    params,
    head: LanguageHead | None = None,
    keep: torch.Tensor | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Write Gaussians (optionally a subset) with ``f_lang_*`` and ``proto_<level>`` properties.

    Args:
        params: raw Gaussian parameters incl. ``features [N, d_f]``.
        head: the field's method head; it adds its per-Gaussian properties (the
            codebook head: the argmax prototype per level as ``proto_sp`` / ``proto_wp``).
        keep: ``[N]`` bool selecting the Gaussians to export (e.g. a 3D query selection).
        extra: further per-Gaussian arrays (``[N]`` or ``[N, d]``) to store.
    """
    from ccl_gs.io.ply import write_gaussians_ply

    sel = slice(None) if keep is None else keep.cpu()
    p = {k: v.detach().cpu()[sel] for k, v in params.items()}
    props: dict[str, np.ndarray] = {}
    if "features" in p:
        props["f_lang"] = p["features"].numpy().astype(np.float32)
        if head is not None:
            dev = next(head.parameters()).device
            props.update(head.ply_properties(p["features"].to(dev)))
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
