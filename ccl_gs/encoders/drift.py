"""Structured view inconsistency for the oracle encoder (a simulation, not a model).

Real CLIP features of masked crops disagree across views in a structured way,
which isotropic noise does not reproduce: a half-occluded mug drifts toward
the object in front of it, a part seen alone toward the part's own concept,
a crop cut by the image border loses its identity, and any object drifts
toward look-alike concepts ("vase" -> "jar"). With ``drift = s > 0`` the
oracle adds, per view and mask, before its isotropic noise::

    f = normalize(e + s * (K_OCC * occ + K_PART * w_part * z * p + K_CONF * u * c))

* ``e``: the exact area-weighted class mix (the oracle at ``drift = 0``).
* ``occ`` (occlusion / truncation): the mask's contour pixels (inside, with a
  4-neighbour outside) are classified by what lies across the contour: a
  nearer surface of another instance (its class vector), or the image border
  (a random unit vector of this view and mask: identity lost). ``occ`` is the
  sum of those vectors over contour pixels divided by the contour length, so
  its size is the occluded-or-truncated fraction of the silhouette's contour
  (a proxy for the hidden fraction of the silhouette, computed from one
  view's ground truth: instance and depth maps).
* ``p`` (part / whole): the text vector of the mask's dominant part (its
  name, e.g. ``"cover"``). ``w_part = max(1 - q, 0.5 * share)`` with ``q``
  the fraction of the dominant instance's visible pixels the mask covers (a
  part crop has ``q < 1``) and ``share`` the dominant part's share of the
  mask (a whole drifts toward its dominant part); ``z = clip(sqrt(0.05 HW /
  area), 0.5, 2)`` makes small crops drift more. Background stuff has no parts.
* ``c`` (confusable concepts): each class has a fixed set of look-alike
  names (:data:`CONFUSERS`) whose text vectors have cosine ``rho ~ U(0.6,
  0.8)`` (fixed per name) to the class vector; per view one is chosen for each
  class, and each (view, instance) draws its own amount ``u ~ U(0, 1)``.

At ``s = 1`` a confuser wins the nearest-text test when ``u > ~0.67`` and an
occluder when about half the contour is occluded. ``drift = 0`` leaves the
oracle exactly as it was (bit for bit; the confuser texts keep their plain
random vectors too).
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

K_OCC = 2.0
"""Weight of the occlusion / truncation direction."""
K_PART = 1.0
"""Weight of the part / whole direction."""
K_CONF = 1.5
"""Weight of the confuser direction."""
CONFUSER_COS = (0.6, 0.8)
"""Range of the cosine between a class's text vector and each of its confusers'."""

CONFUSERS: dict[str, tuple[str, ...]] = {
    "mug": ("cup", "tumbler", "jug"),
    "table": ("desk", "bench", "counter"),
    "lamp": ("lantern", "light", "sconce"),
    "teapot": ("kettle", "coffee pot", "pitcher"),
    "chair": ("stool", "armchair", "seat"),
    "book": ("notebook", "folder", "magazine"),
    "ball": ("globe", "orange", "balloon"),
    "vase": ("jar", "urn", "flower pot"),
    "snowman": ("doll", "statue", "figurine"),
    "bottle": ("flask", "canister", "carafe"),
    "rubber duck": ("toy bird", "chick", "bath toy"),
    "floor": ("rug", "carpet", "ground"),
    "wall": ("curtain", "panel", "screen"),
}
"""Look-alike concepts of every class the generator knows (none of them is a class name)."""


def _seed_of(*parts) -> int:
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def _uniform(*key) -> float:
    return float(torch.rand(1, generator=torch.Generator().manual_seed(_seed_of(*key)), dtype=torch.float64))


def confuser_owner() -> dict[str, str]:
    """Confuser name -> the class it imitates."""
    return {name: cls for cls, names in CONFUSERS.items() for name in names}


def confuser_vector(cls_vec: Tensor, name: str, plain: Tensor, seed: int) -> Tensor:
    """Text vector ``[D]`` of confuser ``name``: cosine ``rho`` to ``cls_vec`` ``[D]``, the rest along ``plain``.

    ``plain`` ``[D]`` is the name's own random vector (made orthogonal to the class vector);
    ``rho`` is drawn once per name from :data:`CONFUSER_COS`.
    """
    lo, hi = CONFUSER_COS
    rho = lo + (hi - lo) * _uniform("confuser-rho", seed, name)
    r = plain - (plain @ cls_vec) * cls_vec
    r = F.normalize(r, dim=0)
    return F.normalize(rho * cls_vec + float(np.sqrt(1.0 - rho * rho)) * r, dim=0)


def contour_terms(
    masks: Tensor, inst: Tensor, depth: Tensor, inst_class: Tensor, dominant: Tensor
) -> tuple[Tensor, Tensor]:
    """Per mask, what lies across its contour.

    Args:
        masks: ``[M, H, W]`` bool.
        inst: ``[H, W]`` int64 instance ids (0 = none).
        depth: ``[H, W]`` float depth (ignored where ``inst == 0``).
        inst_class: ``[I]`` int64 class id (``class_id`` index) of each instance id.
        dominant: ``[M]`` int64 dominant instance of each mask.
    Returns:
        ``occ`` ``[M, C + 1]``: fraction of the contour whose outside neighbour is a nearer surface of
        another instance, by that instance's class id; ``trunc`` ``[M]``: fraction on the image border.
    """
    M, H, W = masks.shape
    C1 = int(inst_class.max()) + 1 if inst_class.numel() else 1
    occ = torch.zeros(M, C1, dtype=torch.float64)
    border = torch.zeros(M, dtype=torch.float64)
    m = masks.to(torch.bool)
    pad = F.pad(m.to(torch.uint8), (1, 1, 1, 1), value=2)  # 2 = outside the image
    inst_p = F.pad(inst, (1, 1, 1, 1), value=0)
    depth_p = F.pad(depth, (1, 1, 1, 1), value=float("inf"))
    on_contour = torch.zeros_like(m)
    hits = []
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nb = pad[:, 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]  # [M, H, W]
        outside = m & (nb != 1)
        on_contour |= outside
        hits.append((outside, nb, inst_p[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W], depth_p[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]))
    contour = on_contour.reshape(M, -1).sum(1).to(torch.float64).clamp_min(1.0)
    # A contour pixel counts once: the first neighbour (in the order above) across its contour decides.
    decided = torch.zeros_like(m)
    for outside, nb, nb_inst, nb_depth in hits:
        take = outside & ~decided
        decided |= take
        at_border = take & (nb == 2)
        border += at_border.reshape(M, -1).sum(1).to(torch.float64)
        other = take & (nb != 2) & (nb_inst[None] > 0) & (nb_inst[None] != dominant[:, None, None])
        nearer = other & (nb_depth[None] < depth[None])
        idx = nearer.nonzero(as_tuple=True)
        if idx[0].numel():
            cls = inst_class[nb_inst[idx[1], idx[2]]]
            occ.index_put_((idx[0], cls), torch.ones(idx[0].numel(), dtype=torch.float64), accumulate=True)
    return occ / contour[:, None], border / contour


def drift_directions(
    masks: Tensor,
    gt: dict[str, Tensor],
    class_emb: Tensor,
    inst_class: Tensor,
    part_text: Callable[[int], Tensor | None],
    confuser: Callable[[int, int], Tensor | None],
    view: int,
    seed: int,
    mask_keys: list[str],
) -> Tensor:
    """The drift ``K_OCC * occ + K_PART * w z p + K_CONF * u c`` of every mask: ``[M, D]`` (see the module docstring).

    Args:
        masks: ``[M, H, W]`` bool.
        gt: ``instance``, ``part``, ``class_id`` int64 and ``depth`` float ``[H, W]`` maps of the view.
        class_emb: ``[C + 1, D]`` class vectors (row 0: no surface).
        inst_class: ``[I]`` int64 instance id -> class id.
        part_text: part id -> its name's text vector ``[D]`` (None: no part).
        confuser: (view, class id) -> the confuser vector ``[D]`` chosen for that class in that view (None: none).
        view: view index; seed: the encoder's seed; mask_keys: a stable key per mask (for the border vectors).
    """
    M, H, W = masks.shape
    D = class_emb.shape[1]
    flat = masks.reshape(M, -1)
    inst = gt["instance"].reshape(-1)
    n_inst = int(inst_class.numel())
    inst_counts = flat.to(torch.float32) @ F.one_hot(inst, n_inst).to(torch.float32)  # [M, I]
    inst_counts[:, 0] = 0
    dominant = inst_counts.argmax(1)  # [M]
    has_inst = inst_counts.sum(1) > 0
    occ, trunc = contour_terms(masks, gt["instance"], gt["depth"], inst_class, dominant)
    out = K_OCC * (occ.to(torch.float32) @ class_emb[: occ.shape[1]])  # [M, D]
    for i in range(M):
        if trunc[i] > 0:
            g = torch.Generator().manual_seed(_seed_of("drift-border", seed, view, mask_keys[i]))
            out[i] += K_OCC * float(trunc[i]) * F.normalize(torch.randn(D, generator=g), dim=0)
    visible = torch.bincount(inst, minlength=n_inst).to(torch.float32)  # [I]
    area = flat.sum(1).to(torch.float32).clamp_min(1.0)
    z = torch.sqrt(0.05 * H * W / area).clamp(0.5, 2.0)
    part = gt["part"].reshape(-1)
    for i in range(M):
        if not has_inst[i]:
            continue
        d = int(dominant[i])
        parts_here = part[flat[i] & (inst == d)]
        parts_here = parts_here[parts_here > 0]
        if parts_here.numel():
            ids, counts = torch.unique(parts_here, return_counts=True)
            p_id = int(ids[counts.argmax()])
            vec = part_text(p_id)
            if vec is not None:
                q = float(inst_counts[i, d] / visible[d].clamp_min(1.0))
                share = float(counts.max()) / float(area[i])
                out[i] += K_PART * max(1.0 - q, 0.5 * share) * float(z[i]) * vec
        cls = int(inst_class[d])
        cvec = confuser(view, cls)
        if cvec is not None:
            out[i] += K_CONF * _uniform("drift-amount", seed, view, d) * cvec
    return out
