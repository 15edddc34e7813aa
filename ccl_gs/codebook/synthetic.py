"""A synthetic preprocess artifact with known classes, for tests and benchmarks.

Objects ``k = 0..K-1`` each have a *whole* centre and a *part* centre in
``R^D``. In view ``v`` the object's appearance moves along a view-dependent
circle, ``centre + view_noise * (cos(a_v) u_k + sin(a_v) w_k)`` with
``a_v = 2 pi v / V`` and random unit ``u_k, w_k`` per object, plus i.i.d.
noise: the cross-view inconsistency CCL is meant to absorb. Masks:

* level 1 (wp): one mask per visible object (its whole vertical stripe),
* level 0 (sp): one mask per visible object (the top half of its stripe),
* ``n_clutter`` unlabeled masks per view and level (random features, the
  bottom rows of the image).

Each labeled-able mask keeps its track label ``k + 1`` with probability
``p_label`` (else ``-1``, a tracking miss). The returned ground truth holds
the class of every mask (clutter: -1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ccl_gs import preprocess
from ccl_gs.io.artifacts import Manifest, save_npz_atomic


@dataclass
class SyntheticTruth:
    """Ground truth of :func:`write_synthetic_preprocess`, concatenated in image order."""

    classes: np.ndarray
    """``[M]`` int64 object class of each mask, -1 for clutter."""
    levels: np.ndarray
    """``[M]`` int64 level of each mask."""
    views: np.ndarray
    """``[M]`` int64 view of each mask."""
    stems: list[str]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def write_synthetic_preprocess(
    folder: str | Path,
    n_views: int = 8,
    n_classes: int = 6,
    dim: int = 32,
    view_noise: float = 0.6,
    iid_noise: float = 0.05,
    p_visible: float = 1.0,
    p_label: float = 0.8,
    n_clutter: int = 1,
    size: tuple[int, int] = (12, 16),
    seed: int = 0,
    encoder: str = "synthetic",
) -> SyntheticTruth:
    """Write a preprocess artifact (manifest + ``<stem>.npz``, the exact
    :mod:`ccl_gs.preprocess` format) of synthetic masks.

    Args:
        folder: output folder.
        size: ``(H, W)`` of the index maps; ``W`` must be at least the number
            of stripes (``n_classes``).
    Returns:
        The ground truth (:class:`SyntheticTruth`).
    """
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    H, W = size
    whole = _unit(rng.normal(size=(n_classes, dim)))
    part = _unit(whole + 0.8 * _unit(rng.normal(size=(n_classes, dim))))
    u = _unit(rng.normal(size=(2, n_classes, dim)))  # view circle directions (whole, part share them)
    w = _unit(rng.normal(size=(2, n_classes, dim)))
    stems = [f"view_{v:03d}" for v in range(n_views)]
    manifest = Manifest(
        kind=preprocess.KIND,
        format_version=preprocess.FORMAT_VERSION,
        config={"synthetic": {"n_views": n_views, "n_classes": n_classes, "dim": dim, "seed": seed}},
        inputs={},
        extra={
            "encoder": {"kind": "synthetic", "options": {}, "name": encoder, "dim": dim},
            "images": stems,
            "image_info": [{"stem": s, "file": f"{s}.png", "height": H, "width": W} for s in stems],
            "levels": ["sp", "wp"],
        },
    )
    fingerprint = np.array(manifest.fingerprint())
    classes, levels, views = [], [], []
    edges = np.linspace(0, W, n_classes + 1).astype(int)
    clutter_rows = max(1, H // 4)
    for v, stem in enumerate(stems):
        a = 2 * np.pi * v / n_views
        visible = rng.random(n_classes) < p_visible
        feats, labs, levs, cls = [], [], [], []
        index_maps = np.full((2, H, W), -1, dtype=np.int32)
        for lvl, centres in ((0, part), (1, whole)):
            for k in np.nonzero(visible)[0]:
                f = centres[k] + view_noise * (np.cos(a) * u[lvl, k] + np.sin(a) * w[lvl, k])
                f = f + iid_noise * rng.normal(size=dim)
                row = len(feats)
                feats.append(_unit(f))
                labs.append(k + 1 if rng.random() < p_label else -1)
                levs.append(lvl)
                cls.append(k)
                x0, x1 = edges[k], edges[k + 1]
                y1 = (H - clutter_rows) // 2 if lvl == 0 else H - clutter_rows
                index_maps[lvl, :y1, x0:x1] = row
            cx = np.linspace(0, W, n_clutter + 1).astype(int)
            for c in range(n_clutter):
                row = len(feats)
                feats.append(_unit(rng.normal(size=dim)))
                labs.append(-1)
                levs.append(lvl)
                cls.append(-1)
                index_maps[lvl, H - clutter_rows :, cx[c] : cx[c + 1]] = row
        M = len(feats)
        save_npz_atomic(
            folder / f"{stem}.npz",
            features=np.asarray(feats, dtype=np.float16).reshape(M, dim),
            index_maps=index_maps,
            labels=np.asarray(labs, dtype=np.int32),
            levels=np.asarray(levs, dtype=np.int8),
            fingerprint=fingerprint,
        )
        classes += cls
        levels += levs
        views += [v] * M
    manifest.save(folder)
    return SyntheticTruth(
        classes=np.asarray(classes, dtype=np.int64),
        levels=np.asarray(levels, dtype=np.int64),
        views=np.asarray(views, dtype=np.int64),
        stems=stems,
    )
