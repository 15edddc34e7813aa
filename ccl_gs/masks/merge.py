"""The CCL-LGS two-level merge: SAM masks at three granularities -> two levels of
non-overlapping masks and their per-pixel index maps, vectorized.

The rule
========

Input: :class:`~ccl_gs.masks.types.RawMasks` (candidates with a granularity in
{subpart, part, whole} and a score = SAM predicted IoU x stability score).
Output: :class:`~ccl_gs.masks.types.LevelMasks` for the two levels
``sp = subpart + part`` and ``wp = whole + part`` (CCL-LGS, Sec. 3.2).

1. **Candidates.** Masks with fewer than ``min_area`` pixels are dropped (an
   empty mask has no IoU; LangSplat's loop would divide by zero).
2. **Per-granularity mask NMS** - LangSplat's ``mask_nms`` as called by
   ``masks_update(..., iou_thr=0.8, score_thr=0.7, inner_thr=0.5)`` in
   LangSplat ``preprocess.py`` (github.com/minghanqin/LangSplat), which the
   CCL-LGS preprocessing inherits. Masks are sorted by score, descending
   (stable: ties keep input order). Mask ``j`` is removed when

   * its score is ``<= score_thr`` (0.7);
   * some higher-scoring mask ``i`` has ``IoU(i, j) > iou_thr`` (0.8);
   * it is nested: a mask ``i`` (higher *or* lower score) holds
     ``>= 0.85`` of ``j`` while ``j`` covers ``< 0.5`` of ``i``; LangSplat
     then scores the pair ``1 - (I/|j|)(I/|i|)`` (always > 0.575) and removes
     ``j`` when that exceeds ``1 - inner_thr`` (0.5). The 0.85 / 0.5 constants
     are hard-coded in LangSplat's loop; they are ``inner_cover`` /
     ``outer_cover`` here.

   This is *not* greedy NMS: a suppressed mask still suppresses others (the
   reference takes column maxima of the full upper-triangular IoU matrix), so
   the rule has no sequential dependency and its vectorized form below is
   exact. LangSplat's fallback "if no mask passes a test, let the 3 best-scored
   through" crashes there (``keep_conf[index, 0]`` on a 1-D tensor); we apply
   it as intended (``fallback_topk``). LangSplat's lower-triangular nesting
   matrix is taken with ``torch.tril(..., diagonal=1)``, which also admits the
   first superdiagonal; we keep that quirk, so the results are the same mask
   for mask.
3. **Level union.** For each level the survivors of its two granularities are
   pooled; cross-granularity duplicates (the same region predicted as, e.g.,
   both subpart and part) are removed by the same rule with the IoU test only
   (no score or nesting test: nesting across granularities *is* the hierarchy).
4. **Non-overlap.** Each pixel goes to the covering mask of highest priority.
   Priorities are a registry (:data:`PRIORITIES`): ``"score"`` (default: the
   larger predicted IoU x stability wins a contested pixel), ``"area"``
   (the smaller mask wins, so parts stay visible on top of wholes) and
   ``"granularity"`` (the level's own granularity - subpart for sp, whole for
   wp - before part, then score). The CCL-LGS release was not available to us;
   the default follows our design notes (DESIGN.md, stage 1).
5. **Empty masks.** A mask left with fewer than ``max(min_visible_area,
   min_visible_fraction * area)`` visible pixels is dropped and the pixels are
   painted again without it (they go to the next covering mask). Dropping only
   enlarges the others' visible parts, so one repaint is final.
6. **Output.** Rows: sp masks then wp masks, each in priority order; the masks
   are the visible (non-overlapping) parts; ``index_maps[l]`` holds the row
   covering each pixel at level ``l`` and -1 where no mask does.

How it is fast
==============

Every set operation above needs only pairwise intersection counts, areas and
"who covers this pixel". :func:`mask_regions` splits the image into the cells of
the masks' arrangement (pixels covered by exactly the same set of masks): the
masks are bit-packed per pixel into 64-bit words, runs of equal words along
image rows are found, a random linear hash of each run's words is uniqued once
(one sort over the runs) and the grouping is verified exactly against the words. With ``U`` cells (a few thousand for hundreds of
masks), pairwise intersections are one ``[N, U] @ [U, N]`` product with cell
sizes as weights, exact in float64, and painting is a per-cell ``argmin`` of
priority ranks. No Python loop runs over pairs, masks or pixels; the loops left
are over the 8 bits of a byte and over the three granularities / two levels.

:func:`two_level_masks_reference` is the same rule written straightforwardly
(a Python loop over pairs with numpy, like LangSplat's ``mask_nms``, and a
painting loop over masks); tests and ``bench/bench_masks.py`` check that both
give identical outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ccl_gs.masks.types import GRANULARITIES, LEVELS, LevelMasks, RawMasks

SUBPART, PART, WHOLE = 0, 1, 2
LEVEL_GRANULARITIES: dict[str, tuple[int, int]] = {"sp": (SUBPART, PART), "wp": (WHOLE, PART)}
"""Granularities pooled into each level; the first is the level's own (CCL-LGS Sec. 3.2)."""


