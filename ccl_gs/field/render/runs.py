"""The trained runs a render or the viewer queries: :class:`QueryModel`, the run-kind registry and its loaders.

A semantic Gaussian field (:class:`GaussianQueryModel`, run kind
``"semantic_field"``) is registered here, a LERF run by
:mod:`ccl_gs.lerf.query`; :class:`RGBRunModel` gives an RGB-only run the
rendering half. See :mod:`ccl_gs.field.render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import Tensor

from ccl_gs.field.export import export_field_ply
from ccl_gs.field.language import LanguageField, QueryError, select_gaussians
from ccl_gs.field.render.images import feature_colors
from ccl_gs.field.render.planning import RenderConfig


def make_encoder(spec: dict[str, Any]):
    """Rebuild the encoder that preprocessing used, from the spec stored in the manifests."""
    from ccl_gs.encoders import build_encoder

    if not spec:
        raise QueryError("the trained field does not record its text encoder; re-run preprocessing")
    return build_encoder(spec)


class QueryModel(Protocol):
    """What the render loop asks of a trained run (a Gaussian field, a LERF run, ...)."""

    scene: Any
    test_every: int
    n_levels: int
    encoder_spec: dict[str, Any]

    def dataset(self, split: str):
        """The scene's views of ``split`` at the run's resolution."""

    def check_encoder(self, encoder) -> None:
        """Refuse a query encoder other than the run's."""

    def render_view(self, item: dict[str, Any]) -> Any:
        """Render one view (``item`` as :class:`~ccl_gs.data.dataset.SceneDataset` gives); an opaque state with
        ``rgb`` (``[H, W, 3]`` uint8) and ``features`` (``[H, W, d]``) attributes."""

    def relevancy_maps(self, view: Any, query_emb: Tensor, kind: str, canonical_emb: Tensor | None) -> Tensor:
        """``[L, Q, H, W]`` relevancy of the queries in a rendered view."""

    def cosine_maps(self, view: Any, query_emb: Tensor) -> Tensor:
        """``[L, Q, H, W]`` cosine similarity of the queries in a rendered view."""

    def feature_basis(self, view: Any) -> tuple[Tensor, Tensor, Tensor]:
        """Mean, principal axes and scale used to colour the rendered features (the same in every view)."""

    def write_selections(self, out: Path, queries: list[str], slugs: list[str], query_emb: Tensor, kind: str,
                         canonical_emb: Tensor | None, threshold: float) -> dict[str, int]:
        """Write one PLY per query of the 3D primitives it selects; returns the count per query."""


@dataclass
class RunKind:
    """A kind of trained run that ``render.py --field-dir`` accepts."""

    detect: Callable[[Path], bool]
    load: Callable[..., QueryModel]
    """``load(folder, device, cfg)`` with ``cfg`` the :class:`RenderConfig` (or None)."""


RUN_KINDS: dict[str, RunKind] = {}
"""Trained run kinds by name (``"semantic_field"``, ``"lerf"``, ``"weakseg"``); the first whose ``detect`` accepts the folder loads it."""
RUN_KIND_PLUGINS = ("ccl_gs.lerf.query", "ccl_gs.weakseg.query")
"""Modules that register further run kinds, imported on demand."""


def register_run_kind(name: str, detect: Callable[[Path], bool]):
    """Decorator registering ``load(folder, device) -> QueryModel`` for runs that ``detect`` accepts."""

    def deco(load):
        RUN_KINDS[name] = RunKind(detect, load)
        return load

    return deco


def load_query_model(folder: str | Path, device: torch.device, cfg: RenderConfig | None = None) -> QueryModel:
    """Load a trained run of any registered kind (a one-line :class:`QueryError` when none matches)."""
    import importlib

    for mod in RUN_KIND_PLUGINS:
        importlib.import_module(mod)
    folder = Path(folder)
    if not folder.is_dir():
        raise QueryError(f"no trained run at {folder}: train a semantic field or a LERF run first")
    for kind in RUN_KINDS.values():
        if kind.detect(folder):
            return kind.load(folder, device, cfg)
    raise QueryError(f"{folder} holds no trained run (expected field.pt of a semantic field or lerf.pt of a LERF run)")


@dataclass
class GaussianView:
    """A rendered view of Gaussians (a semantic field, or an RGB-only run without features).

    The language features are rasterized on first use (a frame that shows
    only the colour does not pay for them).
    """

    item: dict[str, Any]
    rgb: np.ndarray  # [H, W, 3] uint8
    render_features: Callable[[dict[str, Any]], Tensor] | None = None
    """Rasterizes the features of ``item``; None for an RGB-only run."""
    _features: Tensor | None = None

    @property
    def features(self) -> Tensor | None:
        """``[H, W, d_f]`` rendered language features (None for an RGB-only run)."""
        if self._features is None and self.render_features is not None:
            self._features = self.render_features(self.item)
        return self._features


