"""The same rule written straightforwardly (Python loops over pairs and masks), for tests and ``bench/bench_masks.py``.

:func:`two_level_masks_reference` gives the same outputs as
:func:`~ccl_gs.masks.merge.vectorized.two_level_masks`; see :mod:`ccl_gs.masks.merge`.
"""

from __future__ import annotations

import numpy as np
import torch

from ccl_gs.masks.merge.config import LEVEL_GRANULARITIES, PRIORITIES, MergeConfig, _check_raw
from ccl_gs.masks.types import GRANULARITIES, LEVELS, LevelMasks, RawMasks


def mask_nms_reference(
    masks: np.ndarray,  # [N, H, W] bool
    scores: np.ndarray,  # [N] float32
    iou_thr: float,
    score_thr: float | None = None,
    inner_thr: float | None = None,
    inner_cover: float = 0.85,
    outer_cover: float = 0.5,
    fallback_topk: int = 3,
) -> np.ndarray:
    """LangSplat's ``mask_nms`` as written there: a Python loop over pairs, numpy per pair.

    Returns ``[N]`` bool kept masks. O(N^2) full-image operations: slow on purpose.
    """
    n = len(scores)
    keep_out = np.zeros(n, dtype=bool)
    if n == 0:
        return keep_out
    f32 = np.float32
    order = np.argsort(-scores.astype(f32), kind="stable")
    s = scores.astype(f32)[order]
    ms = masks[order]
    area = np.array([m.sum() for m in ms], dtype=f32)
    iou = np.zeros((n, n), dtype=f32)
    nested = np.zeros((n, n), dtype=f32)
    c_in, c_out = f32(inner_cover), f32(outer_cover)
    for i in range(n):
        for j in range(i, n):
            inter = f32(np.logical_and(ms[i], ms[j]).sum())
            union = f32(np.logical_or(ms[i], ms[j]).sum())
            iou[i, j] = inter / union
            ri, rj = inter / area[i], inter / area[j]
            if ri < c_out and rj >= c_in:
                nested[i, j] = f32(1) - rj * ri
            if ri >= c_in and rj < c_out:
                nested[j, i] = f32(1) - rj * ri
    keep = np.triu(iou, 1).max(axis=0) <= f32(iou_thr)
    top = np.zeros(n, dtype=bool)
    top[: min(fallback_topk, n)] = True
    if score_thr is not None:
        keep_conf = s > f32(score_thr)
        if not keep_conf.any():
            keep_conf |= top
        keep &= keep_conf
    if inner_thr is not None:
        bound = f32(1 - inner_thr)
        keep_u = np.triu(nested, 1).max(axis=0) <= bound
        keep_l = np.tril(nested, 1).max(axis=0) <= bound
        if not keep_u.any():
            keep_u |= top
        if not keep_l.any():
            keep_l |= top
        keep &= keep_u & keep_l
    keep_out[order[keep]] = True
    return keep_out


def two_level_masks_reference(raw: RawMasks, cfg: MergeConfig | None = None) -> LevelMasks:
    """:func:`two_level_masks` written straightforwardly (loops over pairs and masks)."""
    cfg = cfg or MergeConfig()
    _check_raw(raw)
    m_all, h, w = raw.masks.shape
    areas_all = raw.masks.reshape(m_all, h * w).sum(axis=1)
    cand = np.nonzero(areas_all >= cfg.min_area)[0]
    masks = raw.masks[cand]
    g = raw.granularity.astype(np.int64)[cand]
    s = raw.scores.astype(np.float32)[cand]
    areas = areas_all[cand]

    survive = np.zeros(len(cand), dtype=bool)
    for k in range(len(GRANULARITIES)):
        idx = np.nonzero(g == k)[0]
        keep = mask_nms_reference(
            masks[idx], s[idx], cfg.iou_thr, cfg.score_thr, cfg.inner_thr,
            cfg.inner_cover, cfg.outer_cover, cfg.fallback_topk,
        )
        survive[idx[keep]] = True

    rows, levels = [], []
    index_maps = np.full((len(LEVELS), h, w), -1, dtype=np.int32)
    for li, name in enumerate(LEVELS):
        own, shared = LEVEL_GRANULARITIES[name]
        idx = np.nonzero(survive & ((g == own) | (g == shared)))[0]
        idx = idx[mask_nms_reference(masks[idx], s[idx], cfg.cross_iou_thr)]
        key = PRIORITIES[cfg.priority](
            torch.from_numpy(s[idx]), torch.from_numpy(areas[idx]), torch.from_numpy(g[idx]), own
        ).numpy()

        def paint_loop(sel: np.ndarray) -> np.ndarray:
            seg = np.full((h, w), -1, dtype=np.int64)
            order = sel[np.argsort(key[sel], kind="stable")]
            for r in order[::-1]:  # worst first; the best is painted last and wins
                seg[masks[idx[r]]] = r
            return seg

        sel = np.arange(len(idx))
        seg = paint_loop(sel)
        thr = np.maximum(np.ceil(areas[idx].astype(np.float64) * cfg.min_visible_fraction), cfg.min_visible_area)
        sel = np.array([r for r in sel if (seg == r).sum() >= thr[r]], dtype=np.int64)
        seg = paint_loop(sel)
        order = sel[np.argsort(key[sel], kind="stable")]
        base = sum(len(r) for r in rows)
        for new, r in enumerate(order):
            index_maps[li][seg == r] = base + new
        rows.append(idx[order])
        levels.append(np.full(len(order), li, dtype=np.int8))

    rows_all = np.concatenate(rows)
    k_total = len(rows_all)
    out = np.zeros((k_total, h, w), dtype=bool)
    for li in range(len(LEVELS)):
        for r in range(k_total):
            out[r] |= index_maps[li] == r
    return LevelMasks(
        masks=out,
        levels=np.concatenate(levels),
        index_maps=index_maps,
        scores=s[rows_all],
        granularity=g[rows_all].astype(np.int8),
    )
