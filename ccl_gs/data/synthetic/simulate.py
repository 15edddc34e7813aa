"""Simulated 2D inputs for measuring 3D language lifting under controlled 2D inconsistency.

This is a *simulation*, not a model: it stands in for SAM (masks at three
granularities) and SAM2 (tracks propagated from the first view) on synthetic
scenes, by degrading the exact ground truth in controlled, seeded ways. With
it the quality of the 3D lifting can be measured as a function of how
inconsistent the 2D inputs are across views, which real models do not let
one dial.

Outputs, in the artifact formats the preprocessing stage reads from its
``precomputed`` sources (one file per image, named by the image file stem):

* ``<scene>/sim_masks/<stem>.npz``: ``masks`` bool ``[M, H, W]``,
  ``granularity`` int8 ``[M]`` (0 subpart, 1 part, 2 whole), ``scores``
  float32 ``[M]``. Sources: the ground-truth subparts, parts and object
  instances, plus the floor and walls as whole masks.
* ``<scene>/sim_tracks/<stem>.npz``: ``track_masks`` bool ``[K', H, W]`` and
  ``track_ids`` int32 ``[K']``: the objects visible in the first view get
  ids ``1..K`` and are followed through the views in order.

Imperfections (each a probability or a strength, ``None`` = from the
``level`` preset, see :data:`PRESETS`):

* boundary noise: the mask edge moves in or out by a smooth random offset of
  up to ``boundary`` pixels (a local random dilation / erosion);
* splits: a mask is cut in two along a random line through its centroid;
* merges: a mask is joined with a touching mask of the same granularity;
* misses: a mask is dropped;
* tracks: identity swaps between two tracks (persisting from that view on),
  lost tracks (gone from a random view on), boundary noise.

At level 0 every output equals the ground truth exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ccl_gs.data.synthetic.gt import GroundTruth
from ccl_gs.io.artifacts import Manifest, file_hash, to_jsonable
from ccl_gs.masks.types import RawMasks

SIM_FORMAT_VERSION = 1

PRESETS: dict[int, dict[str, float]] = {
    0: dict(boundary=0.0, split=0.0, merge=0.0, miss=0.0, score_noise=0.0, swap=0.0, lost=0.0),
    1: dict(boundary=1.5, split=0.05, merge=0.05, miss=0.05, score_noise=0.05, swap=0.05, lost=0.1),
    2: dict(boundary=3.0, split=0.15, merge=0.15, miss=0.15, score_noise=0.15, swap=0.2, lost=0.3),
    3: dict(boundary=1.5, split=0.05, merge=0.05, miss=0.05, score_noise=0.05, swap=0.05, lost=0.1),
}
"""Strengths per ``level``: none, mild, strong; level 3 ("structured") has level 1's masks and tracks
(its features differ: :data:`ORACLE_LEVELS`)."""

ORACLE_LEVELS: dict[int, dict[str, float]] = {
    0: dict(noise=0.0, drift=0.0),
    1: dict(noise=0.15, drift=0.0),
    2: dict(noise=0.3, drift=0.0),
    3: dict(noise=0.15, drift=1.0),
}
"""Oracle encoder options (``--oracle.noise``, ``--oracle.drift``) that go with each simulation level:
isotropic feature noise at levels 0-2, and at level 3 the structured view inconsistency of
:mod:`ccl_gs.encoders.drift` (occluders, part / whole, look-alike concepts) on top of level 1."""
LEVEL_NAMES = {0: "none", 1: "mild", 2: "strong", 3: "structured"}


@dataclass
class SimConfig:
    """How imperfect the simulated masks and tracks are."""

    level: int = field(default=1, metadata={"help": "Preset strength of all imperfections: 0 none, 1 mild, 2 strong, 3 structured (masks of 1)."})
    seed: int = field(default=0, metadata={"help": "Seed of the simulated imperfections."})
    boundary: float | None = field(default=None, metadata={"help": "Max edge displacement in pixels (None = preset)."})
    split: float | None = field(default=None, metadata={"help": "Probability a mask is cut in two (None = preset)."})
    merge: float | None = field(default=None, metadata={"help": "Probability a mask absorbs a touching one (None = preset)."})
    miss: float | None = field(default=None, metadata={"help": "Probability a mask is dropped (None = preset)."})
    score_noise: float | None = field(default=None, metadata={"help": "Scores are 1 - U(0, this) (None = preset)."})
    swap: float | None = field(default=None, metadata={"help": "Per view, probability two track ids swap (None = preset)."})
    lost: float | None = field(default=None, metadata={"help": "Probability a track is lost from a random view on (None = preset)."})
    min_area: int = field(default=8, metadata={"help": "Masks and tracks smaller than this many pixels are not output."})

    def resolved(self) -> "SimConfig":
        """A copy with every ``None`` strength filled from the ``level`` preset."""
        if self.level not in PRESETS:
            raise ValueError(f"--sim.level must be 0, 1, 2 or 3, got {self.level}")
        vals = {k: (getattr(self, k) if getattr(self, k) is not None else v) for k, v in PRESETS[self.level].items()}
        for k in ("split", "merge", "miss", "swap", "lost", "score_noise"):
            if not 0.0 <= vals[k] <= 1.0:
                raise ValueError(f"--sim.{k.replace('_', '-')} must be in [0, 1], got {vals[k]}")
        if vals["boundary"] < 0:
            raise ValueError(f"--sim.boundary must be >= 0, got {vals['boundary']}")
        return replace(self, **vals)


def perturb_boundary(mask: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Move the edge of ``mask`` ``[H, W]`` bool in or out by a smooth random offset of at most ``amount`` px."""
    if amount <= 0 or not mask.any():
        return mask.copy()
    import cv2

    H, W = mask.shape
    m8 = mask.astype(np.uint8)
    inside = cv2.distanceTransform(m8, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - m8, cv2.DIST_L2, 3)
    sd = inside - outside  # > 0 inside, < 0 outside, |sd| >= 1
    cells = rng.uniform(-1.0, 1.0, size=(max(2, H // 12), max(2, W // 12))).astype(np.float32)
    offset = cv2.resize(cells, (W, H), interpolation=cv2.INTER_CUBIC)
    return (sd - 0.5 + amount * np.clip(offset, -1.0, 1.0)) > 0


def _split(mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(mask)
    a = rng.uniform(0, np.pi)
    side = (xs - xs.mean()) * np.cos(a) + (ys - ys.mean()) * np.sin(a) > 0
    m1 = np.zeros_like(mask)
    m1[ys[side], xs[side]] = True
    return m1, mask & ~m1


def _touching(masks: np.ndarray) -> np.ndarray:
    """``[M, M]`` bool: masks within one pixel of each other (diagonal False)."""
    import cv2

    if len(masks) == 0:
        return np.zeros((0, 0), bool)
    kernel = np.ones((3, 3), np.uint8)
    dil = np.stack([cv2.dilate(m.astype(np.uint8), kernel) for m in masks]).reshape(len(masks), -1).astype(np.float32)
    adj = (dil @ masks.reshape(len(masks), -1).astype(np.float32).T) > 0
    adj = adj | adj.T
    np.fill_diagonal(adj, False)
    return adj


def simulate_masks(gt: GroundTruth, view: int, cfg: SimConfig) -> RawMasks:
    """Simulated SAM-like masks of one view (see the module docstring).

    Returns:
        :class:`RawMasks` with ``masks`` ``[M, H, W]`` bool, ``granularity``
        ``[M]`` int8 and ``scores`` ``[M]`` float32, ordered by granularity.
    """
    cfg = cfg.resolved()
    rng = np.random.default_rng([cfg.seed, view, 1])
    out_m, out_g = [], []
    for g in (0, 1, 2):
        masks, _ = gt.regions(view, g, cfg.min_area)
        items = list(masks)
        # merges: a mask absorbs one touching neighbour of the same granularity
        if cfg.merge > 0 and len(items) > 1:
            adj = _touching(masks)
            used = np.zeros(len(items), bool)
            merged = []
            for i in range(len(items)):
                if used[i]:
                    continue
                used[i] = True
                m = items[i]
                nbrs = np.nonzero(adj[i] & ~used)[0]
                if len(nbrs) and rng.uniform() < cfg.merge:
                    j = int(rng.choice(nbrs))
                    used[j] = True
                    m = m | items[j]
                merged.append(m)
            items = merged
        # splits
        if cfg.split > 0:
            split_items = []
            for m in items:
                if rng.uniform() < cfg.split and m.sum() >= 2 * cfg.min_area:
                    split_items.extend(_split(m, rng))
                else:
                    split_items.append(m)
            items = split_items
        for m in items:
            if cfg.boundary > 0:
                m = perturb_boundary(m, cfg.boundary, rng)
            if cfg.miss > 0 and rng.uniform() < cfg.miss:
                continue
            if m.sum() < cfg.min_area:
                continue
            out_m.append(m)
            out_g.append(g)
    H, W = gt.height, gt.width
    masks = np.stack(out_m) if out_m else np.zeros((0, H, W), bool)
    scores = (1.0 - rng.uniform(0.0, cfg.score_noise, size=len(out_m))).astype(np.float32)
    return RawMasks(masks=masks, granularity=np.asarray(out_g, np.int8), scores=scores)


def simulate_tracks(gt: GroundTruth, cfg: SimConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Simulated SAM2 propagation of the first view's object masks through all views, in order.

    Returns:
        Per view ``(track_masks [K', H, W] bool, track_ids [K'] int32)``, ids ascending.
    """
    cfg = cfg.resolved()
    rng = np.random.default_rng([cfg.seed, 2])
    V = len(gt)
    first = gt.view(0)["instance"]
    objects = [i for i in gt.object_instances if (first == i).sum() >= cfg.min_area]
    K = len(objects)
    # lost tracks: gone from a random view on (never in the first view)
    lost_from = np.full(K, V + 1)
    for k in range(K):
        if V > 1 and rng.uniform() < cfg.lost:
            lost_from[k] = int(rng.integers(1, V))
    label = np.arange(1, K + 1)  # id reported for track k
    out = []
    for v in range(V):
        inst = gt.view(v)["instance"]
        present = [k for k in range(K) if v < lost_from[k] and (inst == objects[k]).sum() >= cfg.min_area]
        if v > 0 and len(present) >= 2 and rng.uniform() < cfg.swap:
            a, b = rng.choice(present, size=2, replace=False)
            label[[a, b]] = label[[b, a]]
        vrng = np.random.default_rng([cfg.seed, v, 3])
        ms, ids = [], []
        for k in present:
            m = perturb_boundary(inst == objects[k], cfg.boundary, vrng)
            if m.sum() >= cfg.min_area:
                ms.append(m)
                ids.append(int(label[k]))
        order = np.argsort(ids, kind="stable")
        H, W = inst.shape
        masks = np.stack([ms[i] for i in order]) if ms else np.zeros((0, H, W), bool)
        out.append((masks, np.asarray([ids[i] for i in order], np.int32)))
    return out


def write_simulation(scene_root: str | Path, cfg: SimConfig) -> None:
    """Write ``sim_masks/`` and ``sim_tracks/`` (with manifests) for every view of a synthetic scene folder."""
    from ccl_gs.io.artifacts import save_npz_atomic

    root = Path(scene_root)
    gt = GroundTruth(root)
    res = cfg.resolved()
    inputs = {"gt_meta": file_hash(gt.meta_path)}
    for v, stem in enumerate(gt.stems):
        rm = simulate_masks(gt, v, res)
        save_npz_atomic(root / "sim_masks" / f"{stem}.npz", compress=True, masks=rm.masks, granularity=rm.granularity, scores=rm.scores)
    for stem, (tm, ti) in zip(gt.stems, simulate_tracks(gt, res)):
        save_npz_atomic(root / "sim_tracks" / f"{stem}.npz", compress=True, track_masks=tm, track_ids=ti)
    cfg_json = to_jsonable(res)
    note = {"note": "simulated from exact ground truth; see ccl_gs.data.synthetic.simulate"}
    Manifest("sim_masks", SIM_FORMAT_VERSION, cfg_json, inputs, note).save(root / "sim_masks")
    Manifest("sim_tracks", SIM_FORMAT_VERSION, cfg_json, inputs, note).save(root / "sim_tracks")
