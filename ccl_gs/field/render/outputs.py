"""The outputs of a render: the level, mask and selection rules shared with the viewer, and :func:`render_queries`.

See :mod:`ccl_gs.field.render` for the files written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ccl_gs.field.language import encode_queries, normalized_relevancy
from ccl_gs.field.render.images import _save_png, features_png, heatmap_over
from ccl_gs.field.render.planning import RenderConfig, plan
from ccl_gs.field.render.runs import QueryModel, load_query_model, make_encoder
from ccl_gs.io.artifacts import write_json
from tqdm import tqdm


def peak_level(rel: Tensor) -> int:
    """The level whose map peaks highest: ``rel [L, H, W]`` (one query) -> level index (render.py's "auto")."""
    return int(rel.flatten(1).max(1).values.argmax())


def query_mask(rel: Tensor, threshold: float, level: int | None = None) -> Tensor:
    """The mask of one query: ``rel [L, H, W]`` -> ``[H, W]`` bool, normalized relevancy > threshold at ``level``
    (None: :func:`peak_level`), the rule of render.py's mask PNGs and of the LERF-OVS protocol."""
    lv = peak_level(rel) if level is None else level
    return normalized_relevancy(rel[lv]) > threshold


def selection_masks(model: QueryModel, view: Any, rel: Tensor, query_emb: Tensor, kind: str,
                    canonical_emb: Tensor | None, threshold: float) -> Tensor:
    """Where each query's selection shows in a rendered view: ``[Q, H, W]`` bool.

    Runs that select Gaussians (``selection_maps``, semantic fields) render the
    opacity of exactly the Gaussians the PLY export writes, shown where it
    exceeds 0.5; other runs (LERF, whose export holds surface points) show the
    2D mask rule (:func:`query_mask`) on ``rel [L, Q, H, W]``.
    """
    render_sel = getattr(model, "selection_maps", None)
    if render_sel is not None:
        return render_sel(view, query_emb, kind, canonical_emb, threshold).to(rel.device) > 0.5
    return torch.stack([query_mask(rel[:, qi], threshold) for qi in range(rel.shape[1])])


@torch.no_grad()
def render_queries(cfg: RenderConfig, encoder=None) -> dict[str, Any]:
    """Render the planned views with the planned queries; returns a summary dict."""
    from ccl_gs.metrics import lerf_ovs, ovs3d
    from ccl_gs.metrics.lerf_ovs import query_slug
    from ccl_gs.splat.trainer import device_for_run

    from ccl_gs.io.artifacts import check_out_dir

    check_out_dir(cfg.out)
    device = device_for_run()
    model = load_query_model(cfg.field_dir, device, cfg)
    scene = model.scene
    pl = plan(cfg, scene, model.test_every)
    views = model.dataset("all")
    if encoder is None:
        encoder = make_encoder(model.encoder_spec)
    model.check_encoder(encoder)
    q_emb, c_emb = encode_queries(encoder, pl.queries)
    out = Path(cfg.out)
    slugs = [query_slug(q) for q in pl.queries]
    t_query = []
    jobs = [(stem, views[vi], True) for vi, stem in sorted(pl.views.items())]
    if pl.path is not None:
        ref = views[0]
        for f, c2w in enumerate(pl.path):
            vm = torch.from_numpy(np.linalg.inv(c2w)).to(ref["viewmat"])
            jobs.append((f"path_{f:05d}", {**ref, "viewmat": vm, "index": -1}, False))
    for stem, item, is_view in tqdm(jobs, desc="render", dynamic_ncols=True):
        t0 = time.perf_counter()
        view = model.render_view(item)  # rasterized / rendered once, shared by relevancy and 3D-OVS scores
        rel = model.relevancy_maps(view, q_emb, cfg.relevancy, c_emb)  # [L, Q, H, W]
        t_query.append(time.perf_counter() - t0)
        rel_np = rel.float().cpu().numpy()
        for qi, q in enumerate(pl.queries if is_view else []):
            lerf_ovs.save_render(out / "lerf_ovs", scene.name, stem, q, rel_np[:, qi])
        protocol_opacity = getattr(model, "protocol_opacity", None)
        if is_view and pl.queries and protocol_opacity is not None and cfg.lerf_labels is not None:
            opa = protocol_opacity(view, q_emb, c_emb, cfg.selection_rule).float().cpu().numpy()  # [Q, H, W]
            for qi, q in enumerate(pl.queries):
                lerf_ovs.save_render(out / "lerf_ovs_3d", scene.name, stem, q, opa[qi : qi + 1])
        if pl.ovs3d_classes is not None:
            cos = model.cosine_maps(view, q_emb)  # [L, C, H, W]
            ovs3d.save_render(out / "ovs3d", scene.name, stem, cos.max(0).values.cpu().numpy(), pl.ovs3d_classes)
            ovs3d.save_render(out / "ovs3d_levels", scene.name, stem, rel_np, pl.ovs3d_classes)
        if cfg.write_png:
            rgb = view.rgb
            _save_png(out / "rgb" / f"{stem}.png", rgb)
            _save_png(out / "features" / f"{stem}.png", features_png(view.features, *model.feature_basis(view)))
            for qi, slug in enumerate(slugs):
                lv = peak_level(rel[:, qi])
                _save_png(out / "heatmap" / stem / f"{slug}.png", heatmap_over(rgb, rel_np[lv, qi]))
                m = query_mask(rel[:, qi].float().cpu(), cfg.threshold, lv).numpy()
                _save_png(out / "mask" / stem / f"{slug}.png", (m * 255).astype(np.uint8))
    selections = {}
    if cfg.write_selection:
        selections = model.write_selections(out / "selection", pl.queries, slugs, q_emb, cfg.relevancy, c_emb,
                                            cfg.threshold)
    summary = {
        "scene": scene.name,
        "queries": pl.queries,
        "views": [pl.views[k] for k in sorted(pl.views)],
        "path_frames": 0 if pl.path is None else len(pl.path),
        "levels": model.n_levels,
        "relevancy": cfg.relevancy,
        "selection_rule": cfg.selection_rule if cfg.lerf_labels is not None and hasattr(model, "protocol_opacity") else None,
        "selected": selections,
        "seconds_per_view_all_queries": float(np.median(t_query)) if t_query else None,
    }
    write_json(out / "render.json", summary)
    return summary