@dataclass
class MergeConfig:
    """Thresholds of the two-level merge (defaults: LangSplat ``preprocess.py``)."""

    iou_thr: float = field(
        default=0.8,
        metadata={"help": "A mask is removed when a higher-scored mask of its granularity overlaps it with IoU above this (LangSplat masks_update)."},
    )
    score_thr: float = field(
        default=0.7,
        metadata={"help": "Masks whose predicted IoU x stability is not above this are removed (LangSplat masks_update)."},
    )
    inner_thr: float = field(
        default=0.5,
        metadata={"help": "Nested masks are removed when 1 - (I/|small|)(I/|big|) exceeds 1 - inner_thr (LangSplat masks_update)."},
    )
    inner_cover: float = field(
        default=0.85,
        metadata={"help": "A mask counts as nested when at least this fraction of it lies inside another (LangSplat mask_nms)."},
    )
    outer_cover: float = field(
        default=0.5,
        metadata={"help": "... and it covers less than this fraction of that other mask (LangSplat mask_nms)."},
    )
    fallback_topk: int = field(
        default=3,
        metadata={"help": "When no mask of a granularity passes a test, this many best-scored masks pass it (LangSplat mask_nms)."},
    )
    cross_iou_thr: float = field(
        default=0.9,
        metadata={"help": "Within a level, a mask of one granularity duplicating a higher-scored mask (IoU above this) is removed."},
    )
    min_area: int = field(
        default=1,
        metadata={"help": "Candidate masks with fewer pixels are dropped before NMS (at least 1: empty masks have no IoU)."},
    )
    priority: str = field(
        default="granularity",
        metadata={
            "help": "Who wins a pixel covered by several masks of a level: 'granularity' (the level's own granularity "
            "first - subparts in sp, wholes in wp - parts fill the rest; by score within), 'score' or 'area' "
            "(smaller wins). With 'score', a part that outscores its whole takes the whole's pixels and wp stops "
            "being object-level."
        },
    )
    min_visible_area: int = field(
        default=100,
        metadata={"help": "Masks left with fewer visible pixels after the non-overlap step are dropped (SAM's min_mask_region_area in LangSplat)."},
    )
    min_visible_fraction: float = field(
        default=0.0,
        metadata={"help": "Masks left with less than this fraction of their own area visible are dropped."},
    )

    def __post_init__(self) -> None:
        if self.priority not in PRIORITIES:
            raise ValueError(f"unknown --priority '{self.priority}'; choose from {sorted(PRIORITIES)}")
        if self.min_area < 1:
            raise ValueError(f"--min-area must be at least 1, got {self.min_area}")


# ---------------------------------------------------------------------------
# Priorities: who wins a contested pixel. Each returns a sort key per mask;
# the mask with the smallest key wins (ties: the earlier row).


def _priority_score(scores: Tensor, areas: Tensor, granularity: Tensor, own: int) -> Tensor:
    return -scores.double()


def _priority_area(scores: Tensor, areas: Tensor, granularity: Tensor, own: int) -> Tensor:
    return areas.double()


def _priority_granularity(scores: Tensor, areas: Tensor, granularity: Tensor, own: int) -> Tensor:
    # own granularity first (offset 0), then the shared 'part' masks; score within each.
    return (granularity != own).double() * 4.0 - scores.double()


PriorityFn = Callable[[Tensor, Tensor, Tensor, int], Tensor]
PRIORITIES: dict[str, PriorityFn] = {
    "score": _priority_score,
    "area": _priority_area,
    "granularity": _priority_granularity,
}
"""Name -> ``key(scores [N], areas [N], granularity [N], own_granularity) -> [N]``; smallest key wins."""


def priority_order(key: Tensor) -> Tensor:
    """Rows sorted by priority: ``key`` ascending, ties by row (stable).

    Args:
        key: ``[N]`` sort keys.

    Returns:
        ``[N]`` int64 permutation, best first.
    """
    return torch.sort(key, stable=True).indices


# ---------------------------------------------------------------------------
# Arrangement of a mask set


@dataclass
class MaskRegions:
    """The cells of a mask set's arrangement: pixels covered by the same masks."""

    labels: Tensor
    """``[P]`` int64 cell of each pixel (``P = H * W``)."""
    members: Tensor
    """``[N, U]`` bool: mask ``n`` covers cell ``u``."""
    counts: Tensor
    """``[U]`` int64 pixels per cell."""

    def areas(self) -> Tensor:
        """``[N]`` int64 pixel count of each mask."""
        return (self.members.double() @ self.counts.double()).round().long()

    def intersections(self) -> Tensor:
        """``[N, N]`` int64 pairwise intersection counts (exact: float64 sums of integers < 2^53)."""
        m = self.members.double()
        return ((m * self.counts.double()) @ m.T).round().long()


