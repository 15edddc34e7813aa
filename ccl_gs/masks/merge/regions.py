"""The arrangement of a mask set: the cells of pixels covered by exactly the same masks (:func:`mask_regions`).

See "How it is fast" in :mod:`ccl_gs.masks.merge`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


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
