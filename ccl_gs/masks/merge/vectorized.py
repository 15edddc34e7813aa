"""The merge on the arrangement's cells: vectorized mask NMS, non-overlap painting and :func:`two_level_masks`.

See :mod:`ccl_gs.masks.merge` for the rule and how it is fast.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ccl_gs.masks.merge.config import LEVEL_GRANULARITIES, PRIORITIES, MergeConfig, _check_raw, priority_order
from ccl_gs.masks.merge.regions import MaskRegions, mask_regions
from ccl_gs.masks.types import GRANULARITIES, LEVELS, LevelMasks, RawMasks


# ---------------------------------------------------------------------------
# NMS


def mask_nms(
    inter: Tensor,  # [N, N] int64
    areas: Tensor,  # [N] int64
    scores: Tensor,  # [N] float32
    iou_thr: float,
    score_thr: float | None = None,
    inner_thr: float | None = None,
    inner_cover: float = 0.85,
    outer_cover: float = 0.5,
    fallback_topk: int = 3,
) -> Tensor:
    """LangSplat's mask NMS on precomputed intersections, vectorized and exact.

    Args:
        inter: ``[N, N]`` int64 pairwise intersection pixel counts.
        areas: ``[N]`` int64 pixel counts (all > 0).
        scores: ``[N]`` float32 predicted IoU x stability.
        iou_thr: remove a mask overlapping a higher-scored one with IoU above this.
        score_thr: remove masks scoring ``<= score_thr``; None disables the test.
        inner_thr: nesting threshold (see the module docstring); None disables it.
        inner_cover, outer_cover: what counts as nested (0.85 / 0.5 in LangSplat).
        fallback_topk: a test nobody passes lets this many best-scored masks through.

    Returns:
        ``[N]`` bool: the kept masks.
    """
    n = scores.shape[0]
    keep_out = torch.zeros(n, dtype=torch.bool, device=scores.device)
    if n == 0:
        return keep_out
    order = torch.sort(scores.float(), descending=True, stable=True).indices
    s = scores.float()[order]
    it = inter[order][:, order]
    ar = areas[order]
    inter_f = it.float()
    area_f = ar.float()
    union_f = (ar[:, None] + ar[None, :] - it).float()
    upper = torch.ones(n, n, dtype=torch.bool, device=s.device).triu_(1)

    iou = torch.where(upper, inter_f / union_f, torch.zeros((), device=s.device))
    keep = iou.max(dim=0).values <= iou_thr

    top = torch.zeros(n, dtype=torch.bool, device=s.device)
    top[: min(fallback_topk, n)] = True

    if score_thr is not None:
        keep_conf = s > score_thr
        if not bool(keep_conf.any()):
            keep_conf = keep_conf | top
        keep &= keep_conf

    if inner_thr is not None:
        r_row = inter_f / area_f[:, None]  # I / |i|, i = row (higher score)
        r_col = inter_f / area_f[None, :]  # I / |j|, j = column
        nested_val = 1 - r_col * r_row
        zero = torch.zeros((), device=s.device)
        # column mask j inside row mask i (i scores higher) -> entry [i, j]
        up = torch.where(upper & (r_row < outer_cover) & (r_col >= inner_cover), nested_val, zero)
        # row mask i (higher score) inside column mask j -> entry [j, i]
        low = torch.where(upper & (r_row >= inner_cover) & (r_col < outer_cover), nested_val, zero).T
        nested = up + low
        bound = 1 - inner_thr
        keep_u = torch.triu(nested, diagonal=1).max(dim=0).values <= bound
        keep_l = torch.tril(nested, diagonal=1).max(dim=0).values <= bound
        if not bool(keep_u.any()):
            keep_u = keep_u | top
        if not bool(keep_l.any()):
            keep_l = keep_l | top
        keep &= keep_u & keep_l

    keep_out[order[keep]] = True
    return keep_out


# ---------------------------------------------------------------------------
# Non-overlap painting


def paint(members: Tensor, key: Tensor) -> Tensor:
    """Winner of each cell: the covering mask with the smallest key (ties: lower row).

    Args:
        members: ``[N, U]`` bool cell coverage.
        key: ``[N]`` priority keys.

    Returns:
        ``[U]`` int64 row of the winning mask, -1 for cells no mask covers.
    """
    n, u = members.shape
    dev = members.device
    order = priority_order(key)  # rank -> row
    rank = torch.empty(n, dtype=torch.int64, device=dev)
    rank[order] = torch.arange(n, device=dev)
    best = torch.where(members, rank[:, None], torch.full((), n, device=dev)).amin(dim=0) if n else None
    row_of_rank = torch.cat([order, torch.full((1,), -1, dtype=torch.int64, device=dev)])
    return row_of_rank[best] if n else torch.full((u,), -1, dtype=torch.int64, device=dev)


def _visible_threshold(areas: Tensor, cfg: MergeConfig) -> Tensor:
    frac = torch.ceil(areas.double() * cfg.min_visible_fraction).long()
    return torch.clamp(frac, min=cfg.min_visible_area)


# ---------------------------------------------------------------------------
# The merge


def two_level_masks(raw: RawMasks, cfg: MergeConfig | None = None, device: str | torch.device = "cpu") -> LevelMasks:
    """Merge three-granularity SAM masks into the sp / wp levels (rule: module docstring).

    Args:
        raw: candidates; ``raw.masks`` ``[M, H, W]`` bool, ``raw.granularity`` ``[M]``
            in {0, 1, 2}, ``raw.scores`` ``[M]`` float32.
        cfg: thresholds; defaults to :class:`MergeConfig()`.
        device: where the set operations run (``"cuda"`` works the same way).

    Returns:
        :class:`LevelMasks` with ``masks`` ``[K, H, W]`` (the visible parts),
        ``levels`` ``[K]``, ``index_maps`` ``[2, H, W]`` int32, ``scores`` ``[K]``
        and ``granularity`` ``[K]`` of the kept rows.
    """
    cfg = cfg or MergeConfig()
    _check_raw(raw)
    m_all, h, w = raw.masks.shape
    dev = torch.device(device)
    masks = torch.from_numpy(raw.masks).to(dev).reshape(m_all, h * w)
    gran = torch.from_numpy(raw.granularity.astype(np.int64)).to(dev)
    scores = torch.from_numpy(raw.scores.astype(np.float32)).to(dev)

    regions = mask_regions(masks)
    areas_all = regions.areas()
    cand = torch.nonzero(areas_all >= cfg.min_area).squeeze(1)
    regions = MaskRegions(regions.labels, regions.members[cand], regions.counts)
    inter = regions.intersections()
    areas = areas_all[cand]
    g = gran[cand]
    s = scores[cand]

    # 2. per-granularity LangSplat NMS
    survive = torch.zeros(cand.numel(), dtype=torch.bool, device=dev)
    for k in range(len(GRANULARITIES)):
        idx = torch.nonzero(g == k).squeeze(1)
        keep = mask_nms(
            inter[idx][:, idx], areas[idx], s[idx], cfg.iou_thr, cfg.score_thr, cfg.inner_thr,
            cfg.inner_cover, cfg.outer_cover, cfg.fallback_topk,
        )
        survive[idx[keep]] = True

    rows_cand: list[Tensor] = []
    level_of_row: list[Tensor] = []
    index_maps = torch.full((len(LEVELS), h * w), -1, dtype=torch.int32, device=dev)
    offset = 0
    for li, name in enumerate(LEVELS):
        own, shared = LEVEL_GRANULARITIES[name]
        # 3. level union, cross-granularity duplicates
        idx = torch.nonzero(survive & ((g == own) | (g == shared))).squeeze(1)
        keep = mask_nms(inter[idx][:, idx], areas[idx], s[idx], cfg.cross_iou_thr)
        idx = idx[keep]
        key = PRIORITIES[cfg.priority](s[idx], areas[idx], g[idx], own)
        # 4./5. paint, drop (nearly) empty, repaint
        winner = paint(regions.members[idx], key)
        visible = torch.bincount(winner[winner >= 0], weights=regions.counts[winner >= 0].double(), minlength=idx.numel())
        ok = visible.round().long() >= _visible_threshold(areas[idx], cfg)
        idx, key = idx[ok], key[ok]
        order = priority_order(key)
        idx, key = idx[order], key[order]
        winner = paint(regions.members[idx], key)
        cell_row = torch.where(winner >= 0, winner + offset, winner).to(torch.int32)
        index_maps[li] = cell_row[regions.labels]
        rows_cand.append(idx)
        level_of_row.append(torch.full((idx.numel(),), li, dtype=torch.int8, device=dev))
        offset += idx.numel()

    rows = torch.cat(rows_cand)
    levels = torch.cat(level_of_row)
    k_total = rows.numel()
    out_masks = torch.zeros(k_total, h * w, dtype=torch.bool, device=dev)
    for li in range(len(LEVELS)):
        imap = index_maps[li].long()
        hit = imap >= 0
        out_masks[imap[hit], torch.nonzero(hit).squeeze(1)] = True
    return LevelMasks(
        masks=out_masks.reshape(k_total, h, w).cpu().numpy(),
        levels=levels.cpu().numpy(),
        index_maps=index_maps.reshape(len(LEVELS), h, w).cpu().numpy(),
        scores=s[rows].cpu().numpy().astype(np.float32),
        granularity=g[rows].to(torch.int8).cpu().numpy(),
    )
