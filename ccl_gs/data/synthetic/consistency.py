"""How inconsistent a simulated preprocess artifact's features are: the statistics behind a simulation level.

For every mask of a preprocess folder made from a synthetic scene with the
oracle encoder, per level (sp, wp):

* ``wrong_nearest``: the fraction of masks whose nearest text, among the
  scene's class names, their look-alike concepts
  (:data:`ccl_gs.encoders.drift.CONFUSERS`) and the scene's part names, is
  not the mask's ground-truth class (the class under most of its pixels);
* ``texts_per_track``: over tracks (labels >= 0) seen in at least two views,
  the mean number of distinct nearest texts one track gets across views
  (1 = consistent);
* ``prototypes_per_track``: the same count for the nearest codebook prototypes,
  when a codebook's assignment is given.

These say whether a level stresses what a codebook with pull / push claims to
repair (view-to-view disagreement of one object's features), see
``bench/bench_simulation.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ccl_gs.data.synthetic.gt import GroundTruth
from ccl_gs.encoders.drift import CONFUSERS
from ccl_gs.io.artifacts import load_npz


def text_set(gt: GroundTruth) -> tuple[list[str], np.ndarray]:
    """The texts a mask is compared with and the class id each stands for (``[T]``; 0 = not a class)."""
    names, owner = [], []
    for c, name in enumerate(gt.classes, start=1):
        names.append(name)
        owner.append(c)
    for name in gt.classes:
        for conf in CONFUSERS.get(name, ()):
            names.append(conf)
            owner.append(0)
    for part in sorted({p["name"] for p in gt.meta.get("parts", [])} - set(names)):
        names.append(part)
        owner.append(0)
    return names, np.asarray(owner, np.int64)


def mask_classes(index_maps: np.ndarray, n_masks: int, class_map: np.ndarray) -> np.ndarray:
    """Ground-truth class of every mask row: the class id under most of its pixels ``[M]`` (0 if none).

    Args:
        index_maps: ``[2, H, W]`` int rows of the preprocess features (-1 = none).
        class_map: ``[H, W]`` int class ids at the same size.
    """
    C = int(class_map.max()) + 1
    counts = np.zeros((n_masks, C), np.int64)
    for lvl in range(index_maps.shape[0]):
        rows = index_maps[lvl].ravel()
        ok = rows >= 0
        np.add.at(counts, (rows[ok], class_map.ravel()[ok]), 1)
    counts[:, 0] = 0
    return np.where(counts.sum(1) > 0, counts.argmax(1), 0)


def distinct_per_track(choice: np.ndarray, labels: np.ndarray, views: np.ndarray) -> float:
    """Mean over labels seen in >= 2 views of the number of distinct ``choice`` values (NaN if none)."""
    out = []
    for y in np.unique(labels[labels >= 0]):
        sel = labels == y
        if len(np.unique(views[sel])) >= 2:
            out.append(len(np.unique(choice[sel])))
    return float(np.mean(out)) if out else float("nan")


def feature_statistics(preprocessed: str | Path, encoder, assignment: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """The module's statistics per level of one preprocess folder.

    Args:
        preprocessed: a preprocess folder made with the oracle encoder on a synthetic scene.
        encoder: the oracle encoder of that folder (its texts and ground truth).
        assignment: ``[M]`` nearest prototype per mask row of the concatenated mask set (optional).
    Returns:
        ``{"sp": {...}, "wp": {...}}`` with ``wrong_nearest``, ``texts_per_track``, ``masks``
        and, with ``assignment``, ``prototypes_per_track``.
    """
    from ccl_gs.codebook.data import load_preprocessed
    from ccl_gs.encoders.oracle import _resample

    pre = load_preprocessed(preprocessed)
    ms = pre.masks
    gt = encoder.ground_truth
    names, owner = text_set(gt)
    T = F.normalize(encoder.encode_text(names), dim=1)  # [T, D]
    nearest = (F.normalize(ms.features, dim=1) @ T.T).argmax(1).numpy()  # [M]
    truth = np.zeros(len(nearest), np.int64)
    for v, stem in enumerate(ms.stems):
        lo, hi = ms.offsets[v], ms.offsets[v + 1]
        maps = load_npz(Path(preprocessed) / f"{stem}.npz", ("index_maps",))["index_maps"]
        cmap = _resample(torch.from_numpy(gt.view(gt.view_of_stem(stem))["class_id"].astype(np.int64)), maps.shape[1:]).numpy()
        truth[lo:hi] = mask_classes(maps, hi - lo, cmap)
    labels, views, levels = ms.labels.numpy(), ms.views.numpy(), ms.levels.numpy()
    out = {}
    for lvl, name in enumerate(("sp", "wp")):
        sel = (levels == lvl) & (truth > 0)
        row = {
            "masks": int(sel.sum()),
            "wrong_nearest": float((owner[nearest[sel]] != truth[sel]).mean()) if sel.any() else float("nan"),
            "texts_per_track": distinct_per_track(nearest[sel], labels[sel], views[sel]),
        }
        if assignment is not None:
            row["prototypes_per_track"] = distinct_per_track(np.asarray(assignment)[sel], labels[sel], views[sel])
        out[name] = row
    return out
