"""Queries of a trained 3D-OVS field: the ``"weakseg"`` run kind of ``render.py --field-dir`` and the viewer.

A view renders the per-Gaussian features, decodes them (affinely, see
:mod:`ccl_gs.weakseg.model`) into one CLIP-space embedding per pixel and
scores it against the text queries: one "level" (``[1, Q, H, W]``), cosine
for the 3D-OVS argmax (the release's ``softmax(normalize(F) . t)``, argmax
over the scene's classes: the same argmax), and :func:`ccl_gs.query.relevancy`
(the one implementation) for heat maps and masks.

3D selection of a query: each Gaussian's own embedding; with two or more
queries a Gaussian belongs to the query of highest cosine (the method's
closed-set argmax, so the PLYs of the classes of a scene partition it);
a single query selects by the rule of the 2D masks
(:func:`ccl_gs.field.language.select_gaussians`). The LERF-OVS 3D-selection
protocol (``render.py --lerf-labels``, ``lerf_ovs_3d/``) uses the published
rules of :func:`ccl_gs.field.language.protocol_selection` like every method.

Refused with one line: a run of another format, a query encoder other than
the targets' CLIP encoder, and ``--ovs3d-data`` whose ``classes.txt`` differs
from the class list the field was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ccl_gs.field.language import QueryError, select_gaussians
from ccl_gs.field.render import GaussianView, feature_colors, register_run_kind, render_gaussian_rgb
from ccl_gs.io.artifacts import ArtifactError
from ccl_gs.query import relevancy
from ccl_gs.weakseg.model import WeaksegHead
from ccl_gs.weakseg.train import WEAKSEG_VERSION


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise QueryError(f"no trained 3D-OVS field at {path}: run python -m ccl_gs.weakseg first")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ArtifactError(f"corrupt 3D-OVS field {path}: {type(e).__name__}") from None
    if not isinstance(ck, dict) or ck.get("kind") != "weakseg" or ck.get("format_version") != WEAKSEG_VERSION:
        raise ArtifactError(f"{path} is not a 3D-OVS field of format {WEAKSEG_VERSION}")
    return ck


class WeaksegQueryModel:
    """A trained 3D-OVS field behind :class:`ccl_gs.field.render.QueryModel`.

    Args:
        folder: the run folder (``weakseg.pt``).
        device: where to render.
        cfg: the render options; with ``ovs3d_data`` its class list must be the trained one.
    """

    n_levels = 1

    def __init__(self, folder: Path, device: torch.device, cfg=None) -> None:
        from ccl_gs.splat.trainer import load_run_scene, rgb_config

        ck = _load(Path(folder) / "weakseg.pt")
        self.device = device
        self.classes: list[str] = list(ck["classes"])
        if cfg is not None and getattr(cfg, "ovs3d_data", None) is not None:
            from ccl_gs.metrics.labels import LabelError, read_ovs3d_classes

            try:
                now = read_ovs3d_classes(Path(cfg.ovs3d_data) / "segmentations")
            except LabelError as e:
                raise QueryError(str(e)) from None
            if now != self.classes:
                raise QueryError(
                    f"the class list of {cfg.ovs3d_data} ({', '.join(now)}) differs from the one this 3D-OVS field was "
                    f"trained on ({', '.join(self.classes)}); retrain it (python -m ccl_gs.weakseg)"
                )
        self.head = WeaksegHead.from_state(ck["head"]).to(device).eval()
        self.params = {k: v.float().to(device) for k, v in ck["params"].items()}
        self.sh_degree = int(ck["sh_degree"])
        self.rgb_cfg = rgb_config(ck["rgb_config"])
        self.scene = load_run_scene(self.rgb_cfg)
        self.test_every = self.rgb_cfg.test_every
        self.encoder_spec: dict[str, Any] = dict(ck["clip_encoder"])
        self._embedding: Tensor | None = None
        feats = self.params["features"]
        self._mean, self._axes = feature_colors(feats)
        self._scale = 2 * ((feats - self._mean) @ self._axes).std(0).clamp_min(1e-6)
        self._selection: tuple[tuple, Tensor] | None = None

    def dataset(self, split: str):
        from ccl_gs.splat.trainer import make_dataset

        return make_dataset(self.rgb_cfg, self.scene, split, self.device)

    def check_encoder(self, encoder) -> None:
        want = self.encoder_spec.get("name")
        if want is not None and encoder.name != want:
            raise QueryError(f"query encoder '{encoder.name}' differs from the CLIP encoder of the 3D-OVS targets '{want}'")

    # ------------------------------------------------------------------------ per pixel
    def _render_features(self, item: dict[str, Any]) -> Tensor:
        """The small per-Gaussian features rasterized, with the opacity as the last channel: ``[H, W, d + 1]``."""
        from ccl_gs.splat.rasterize import rasterize

        p = self.params
        colors, alphas, _ = rasterize(
            p["means"], F.normalize(p["quats"], dim=-1), torch.exp(p["scales"]), torch.sigmoid(p["opacities"]),
            p["features"], item["viewmat"][None].to(self.device), item["K"][None].to(self.device),
            int(item["width"]), int(item["height"]), **self.rgb_cfg.raster.kwargs(),
        )
        return torch.cat([colors[0], alphas[0]], -1)

    def render_view(self, item: dict[str, Any]) -> GaussianView:
        rgb = render_gaussian_rgb(self.params, item, self.sh_degree, self.scene.white_background, self.device,
                                  self.rgb_cfg.raster)
        return GaussianView(item, rgb, self._render_features)

    def pixel_embeddings(self, view: GaussianView) -> Tensor:
        """``[H, W, D]`` decoded CLIP-space embedding of every pixel (not normalized)."""
        f = view.features
        return self.head.decoder(f[..., :-1], f[..., -1:])

    def relevancy_maps(self, view: GaussianView, query_emb: Tensor, kind: str, canonical_emb: Tensor | None) -> Tensor:
        e = F.normalize(self.pixel_embeddings(view), dim=-1)
        H, W, D = e.shape
        c = None if canonical_emb is None else canonical_emb.to(e)
        rel = relevancy(kind, e.reshape(-1, D), query_emb.to(e), c)  # [P, Q]
        return rel.T.reshape(1, -1, H, W)

    def cosine_maps(self, view: GaussianView, query_emb: Tensor) -> Tensor:
        e = F.normalize(self.pixel_embeddings(view), dim=-1)
        return torch.einsum("hwd,qd->qhw", e, F.normalize(query_emb.to(e), dim=-1))[None]

    def feature_basis(self, view: GaussianView) -> tuple[Tensor, Tensor, Tensor]:
        mean = torch.cat([self._mean, self._mean.new_zeros(1)])
        axes = torch.cat([self._axes, self._axes.new_zeros(1, 3)])
        return mean, axes, self._scale

    # ------------------------------------------------------------------------ per Gaussian
    def gaussian_embeddings(self) -> Tensor:
        """``[N, D]`` unit CLIP-space embedding of each Gaussian's own feature."""
        if self._embedding is None:
            with torch.no_grad():
                self._embedding = F.normalize(self.head.embed(self.params["features"]), dim=-1)
        return self._embedding

    def selected(self, query_emb: Tensor, kind: str, canonical_emb: Tensor | None, threshold: float) -> Tensor:
        """``[Q, N]`` bool: argmax over the queries (Q >= 2), else the 2D mask rule on the Gaussians."""
        key = (kind, float(threshold), tuple(query_emb.shape), hash(query_emb.detach().cpu().numpy().tobytes()))
        if self._selection is None or self._selection[0] != key:
            e = self.gaussian_embeddings()
            q = F.normalize(query_emb.to(e), dim=-1)
            if q.shape[0] >= 2:
                best = (e @ q.T).argmax(-1)  # [N]
                keep = torch.stack([best == qi for qi in range(q.shape[0])])
            else:
                c = None if canonical_emb is None else canonical_emb.to(e)
                keep = select_gaussians(relevancy(kind, e, q, c).T[None, 0], threshold)[None]
            self._selection = (key, keep)
        return self._selection[1]

    def selection_maps(self, view: GaussianView, query_emb: Tensor, kind: str, canonical_emb: Tensor | None,
                       threshold: float) -> Tensor:
        """``[Q, H, W]`` opacity of the Gaussians each query selects, rendered in the view (what the PLY holds)."""
        return self._render_selection(view, self.selected(query_emb, kind, canonical_emb, threshold))

    def _render_selection(self, view: GaussianView, keep: Tensor) -> Tensor:
        """``[Q, H, W]`` accumulated opacity of the Gaussians of each row of ``keep [Q, N]``, rendered alone."""
        from ccl_gs.field.train import render_features

        shown = {**self.params, "features": keep.T.float().contiguous()}
        return render_features(shown, view.item, self.device).permute(2, 0, 1)

    def protocol_opacity(self, view: GaussianView, query_emb: Tensor, canonical_emb: Tensor | None, rule: str) -> Tensor:
        """``[Q, H, W]`` accumulated opacity of the Gaussians each query selects under the LERF-OVS 3D-selection
        protocol (:func:`~ccl_gs.field.language.protocol_selection`, one level), rendered alone in the view."""
        from ccl_gs.field.language import protocol_selection

        e = self.gaussian_embeddings()
        q = F.normalize(query_emb.to(e), dim=-1)
        c = None if canonical_emb is None else canonical_emb.to(e)
        keep = protocol_selection((e @ q.T).T[None], relevancy("canonical", e, q, c).T[None], rule)
        return self._render_selection(view, keep)

    def write_selections(self, out: Path, queries: list[str], slugs: list[str], query_emb: Tensor, kind: str,
                         canonical_emb: Tensor | None, threshold: float) -> dict[str, int]:
        from ccl_gs.field.export import export_field_ply

        keep_all = self.selected(query_emb, kind, canonical_emb, threshold)
        params = {k: v for k, v in self.params.items() if k != "selection"}
        counts = {}
        for qi, (q, slug) in enumerate(zip(queries, slugs)):
            counts[q] = int(keep_all[qi].sum())
            if keep_all[qi].any():
                export_field_ply(out / f"{slug}.ply", params, keep=keep_all[qi])
        return counts


register_run_kind("weakseg", lambda d: (d / "weakseg.pt").is_file())(
    lambda folder, device, cfg=None: WeaksegQueryModel(folder, device, cfg))
