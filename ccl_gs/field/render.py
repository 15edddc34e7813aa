"""Stage 4 outputs: renders, relevancy heat maps, masks, eval inputs and 3D selections.

:func:`render_queries` writes, for a trained field and a list of text queries,
into ``--out``::

    rgb/<view>.png                       rendered colour
    features/<view>.png                  the rendered language features, first 3 principal components as RGB
    heatmap/<view>/<query>.png           relevancy (turbo colour map) over the RGB
    mask/<view>/<query>.png              normalized relevancy > threshold at the chosen level
    lerf_ovs/<scene>/<view>/<query>.npy  float32 [L, H, W] relevancy (eval/lerf_ovs.py input)
    ovs3d/<scene>/<view>.npy             float32 [C, H, W] class scores (eval/ovs3d.py, argmax protocol)
    ovs3d_levels/<scene>/<view>.npy      float32 [L, C, H, W] relevancy (eval/ovs3d.py, threshold protocol)
    selection/<query>.ply                the Gaussians relevant to the query (3DGS PLY)
    render.json                          queries, views, levels, timing

Which views and queries: ``--queries`` over a ``--split`` (``train``,
``test``, ``all``, or ``path``: ``--path-frames`` poses interpolated through
the training cameras in order, written as ``path_XXXXX``, PNGs only); or a LERF-OVS
label folder (``--lerf-labels label/<scene>``: its categories over its
labelled frames, ``frame_XXXXX`` = view ``XXXXX - 1``); or a 3D-OVS scene
(``--ovs3d-data <scene>``: the classes of ``segmentations/classes.txt`` over
the views named by the folders under ``segmentations/``).

3D-OVS class scores are ``max`` over levels of the cosine similarity of the
pixel's decoded prototype with the class text; any monotone score gives the
same closed-set argmax.

The relevancy form is chosen by name (``canonical`` = LERF's pairwise
softmax against "object", "things", "stuff", "texture"; ``softmax`` = over
the query set, CCL-LGS's) and computed by :func:`ccl_gs.query.relevancy`.

The rules of the outputs are shared with the interactive viewer
(:mod:`ccl_gs.viewer`): :func:`peak_level` (the "auto" level),
:func:`query_mask` (the mask PNGs), :func:`selection_masks` (where the PLY
selection lies in a view: the selected Gaussians rendered, or the 2D mask for
runs without per-Gaussian selections); :class:`RGBRunModel` gives an RGB-only
``train.py`` run the rendering half of :class:`QueryModel`
(:func:`load_viewable_run` loads either).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import Tensor

from ccl_gs.field.export import export_field_ply
from ccl_gs.field.language import LanguageField, QueryError, encode_queries, normalized_relevancy, select_gaussians
from ccl_gs.io.artifacts import atomic_path, write_json
from tqdm import tqdm


@dataclass
class RenderConfig:
    """Options of ``render.py``."""

    field_dir: Path = field(default=Path("outputs/scene/field"), metadata={"help": "Trained field folder (stage 3)."})
    out: Path = field(default=Path("outputs/scene/render"), metadata={"help": "Output folder."})
    queries: list[str] = field(default_factory=list, metadata={"help": "Text queries."})
    split: str = field(
        default="test", metadata={"help": "Views to render with --queries: train | test | all | path (a camera path)."}
    )
    path_frames: int = field(default=60, metadata={"help": "Frames of --split path."})
    lerf_labels: Path | None = field(
        default=None, metadata={"help": "LERF-OVS label folder of this scene: render its categories on its frames."}
    )
    ovs3d_data: Path | None = field(
        default=None, metadata={"help": "3D-OVS scene folder: render its classes on its segmentation views."}
    )
    relevancy: str = field(default="canonical", metadata={"help": "Relevancy form: canonical | softmax."})
    threshold: float = field(
        default=0.4,
        metadata={"help": "Threshold of masks and 3D selections on the normalized relevancy (the LERF-OVS rule)."},
    )
    write_png: bool = field(default=True, metadata={"help": "Write RGB / heat-map / mask PNGs."})
    write_selection: bool = field(default=True, metadata={"help": "Write one PLY of selected Gaussians (or LERF surface points) per query."})
    lerf_scales: int = field(default=30, metadata={"help": "LERF runs: scales searched in [0, 1.5] per query and view."})
    lerf_search_stride: int = field(
        default=1, metadata={"help": "LERF runs: the scale search looks at every n-th pixel row and column (1 = all, as LERF)."}
    )


def _save_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def heatmap_over(rgb: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """LERF's composite: relevancy ``[H, W]`` at or above 0.5 in turbo colours, plain ``rgb [H, W, 3]`` uint8 below.

    Above 0.5 (more likely the query than the hardest canonical phrase) the
    colour shows ``(rel - 0.5)`` scaled by its maximum, so a query's map shows
    where the object is and leaves the rest of the image untouched.
    """
    import cv2

    v = np.clip(np.asarray(rel, np.float32) - 0.5, 0, None)
    shown = v > 0
    if not shown.any():
        return rgb.copy()
    v = v / max(float(v.max()), 1e-6)
    col = cv2.applyColorMap((v * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    return np.where(shown[..., None], col, rgb).astype(np.uint8)


def make_encoder(spec: dict[str, Any]):
    """Rebuild the encoder that preprocessing used, from the spec stored in the manifests."""
    from ccl_gs.encoders import build_encoder

    if not spec:
        raise QueryError("the trained field does not record its text encoder; re-run preprocessing")
    return build_encoder(spec)


@dataclass
class RenderPlan:
    """Which views to render (``view index -> output stem``) with which queries."""

    queries: list[str]
    views: dict[int, str]
    ovs3d_classes: list[str] | None = None
    path: np.ndarray | None = None
    """``[F, 4, 4]`` camera-to-world poses of a camera path (``--split path``), else None."""


def camera_path(camtoworlds: np.ndarray, n_frames: int) -> np.ndarray:
    """A smooth path through cameras in their order: ``[V, 4, 4]`` -> ``[n_frames, 4, 4]`` camera-to-world.

    Positions are interpolated linearly and rotations by spherical linear
    interpolation between consecutive cameras, at evenly spaced parameters
    from the first camera to the last.
    """
    from scipy.spatial.transform import Rotation, Slerp

    V = camtoworlds.shape[0]
    if V == 1 or n_frames == 1:
        return np.repeat(camtoworlds[:1], n_frames, axis=0)
    t = np.linspace(0.0, V - 1.0, n_frames)
    keys = np.arange(V, dtype=np.float64)
    rots = Slerp(keys, Rotation.from_matrix(camtoworlds[:, :3, :3]))(t).as_matrix()
    out = np.tile(np.eye(4), (n_frames, 1, 1))
    out[:, :3, :3] = rots
    for k in range(3):
        out[:, k, 3] = np.interp(t, keys, camtoworlds[:, k, 3])
    return out


def feature_colors(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[d_f]`` and top-3 principal axes ``[d_f, 3]`` of per-Gaussian features ``[N, d_f]``, for display."""
    mean = features.mean(0)
    _, _, v = torch.pca_lowrank(features - mean, q=min(3, features.shape[1]), center=False)
    if v.shape[1] < 3:
        v = torch.cat([v, v.new_zeros(v.shape[0], 3 - v.shape[1])], 1)
    return mean, v