class GaussianQueryModel:
    """A trained semantic Gaussian field (:class:`LanguageField`) behind :class:`QueryModel`."""

    def __init__(self, folder: Path, device: torch.device) -> None:
        from ccl_gs.config import from_dict
        from ccl_gs.field.train import FieldConfig, check_current
        from ccl_gs.io.artifacts import read_json
        from ccl_gs.splat.trainer import config_from_json, load_run_scene

        self.device = device
        self.lf = LanguageField.load(folder, device)
        check_current(folder)
        fcfg = from_dict(FieldConfig, read_json(Path(folder) / "config.json"))
        rgb_cfg_path = Path(folder) / "joint_rgb" / "config.json"
        if not rgb_cfg_path.exists():
            rgb_cfg_path = Path(fcfg.rgb_run) / "config.json"
        self.rgb_cfg = config_from_json(rgb_cfg_path)
        self.scene = load_run_scene(self.rgb_cfg)
        self.test_every = self.rgb_cfg.test_every
        self.n_levels = self.lf.n_levels
        self.encoder_spec = self.lf.encoder_spec
        feats = self.lf.params["features"]
        self._mean, self._axes = feature_colors(feats)
        self._scale = 2 * ((feats - self._mean) @ self._axes).std(0).clamp_min(1e-6)
        self._selection: tuple[tuple, Tensor] | None = None
        self._protocol: tuple[tuple, Tensor] | None = None

    def dataset(self, split: str):
        from ccl_gs.splat.trainer import make_dataset

        return make_dataset(self.rgb_cfg, self.scene, split, self.device)

    def check_encoder(self, encoder) -> None:
        self.lf.check_encoder(encoder)

    def render_view(self, item: dict[str, Any]) -> GaussianView:
        rgb = render_gaussian_rgb(self.lf.params, item, self.rgb_cfg.sh_degree, self.scene.white_background, self.device,
                                  self.rgb_cfg.raster)
        return GaussianView(item, rgb, self.lf.render_features)

    def relevancy_maps(self, view: GaussianView, query_emb: Tensor, kind: str, canonical_emb: Tensor | None) -> Tensor:
        return self.lf.relevancy_maps(view.item, query_emb, kind, canonical_emb, feats=view.features)

    def cosine_maps(self, view: GaussianView, query_emb: Tensor) -> Tensor:
        return self.lf.cosine_maps(view.item, query_emb, feats=view.features)

    def feature_basis(self, view: GaussianView) -> tuple[Tensor, Tensor, Tensor]:
        return self._mean, self._axes, self._scale

    def selected(self, query_emb: Tensor, kind: str, canonical_emb: Tensor | None, threshold: float) -> Tensor:
        """``[Q, N]`` bool: the Gaussians each query selects (:func:`select_gaussians`, the level of highest peak).

        The last answer is kept, so a viewer asking every frame with the same
        queries and threshold pays for the per-Gaussian relevancy once.
        """
        key = (kind, float(threshold), _tensor_key(query_emb), _tensor_key(canonical_emb))
        if self._selection is None or self._selection[0] != key:
            g_rel = self.lf.gaussian_relevancy(query_emb, kind, canonical_emb)  # [L, Q, N]
            keep = torch.stack([select_gaussians(g_rel[:, qi], threshold) for qi in range(g_rel.shape[1])])
            self._selection = (key, keep)
        return self._selection[1]

    def selection_maps(self, view: GaussianView, query_emb: Tensor, kind: str, canonical_emb: Tensor | None,
                       threshold: float) -> Tensor:
        """``[Q, H, W]`` opacity of the Gaussians each query selects, rendered in the view (what the PLY holds)."""
        from ccl_gs.field.train import render_features

        keep = self.selected(query_emb, kind, canonical_emb, threshold)  # [Q, N]
        shown = {**self.lf.params, "features": keep.T.float().contiguous()}
        return render_features(shown, view.item, self.device, raster=self.lf.raster).permute(2, 0, 1)

    def protocol_opacity(self, view: GaussianView, query_emb: Tensor, canonical_emb: Tensor | None, rule: str) -> Tensor:
        """``[Q, H, W]`` accumulated opacity of the Gaussians each query selects under the 3D-selection
        protocol (:func:`~ccl_gs.field.language.protocol_selection`), rendered alone in the view."""
        from ccl_gs.field.language import protocol_selection
        from ccl_gs.field.train import render_features

        key = ("protocol", rule, _tensor_key(query_emb), _tensor_key(canonical_emb))
        if self._protocol is None or self._protocol[0] != key:
            cos = self.lf.gaussian_cosine(query_emb)
            rel = self.lf.gaussian_relevancy(query_emb, "canonical", canonical_emb)
            self._protocol = (key, protocol_selection(cos, rel, rule))
        keep = self._protocol[1]
        shown = {**self.lf.params, "features": keep.T.float().contiguous()}
        return render_features(shown, view.item, self.device, raster=self.lf.raster).permute(2, 0, 1)

    def write_selections(self, out: Path, queries: list[str], slugs: list[str], query_emb: Tensor, kind: str,
                         canonical_emb: Tensor | None, threshold: float) -> dict[str, int]:
        keep_all = self.selected(query_emb, kind, canonical_emb, threshold)
        counts = {}
        for qi, (q, slug) in enumerate(zip(queries, slugs)):
            keep = keep_all[qi]
            counts[q] = int(keep.sum())
            if keep.any():
                export_field_ply(out / f"{slug}.ply", self.lf.params, self.lf.head, keep=keep)
        return counts