def pack_masks(masks: Tensor) -> Tensor:
    """Each pixel's coverage bits, packed: bit ``n % 64`` of word ``n // 64`` is mask ``n``.

    Args:
        masks: ``[N, P]`` bool.

    Returns:
        ``[P, ceil(N / 64)]`` int64 (zero bits beyond ``N``).
    """
    n, p = masks.shape
    n_words = max(1, -(-n // 64))
    packed = torch.zeros(n_words * 8, p, dtype=torch.uint8, device=masks.device)  # [bytes, P]
    for b in range(8):  # byte k holds masks 8k .. 8k+7
        rows = masks[b::8].view(torch.uint8)
        packed[: rows.shape[0]].bitwise_or_(rows << b)
    return packed.T.contiguous().view(torch.int64)  # little-endian bytes -> words


def _fold_labels(words: Tensor) -> Tensor:
    """Exact cell labels from packed words by repeated uniquing of (label, 31-bit chunk)."""
    p = words.shape[0]
    labels = torch.zeros(p, dtype=torch.int64, device=words.device)
    for k in range(words.shape[1]):
        for shift in (0, 31, 62):
            chunk = (words[:, k] >> shift) & ((1 << 31) - 1) if shift < 62 else (words[:, k] >> 62) & 3
            _, labels = torch.unique((labels << 31) | chunk, return_inverse=True)
    return labels


def mask_regions(masks: Tensor, seed: int = 0) -> MaskRegions:
    """Split the pixels into cells covered by exactly the same masks.

    The masks are bit-packed per pixel (:func:`pack_masks`); consecutive pixels
    (row-major) with equal words form runs, so the rest works on runs, not
    pixels. Each run's bytes are hashed to one int64, ``sum_j byte_j * r_j``
    with random odd 64-bit ``r_j`` (wrapping arithmetic; two different byte
    strings collide with probability about 2^-56), the hashes are uniqued once,
    and the grouping is verified exactly: every run's words must equal those of
    its cell's representative. On a collision the labels are recomputed by
    :func:`_fold_labels`, which is exact by construction.

    Args:
        masks: ``[N, H, W]`` or ``[N, P]`` bool.
        seed: seed of the hash multipliers.

    Returns:
        :class:`MaskRegions`.
    """
    flat = masks.reshape(masks.shape[0], int(np.prod(masks.shape[1:])))
    n, p = flat.shape
    device = flat.device
    if p == 0:
        z = torch.zeros(0, dtype=torch.int64, device=device)
        return MaskRegions(labels=z, members=flat[:, :0], counts=z)
    words = pack_masks(flat)  # [P, W]
    change = torch.ones(p, dtype=torch.bool, device=device)
    change[1:] = (words[1:] != words[:-1]).any(dim=1)
    starts = torch.nonzero(change).squeeze(1)  # [R]
    lengths = torch.diff(starts, append=torch.tensor([p], device=device))  # [R]
    run_words = words[starts]  # [R, W]
    data = run_words.view(torch.uint8).long()  # [R, 8W]
    gen = torch.Generator().manual_seed(seed)
    mult = (torch.randint(-(2**62), 2**62, (data.shape[1],), generator=gen) * 2 + 1).to(device)
    # int64 matrix-vector products exist on CPU only
    hashed = data @ mult if device.type == "cpu" else (data * mult).sum(dim=1)
    _, run_labels = torch.unique(hashed, return_inverse=True)
    u = int(run_labels.max().item()) + 1
    r = starts.numel()
    rep = torch.empty(u, dtype=torch.int64, device=device).scatter_(0, run_labels, torch.arange(r, device=device))
    if not torch.equal(run_words[rep][run_labels], run_words):
        run_labels = _fold_labels(run_words)
        u = int(run_labels.max().item()) + 1
        rep = torch.empty(u, dtype=torch.int64, device=device).scatter_(
            0, run_labels, torch.arange(r, device=device)
        )
    counts = torch.zeros(u, dtype=torch.int64, device=device).index_add_(0, run_labels, lengths)
    labels = torch.repeat_interleave(run_labels, lengths)
    return MaskRegions(labels=labels, members=flat[:, starts[rep]], counts=counts)


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


def _check_raw(raw: RawMasks) -> None:
    m = raw.masks
    if m.ndim != 3 or m.dtype != np.bool_:
        raise ValueError(f"RawMasks.masks must be [M, H, W] bool, got {m.shape} {m.dtype}")
    k = m.shape[0]
    if raw.granularity.shape != (k,) or raw.scores.shape != (k,):
        raise ValueError(
            f"RawMasks: granularity {raw.granularity.shape} and scores {raw.scores.shape} must be [{k}]"
        )
    if k and (raw.granularity.min() < 0 or raw.granularity.max() >= len(GRANULARITIES)):
        raise ValueError(f"RawMasks.granularity must lie in 0..{len(GRANULARITIES) - 1}")


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


# ---------------------------------------------------------------------------
# The same rule, written straightforwardly (reference for tests and the bench)


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
