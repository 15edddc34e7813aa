"""Evaluating frames, scenes and a whole run (:class:`LerfOvsEvalConfig`) from the render files, and the summary.

See :mod:`ccl_gs.metrics.lerf_ovs` for the protocol and the input layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ccl_gs.metrics.labels import EvalInputError, LabelledFrame, load_scene_labels
from ccl_gs.metrics.lerf_ovs.layout import load_render, query_slug, render_path
from ccl_gs.metrics.lerf_ovs.protocol import MASK_THRESHOLD, localization_points, mask_iou, points_in_boxes, segment


@dataclass
class QueryResult:
    """Outcome of one (frame, query) pair."""

    iou: float
    """Segmentation IoU at the chosen level."""
    level: int
    """Level chosen for segmentation (largest smoothed peak)."""
    hit: bool
    """Localization hit."""
    loc_level: int
    """Level chosen for localization (largest box-filtered peak)."""


@dataclass
class SceneResult:
    """Results of one scene."""

    scene: str
    miou: float
    """Mean IoU over the scene's (frame, query) pairs."""
    loc_acc: float
    """Localization hits / (frame, query) pairs."""
    n_pairs: int
    frames: dict[str, dict[str, QueryResult]] = field(default_factory=dict)
    """``frame_stem -> query -> result``."""


def evaluate_frame(
    frame: LabelledFrame,
    renders: str | Path,
    scene: str,
    threshold: float = MASK_THRESHOLD,
    resize: Literal["bilinear", "error"] = "bilinear",
    levels: int | None = None,
) -> tuple[dict[str, QueryResult], int]:
    """Evaluate every category of one labelled frame from its render files.

    Args:
        levels: expected ``L`` (all renders of a scene must agree); ``None`` accepts any.

    Returns:
        ``(query -> result, L)``.

    Raises:
        EvalInputError: the frame has no render folder, a query has no
            render, a render is malformed, or its level count differs from ``levels``.
    """
    folder = Path(renders) / scene / frame.frame_stem
    if not folder.is_dir():
        raise EvalInputError(f"label file {frame.path} has no render folder {folder}")
    slugs: dict[str, str] = {}
    for q in frame.categories:
        s = query_slug(q)
        if s in slugs:
            raise EvalInputError(f"label file {frame.path}: queries {slugs[s]!r} and {q!r} share the file name {s}.npy")
        slugs[s] = q
    out: dict[str, QueryResult] = {}
    for q in frame.categories:
        path = render_path(renders, scene, frame.frame_stem, q)
        rel = load_render(path, frame.height, frame.width, resize)
        if levels is not None and rel.shape[0] != levels:
            raise EvalInputError(f"render {path} has {rel.shape[0]} levels, other renders of scene '{scene}' have {levels}")
        levels = rel.shape[0]
        mask, level = segment(rel, threshold)
        points, loc_level = localization_points(rel)
        out[q] = QueryResult(
            iou=mask_iou(mask, frame.masks[q]),
            level=level,
            hit=points_in_boxes(points, frame.bboxes[q]),
            loc_level=loc_level,
        )
    assert levels is not None  # a parsed frame has at least one category
    return out, levels


def evaluate_scene(
    renders: str | Path,
    labels: str | Path,
    scene: str,
    threshold: float = MASK_THRESHOLD,
    resize: Literal["bilinear", "error"] = "bilinear",
) -> SceneResult:
    """Evaluate one scene: every ``<labels>/<scene>/frame_*.json`` against ``<renders>/<scene>``."""
    frames = load_scene_labels(Path(labels) / scene)
    if not (Path(renders) / scene).is_dir():
        raise EvalInputError(f"missing render folder for scene '{scene}': {Path(renders) / scene}")
    result = SceneResult(scene=scene, miou=math.nan, loc_acc=math.nan, n_pairs=0)
    levels = None
    for frame in frames:
        res, levels = evaluate_frame(frame, renders, scene, threshold, resize, levels)
        result.frames[frame.frame_stem] = res
    pairs = [r for fr in result.frames.values() for r in fr.values()]
    result.n_pairs = len(pairs)
    result.miou = float(np.mean([r.iou for r in pairs]))
    result.loc_acc = float(np.mean([r.hit for r in pairs]))
    return result