register_run_kind("semantic_field", lambda d: (d / "field.pt").is_file())(lambda folder, device, cfg=None: GaussianQueryModel(folder, device))


def _tensor_key(t: Tensor | None) -> tuple | None:
    """A hashable fingerprint of a small tensor's values (query embeddings), for one-entry caches."""
    if t is None:
        return None
    return (tuple(t.shape), str(t.dtype), hash(t.detach().cpu().contiguous().numpy().tobytes()))


def render_gaussian_rgb(params, item: dict[str, Any], sh_degree: int, white_background: bool,
                        device: torch.device, raster=None) -> np.ndarray:
    """The colour of Gaussians (raw parameters) in one view: ``[H, W, 3]`` uint8 (``raster``: the RGB run's)."""
    from ccl_gs.splat.gaussians import render_rgb

    bg = torch.ones(3, device=device) if white_background else torch.zeros(3, device=device)
    colors, _, _ = render_rgb(
        params, item["viewmat"][None].to(device), item["K"][None].to(device),
        int(item["width"]), int(item["height"]), sh_degree=sh_degree, background=bg, raster=raster,
    )
    return (colors[0, ..., :3].clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


class RGBRunModel:
    """An RGB-only Gaussian run of ``train.py`` behind the rendering half of :class:`QueryModel`.

    It has no language: ``n_levels`` is 0, ``encoder_spec`` is empty, and the
    query methods raise :class:`QueryError`. Views carry ``features = None``.
    """

    n_levels = 0

    def __init__(self, folder: Path, device: torch.device) -> None:
        from ccl_gs.io.ply import read_gaussians_ply
        from ccl_gs.splat.trainer import config_from_json, load_run_scene

        self.encoder_spec: dict[str, Any] = {}
        folder = Path(folder)
        if not (folder / "point_cloud.ply").is_file() or not (folder / "config.json").is_file():
            raise QueryError(f"no finished RGB run at {folder} (expected point_cloud.ply and config.json of train.py)")
        self.device = device
        self.rgb_cfg = config_from_json(folder / "config.json")
        ply = read_gaussians_ply(folder / "point_cloud.ply")
        self.sh_degree = ply.sh_degree
        t = ply.to_tensors()
        shN = t["shN"] if t["shN"] is not None else torch.zeros(len(ply), 0, 3)
        params = {"means": t["means"], "quats": t["quats"], "scales": t["log_scales"],
                  "opacities": t["opacity_logits"], "sh0": t["sh0"], "shN": shN}
        self.params = {k: v.float().to(device) for k, v in params.items()}
        self.scene = load_run_scene(self.rgb_cfg)
        self.test_every = self.rgb_cfg.test_every

    def dataset(self, split: str):
        from ccl_gs.splat.trainer import make_dataset

        return make_dataset(self.rgb_cfg, self.scene, split, self.device)

    def _no_language(self, *args, **kwargs):
        raise QueryError("an RGB-only run has no language field: train a semantic field (python -m ccl_gs.field)")

    check_encoder = relevancy_maps = cosine_maps = feature_basis = write_selections = _no_language

    def render_view(self, item: dict[str, Any]) -> GaussianView:
        rgb = render_gaussian_rgb(self.params, item, self.sh_degree, self.scene.white_background, self.device,
                                  self.rgb_cfg.raster)
        return GaussianView(item, rgb)


def load_viewable_run(field_dir: str | Path | None, run: str | Path | None, device: torch.device,
                      cfg: RenderConfig | None = None):
    """A trained run with language (``field_dir``, any registered kind) or an RGB-only run (``run``).

    Exactly one of the two must be given; errors are one-line :class:`QueryError` / ``ArtifactError``.
    """
    if (field_dir is None) == (run is None):
        raise QueryError("give exactly one of --field-dir (a trained semantic field or LERF run) and --run (an RGB run)")
    if field_dir is not None:
        return load_query_model(field_dir, device, cfg)
    if not Path(run).is_dir():
        raise QueryError(f"no RGB run at {run}: train one first (python train.py --data SCENE --out {run})")
    return RGBRunModel(Path(run), device)
