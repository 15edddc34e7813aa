"""Codebook quality against known classes (pure NumPy functions).

Used to choose N on the synthetic benchmark and to check the method's point:
masks of one object should map to one prototype in every view.
"""

from __future__ import annotations

import numpy as np


def _contingency(assign: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``[C, J]`` counts of (class, prototype) over masks with ``class >= 0`` and ``assign >= 0``."""
    assign = np.asarray(assign, dtype=np.int64)
    classes = np.asarray(classes, dtype=np.int64)
    ok = (classes >= 0) & (assign >= 0)
    a, c = assign[ok], classes[ok]
    if a.size == 0:
        return np.zeros((0, 0), dtype=np.int64)
    _, c = np.unique(c, return_inverse=True)
    _, a = np.unique(a, return_inverse=True)
    table = np.zeros((c.max() + 1, a.max() + 1), dtype=np.int64)
    np.add.at(table, (c, a), 1)
    return table


def codebook_quality(assign: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """How well prototype choices match ground-truth classes.

    Args:
        assign: ``[M]`` int prototype index chosen by each mask.
        classes: ``[M]`` int ground-truth class of each mask, ``-1`` = ignore.
    Returns:
        ``purity``: fraction of masks whose prototype's majority class is their
        class (1 = no prototype mixes classes);
        ``completeness``: fraction of masks in their class's majority
        prototype (1 = no class is split over prototypes);
        ``classes_per_prototype``: mean distinct classes per used prototype;
        ``prototypes_per_class``: mean distinct prototypes per class;
        ``shared_prototypes``: number of prototypes chosen by >= 2 classes;
        ``n_used``: prototypes chosen by at least one counted mask;
        ``n_classes``, ``n_masks``.

    >>> q = codebook_quality(np.array([0, 0, 1, 1]), np.array([5, 5, 7, 7]))
    >>> q["purity"], q["completeness"], q["shared_prototypes"]
    (1.0, 1.0, 0)
    """
    t = _contingency(assign, classes)
    n = int(t.sum())
    if n == 0:
        return {
            "purity": float("nan"),
            "completeness": float("nan"),
            "classes_per_prototype": float("nan"),
            "prototypes_per_class": float("nan"),
            "shared_prototypes": 0,
            "n_used": 0,
            "n_classes": 0,
            "n_masks": 0,
        }
    present = t > 0
    return {
        "purity": float(t.max(axis=0).sum() / n),
        "completeness": float(t.max(axis=1).sum() / n),
        "classes_per_prototype": float(present.sum(axis=0).mean()),
        "prototypes_per_class": float(present.sum(axis=1).mean()),
        "shared_prototypes": int((present.sum(axis=0) >= 2).sum()),
        "n_used": int(t.shape[1]),
        "n_classes": int(t.shape[0]),
        "n_masks": n,
    }


def cross_view_consistency(assign: np.ndarray, labels: np.ndarray, views: np.ndarray) -> float:
    """Fraction of same-label mask pairs from *different* views that chose the same prototype.

    Every unordered pair ``(i, k)`` with ``labels[i] = labels[k] >= 0`` and
    ``views[i] != views[k]`` counts once. Computed from counts, not by
    enumerating pairs: for one label with ``c[v, j]`` masks of view ``v`` on
    prototype ``j``, the agreeing pairs are
    ``sum_j (s_j^2 - sum_v c[v, j]^2) / 2`` with ``s_j = sum_v c[v, j]``.

    Args:
        assign: ``[M]`` int prototype per mask.
        labels: ``[M]`` int label per mask, ``-1`` = unlabeled (ignored).
        views: ``[M]`` int view per mask.
    Returns:
        The fraction in ``[0, 1]``; NaN when there is no such pair.

    >>> cross_view_consistency(np.array([3, 3, 4]), np.array([1, 1, 1]), np.array([0, 1, 2]))
    0.3333333333333333
    """
    assign = np.asarray(assign, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    views = np.asarray(views, dtype=np.int64)
    ok = labels >= 0
    a, y, v = assign[ok], labels[ok], views[ok]
    if a.size == 0:
        return float("nan")
    _, y = np.unique(y, return_inverse=True)
    _, v = np.unique(v, return_inverse=True)
    _, a = np.unique(a, return_inverse=True)
    Y, V, J = y.max() + 1, v.max() + 1, a.max() + 1
    c = np.zeros((Y, V, J), dtype=np.int64)  # label x view x prototype
    np.add.at(c, (y, v, a), 1)
    s_yj = c.sum(axis=1)  # [Y, J]
    agree = (s_yj**2).sum() - (c**2).sum()
    n_yv = c.sum(axis=2)  # [Y, V]
    total = (n_yv.sum(axis=1) ** 2).sum() - (n_yv**2).sum()
    if total == 0:
        return float("nan")
    return float(agree / total)


def cross_view_similarity(
    prototypes: np.ndarray,  # [N, D] unit norm
    assign: np.ndarray,  # [M]
    labels: np.ndarray,  # [M]
    views: np.ndarray,  # [M]
) -> float:
    """Mean ``cos(T_{j_i}, T_{j_k})`` over same-label mask pairs from different views.

    The soft counterpart of :func:`cross_view_consistency`: how similar the
    supervision targets of one object are across views (1 - the mean
    ``L_pull`` over all such pairs). Computed from per-(label, view) sums
    ``S_yv = sum_i T_{j_i}``: ``sum_{pairs} T_i . T_k = |S_y|^2 - sum_v |S_yv|^2``
    (ordered pairs), divided by the number of ordered pairs.

    Args:
        prototypes: ``[N, D]`` unit-norm prototypes.
        assign: ``[M]`` int prototype per mask.
        labels: ``[M]`` int label per mask, ``-1`` ignored.
        views: ``[M]`` int view per mask.
    Returns:
        The mean cosine; NaN when there is no such pair.
    """
    prototypes = np.asarray(prototypes, dtype=np.float64)
    assign = np.asarray(assign, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    views = np.asarray(views, dtype=np.int64)
    ok = labels >= 0
    a, y, v = assign[ok], labels[ok], views[ok]
    if a.size == 0:
        return float("nan")
    _, y = np.unique(y, return_inverse=True)
    _, v = np.unique(v, return_inverse=True)
    Y, V = y.max() + 1, v.max() + 1
    S = np.zeros((Y, V, prototypes.shape[1]))
    np.add.at(S, (y, v), prototypes[a])
    n = np.zeros((Y, V))
    np.add.at(n, (y, v), 1.0)
    dots = (S.sum(axis=1) ** 2).sum() - (S**2).sum()
    total = (n.sum(axis=1) ** 2).sum() - (n**2).sum()
    if total == 0:
        return float("nan")
    return float(dots / total)