@dataclass
class LerfOvsEvalConfig:
    """Configuration of a LERF-OVS evaluation run."""

    renders: Path = field(
        metadata={"help": "folder of renders laid out as <renders>/<scene>/<frame_stem>/<query_slug>.npy, float32 [L, H, W]"}
    )
    labels: Path = field(metadata={"help": "LERF-OVS label folder holding <scene>/frame_XXXXX.json (LangSplat release)"})
    # A str, not a Path, so that a trailing "/" (a folder, refused) survives parsing.
    out: str = field(metadata={"help": "JSON file to write the results to (a file name, not a folder)"})
    scenes: list[str] = field(
        default_factory=list, metadata={"help": "scenes to evaluate (default: every folder of --labels with frame_*.json)"}
    )
    mask_thresh: float = field(default=MASK_THRESHOLD, metadata={"help": "segmentation mask threshold (LangSplat)"})
    resize: Literal["bilinear", "error"] = field(
        default="bilinear",
        metadata={"help": "renders of another size than the annotation: bilinear resize (same aspect ratio) or error"},
    )
    protocol: Literal["2d", "3d"] = field(
        default="2d",
        metadata={"help": "2d: LangSplat's (relevancy maps; mIoU, localization); 3d: the 3D-selection protocol of "
                          "OpenGaussian (renders = render.py's lerf_ovs_3d/; mIoU, mAcc@0.25)"},
    )


def scene_names(labels: str | Path, scenes: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The scenes to evaluate: ``scenes`` if given (each must exist), else every labelled folder."""
    root = Path(labels)
    if not root.is_dir():
        raise EvalInputError(f"missing label folder: {root} (--labels)")
    if scenes:
        for s in scenes:
            if not (root / s).is_dir():
                raise EvalInputError(f"scene '{s}' (--scenes) has no label folder {root / s}")
        return list(scenes)
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("frame_*.json")))
    if not found:
        raise EvalInputError(f"no <scene>/frame_*.json under {root} (--labels)")
    return found


def evaluate(cfg: LerfOvsEvalConfig) -> tuple[list[SceneResult], dict]:
    """Evaluate every scene of ``cfg``.

    Returns:
        ``(per-scene results, JSON-able report)``; the report holds the
        protocol name, the config, per-scene figures and per-pair details,
        and :func:`summarize`.
    """
    if not Path(cfg.renders).is_dir():
        raise EvalInputError(f"missing render folder: {cfg.renders} (--renders)")
    if cfg.protocol == "3d":
        from ccl_gs.metrics.lerf_ovs import selection3d

        res3 = [selection3d.evaluate_scene_3d(cfg.renders, cfg.labels, s, resize=cfg.resize)
                for s in scene_names(cfg.labels, cfg.scenes)]
        return res3, {
            "benchmark": "lerf_ovs",
            "protocol": f"{selection3d.PROTOCOL} (OpenGaussian scripts/compute_lerf_iou.py: selected Gaussians rendered "
                        f"alone, opacity > {selection3d.OPACITY_THRESHOLD}; mIoU, mAcc@{selection3d.ACC_IOU})",
            "config": cfg,
            "scenes": {r.scene: {"miou": r.miou, "acc_25": r.acc_25, "n_pairs": r.n_pairs, "frames": r.frames} for r in res3},
            **selection3d.summarize_3d(res3),
        }
    if cfg.protocol != "2d":
        raise EvalInputError(f"--protocol must be 2d or 3d, got '{cfg.protocol}'")
    results = [
        evaluate_scene(cfg.renders, cfg.labels, s, cfg.mask_thresh, cfg.resize) for s in scene_names(cfg.labels, cfg.scenes)
    ]
    report = {
        "benchmark": "lerf_ovs",
        "protocol": "LangSplat eval/evaluate_iou_loc.py (segmentation mIoU, localization accuracy)",
        "config": cfg,
        "scenes": {r.scene: {"miou": r.miou, "loc_acc": r.loc_acc, "n_pairs": r.n_pairs, "frames": r.frames} for r in results},
        **summarize(results),
    }
    return results, report


def summarize(scenes: list[SceneResult]) -> dict:
    """Mean over scenes (the papers' "mean" column) and pooled over all (frame, query) pairs."""
    pairs = [r for s in scenes for fr in s.frames.values() for r in fr.values()]
    return {
        "mean_over_scenes": {
            "miou": float(np.mean([s.miou for s in scenes])),
            "loc_acc": float(np.mean([s.loc_acc for s in scenes])),
        },
        "pooled": {
            "miou": float(np.mean([r.iou for r in pairs])),
            "loc_acc": float(np.mean([r.hit for r in pairs])),
            "n_pairs": len(pairs),
        },
    }
