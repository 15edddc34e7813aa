"""What a render covers: its options (:class:`RenderConfig`) and the views and queries they name (:func:`plan`).

See :mod:`ccl_gs.field.render` for the views and queries of each option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ccl_gs.field.language import QueryError


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
    selection_rule: str = field(
        default="argmax",
        metadata={"help": "3D-selection protocol inputs (lerf_ovs_3d/): argmax (OpenGaussian) | canonical (Dr. Splat)."},
    )
    write_png: bool = field(default=True, metadata={"help": "Write RGB / heat-map / mask PNGs."})
    write_selection: bool = field(default=True, metadata={"help": "Write one PLY of selected Gaussians (or LERF surface points) per query."})
    lerf_scales: int = field(default=30, metadata={"help": "LERF runs: scales searched in [0, 1.5] per query and view."})
    lerf_search_stride: int = field(
        default=1, metadata={"help": "LERF runs: the scale search looks at every n-th pixel row and column (1 = all, as LERF)."}
    )

    def __post_init__(self) -> None:
        from ccl_gs.field.language import SELECTION_RULES

        if self.selection_rule not in SELECTION_RULES:
            raise ValueError(f"--selection-rule must be one of {', '.join(SELECTION_RULES)}, got '{self.selection_rule}'")


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