def features_png(feats: Tensor, mean: Tensor, axes: Tensor, scale: Tensor) -> np.ndarray:
    """Rendered features ``[H, W, d_f]`` -> ``[H, W, 3]`` uint8 through fixed principal axes (same colours in every view)."""
    x = ((feats - mean) @ axes) / scale  # [H, W, 3], about [-1, 1]
    return ((x.clamp(-1, 1) * 0.5 + 0.5) * 255 + 0.5).byte().cpu().numpy()


def plan(cfg: RenderConfig, scene, test_every: int) -> RenderPlan:
    """Resolve the queries and views of a render from the options and the benchmark files."""
    from ccl_gs.metrics.labels import load_scene_labels, ovs3d_view_index, ovs3d_views, read_ovs3d_classes

    n = len(scene)
    if cfg.lerf_labels is not None:
        frames = load_scene_labels(cfg.lerf_labels)
        cats: list[str] = []
        views = {}
        for fr in frames:
            if not 0 <= fr.image_index < n:
                raise QueryError(f"label {fr.path} names view {fr.image_index + 1} but the scene has {n} views")
            views[fr.image_index] = fr.frame_stem
            cats += [c for c in fr.categories if c not in cats]
        return RenderPlan(cats, views)
    if cfg.ovs3d_data is not None:
        seg = Path(cfg.ovs3d_data) / "segmentations"
        classes = read_ovs3d_classes(seg)
        views = {}
        for v in ovs3d_views(seg):
            i = ovs3d_view_index(v)  # the release reads folder "03" as image 3
            if not 0 <= i < n:
                raise QueryError(f"segmentation view {seg / v} names image {i} but the scene has {n} views")
            views[i] = v
        return RenderPlan(classes, views, ovs3d_classes=classes)
    if not cfg.queries:
        raise QueryError("no queries given (--queries, --lerf-labels or --ovs3d-data)")
    if cfg.split == "path":
        if cfg.path_frames < 1:
            raise QueryError(f"--path-frames must be >= 1, got {cfg.path_frames}")
        train = scene.views("train", test_every)
        return RenderPlan(list(cfg.queries), {}, path=camera_path(scene.camtoworlds[train], cfg.path_frames))
    if cfg.split not in ("train", "test", "all"):
        raise QueryError(f"--split must be train, test, all or path, got '{cfg.split}'")
    idx = scene.views(cfg.split, test_every)
    return RenderPlan(list(cfg.queries), {i: Path(scene.image_paths[i]).stem for i in idx})


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
"""Trained run kinds by name (``"semantic_field"``, ``"lerf"``); the first whose ``detect`` accepts the folder loads it."""
RUN_KIND_PLUGINS = ("ccl_gs.lerf.query",)
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
        from ccl_gs.splat.trainer import RGBTrainConfig, load_run_scene

        self.device = device
        self.lf = LanguageField.load(folder, device)
        check_current(folder)
        fcfg = from_dict(FieldConfig, read_json(Path(folder) / "config.json"))
        rgb_cfg_path = Path(folder) / "joint_rgb" / "config.json"
        if not rgb_cfg_path.exists():
            rgb_cfg_path = Path(fcfg.rgb_run) / "config.json"
        self.rgb_cfg = from_dict(RGBTrainConfig, read_json(rgb_cfg_path))
        self.scene = load_run_scene(self.rgb_cfg)
        self.test_every = self.rgb_cfg.test_every
        self.n_levels = self.lf.n_levels
        self.encoder_spec = self.lf.encoder_spec
        feats = self.lf.params["features"]
        self._mean, self._axes = feature_colors(feats)
        self._scale = 2 * ((feats - self._mean) @ self._axes).std(0).clamp_min(1e-6)
        self._selection: tuple[tuple, Tensor] | None = None

    def dataset(self, split: str):
        from ccl_gs.splat.trainer import make_dataset

        return make_dataset(self.rgb_cfg, self.scene, split, self.device)

    def check_encoder(self, encoder) -> None:
        self.lf.check_encoder(encoder)

    def render_view(self, item: dict[str, Any]) -> GaussianView:
        rgb = render_gaussian_rgb(self.lf.params, item, self.rgb_cfg.sh_degree, self.scene.white_background, self.device)
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
        return render_features(shown, view.item, self.device).permute(2, 0, 1)

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
                        device: torch.device) -> np.ndarray:
    """The colour of Gaussians (raw parameters) in one view: ``[H, W, 3]`` uint8."""
    from ccl_gs.splat.gaussians import render_rgb

    bg = torch.ones(3, device=device) if white_background else torch.zeros(3, device=device)
    colors, _, _ = render_rgb(
        params, item["viewmat"][None].to(device), item["K"][None].to(device),
        int(item["width"]), int(item["height"]), sh_degree=sh_degree, background=bg,
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
        rgb = render_gaussian_rgb(self.params, item, self.sh_degree, self.scene.white_background, self.device)
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
        "selected": selections,
        "seconds_per_view_all_queries": float(np.median(t_query)) if t_query else None,
    }
    write_json(out / "render.json", summary)
    return summary
