"""Training the contrastive codebook and writing its artifact (stage 2).

Codebooks. With ``shared_codebook = False`` (default) each level (sp, wp)
gets its own N prototypes, trained on the masks of that level only: the two
levels are separate supervision targets downstream (one index map and one
N-way decoder per level, as LangSplat trains one field per level). With
``shared_codebook = True`` one codebook is trained on the masks of both
levels and pairs may join masks of different levels (a track label names
one object whatever level its mask came from). Either way the artifact
stores ``prototypes`` as ``[2, N, D]`` (level ``l`` -> codebook of level
``l``; the two slices are equal when shared), so consumers never branch.

One step, for each codebook (the codebooks are disjoint rows of one
parameter, so stepping them together with one Adam equals separate runs):

1. ``batch_size`` masks of the pool, drawn without replacement, for ``L_max``;
2. ``pairs_within`` pairs of labeled masks from one view and ``pairs_across``
   from two different views, each half same-label / half different-label
   (:class:`~ccl_gs.codebook.pairs.PairSampler`), for ``L_pull`` / ``L_push``;
3. ``L = w_max L_max + w_pull L_pull + w_push L_push``
   (:func:`~ccl_gs.codebook.losses.codebook_loss`); Adam step.

Every ``reseed_every`` steps all masks are assigned, the prototypes chosen
by no mask ("dead") are counted and logged and, until
``reseed_until * iterations``, moved onto the worst-represented features
(:func:`~ccl_gs.codebook.init.worst_represented`) with their Adam moments
reset. Counts are kept in the manifest (``extra["usage_log"]``).

Artifact folder (``out_dir``):

* ``codebook.npz``: ``prototypes`` float32 ``[2, N, D]`` unit norm,
  ``usage`` int64 ``[2, N]`` (masks of the level choosing each prototype);
* ``<stem>.npz`` per image: ``proto_maps`` int32 ``[2, H, W]`` (per pixel the
  prototype of the mask covering it, ``-1`` = no mask) and
  ``mask_prototypes`` int32 ``[M]`` (per mask row, the prototype it chose in
  its level's codebook);
* ``manifest.json`` (kind ``"codebook"``): config, the input fingerprint
  (preprocess manifest fingerprint + a hash per input file), encoder name and
  dim, counts and final losses. Written last: a folder with a manifest is
  complete.
* ``checkpoint.pt`` while training (prototypes, Adam state, step, RNG state,
  log), written every ``checkpoint_every`` steps and on Ctrl-C, removed when
  the artifact is complete. A killed or interrupted run resumes from it and
  ends with the same result as an uninterrupted run (CPU, same seed).

A re-run whose config and inputs match the manifest is skipped; a changed
config or changed input files are detected by the fingerprint and redone.

Modules: the trainer and its step are :mod:`ccl_gs.codebook.trainer`, the
artifact's format and loading :mod:`ccl_gs.codebook.artifact`; this module runs
the training (:func:`train_codebook`) and re-exports their names.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ccl_gs.codebook.artifact import (  # noqa: F401  (re-exported)
    CHECKPOINT_FILE,
    CODEBOOK_FILE,
    FORMAT_VERSION,
    KIND,
    CodebookResult,
    _complete,
    _expected_manifest,
    _load_result,
    load_codebook,
)
from ccl_gs.codebook.config import CodebookConfig
from ccl_gs.codebook.data import N_LEVELS, PreprocessedInput, load_preprocessed
from ccl_gs.codebook.losses import assign
from ccl_gs.codebook.quality import cross_view_consistency
from ccl_gs.codebook.trainer import (  # noqa: F401  (re-exported)
    _FINAL_WINDOW,
    _LOSS_KEYS,
    CodebookTrainer,
    _codebook_of_level,
    _pools,
    default_device,
)
from ccl_gs.interrupt import checkpoint_line, save_on_interrupt
from ccl_gs.io.artifacts import atomic_path, reusable_manifest, save_npz_atomic
from ccl_gs.masks.types import LEVELS
from ccl_gs.runtime import device_for_run

log = logging.getLogger(__name__)


def _save_checkpoint(path: Path, trainer: CodebookTrainer, fingerprint: str) -> None:
    with atomic_path(path) as tmp:
        torch.save({"fingerprint": fingerprint, **trainer.state_dict()}, tmp)


def _try_resume(path: Path, trainer: CodebookTrainer, fingerprint: str) -> bool:
    if not path.is_file():
        return False
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign file: start over
        log.warning("ignoring unreadable checkpoint %s: %s", path, e)
        return False
    if state.get("fingerprint") != fingerprint:
        log.info("checkpoint %s belongs to another config/input; starting over", path)
        return False
    trainer.load_state_dict(state)
    log.info("resuming codebook training from step %d (%s)", trainer.step, path)
    return True


def _write_images(
    inp: PreprocessedInput, out_dir: Path, prototypes: Tensor, device: torch.device  # [2, N, D]
) -> tuple[dict[str, list], np.ndarray]:
    """Write ``<stem>.npz`` per image; returns the maps' pixel coverage stats and all mask choices ``[M]``."""
    masks = inp.masks
    f = masks.features.to(device)
    choice = torch.stack([assign(f, prototypes[lvl].to(device))[0].cpu() for lvl in range(N_LEVELS)])  # [2, M]
    own = choice.gather(0, masks.levels.view(1, -1)).squeeze(0)  # [M] choice in the mask's own level
    covered = [0, 0]
    n_pix = 0
    for v, stem in enumerate(masks.stems):
        lo, hi = masks.offsets[v], masks.offsets[v + 1]
        im = inp.read_image(v)["index_maps"].astype(np.int64)  # [2, H, W]
        pm = np.full(im.shape, -1, dtype=np.int32)
        for lvl in range(N_LEVELS):
            rows = im[lvl]
            hit = rows >= 0
            pm[lvl][hit] = choice[lvl, lo:hi].numpy()[rows[hit]]
            covered[lvl] += int(hit.sum())
        n_pix += im.shape[1] * im.shape[2]
        save_npz_atomic(out_dir / f"{stem}.npz", proto_maps=pm, mask_prototypes=own[lo:hi].numpy().astype(np.int32))
    return {"pixel_coverage": [c / max(n_pix, 1) for c in covered]}, own.numpy()


def _finite_or_none(x: float) -> float | None:
    """JSON has no NaN: undefined measures are written as null."""
    return x if math.isfinite(x) else None


def train_codebook(
    inputs: str | Path | PreprocessedInput,
    cfg: CodebookConfig,
    out_dir: str | Path,
    device: torch.device | str | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> CodebookResult:
    """Train the contrastive codebook on a preprocess artifact and write the codebook artifact.

    Args:
        inputs: the preprocess artifact folder (or an already loaded one).
        cfg: the codebook config (see :data:`~ccl_gs.codebook.config.CODEBOOK_VARIANTS`).
        out_dir: the artifact folder to write (created).
        device: torch device; default CUDA when available, else CPU.
        progress: show a tqdm bar with the losses and used prototypes.
        on_step: called as ``on_step(step, losses)`` after every optimizer
            step and any checkpoint of that step (progress hooks, tests).
    Returns:
        :class:`CodebookResult`; ``skipped`` when an up-to-date artifact
        already existed.
    Raises:
        ArtifactError: unreadable inputs (the message names the file).
        ccl_gs.interrupt.Interrupted: Ctrl-C; the checkpoint of the last whole
            step was saved first, and the same call resumes from it.
    """
    out_dir = Path(out_dir)
    inp = inputs if isinstance(inputs, PreprocessedInput) else load_preprocessed(inputs)
    expected = _expected_manifest(inp, cfg)
    fingerprint = expected.fingerprint()
    old = reusable_manifest(out_dir, expected, lambda m: _complete(out_dir, m))
    if old is not None:
        log.info("codebook %s is up to date; skipping", out_dir)
        return _load_result(out_dir, old, skipped=True)
    out_dir.mkdir(parents=True, exist_ok=True)

    dev = device_for_run(device)
    trainer = CodebookTrainer(inp.masks, cfg, dev)
    ckpt = out_dir / CHECKPOINT_FILE
    if not _try_resume(ckpt, trainer, fingerprint) and cfg.reseed_every:
        trainer.count_and_reseed(reseed=False)  # dead prototypes right after init
    resumed_from = trainer.step

    def save_interrupted() -> str:
        _save_checkpoint(ckpt, trainer, fingerprint)
        return checkpoint_line(trainer.step, ckpt)

    reseed_stop = math.floor(cfg.reseed_until * cfg.iterations)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.iterations, initial=trainer.step, desc="codebook", dynamic_ncols=True)
    used = trainer.usage_log[-1]["used"] if trainer.usage_log else None
    try:
        with save_on_interrupt(save_interrupted) as guard:
            while trainer.step < cfg.iterations:
                losses = trainer.train_step()
                s = trainer.step
                if cfg.reseed_every and s % cfg.reseed_every == 0:
                    used = trainer.count_and_reseed(reseed=s <= reseed_stop and s < cfg.iterations)["used"]
                if cfg.checkpoint_every and s % cfg.checkpoint_every == 0 and s < cfg.iterations:
                    _save_checkpoint(ckpt, trainer, fingerprint)
                if bar is not None:
                    bar.update(1)
                    if s % 10 == 0 or s == cfg.iterations:
                        post = {k: f"{losses[k]:.4f}" for k in ("l_max", "l_pull", "l_push")}
                        if used is not None:
                            post["used"] = "/".join(str(u) for u in used)
                        bar.set_postfix(post, refresh=False)
                if on_step is not None:
                    on_step(s, losses)
                guard.check()
    finally:
        if bar is not None:
            bar.close()

    prototypes = trainer.final_prototypes()  # [2, N, D]
    coverage, own = _write_images(inp, out_dir, prototypes, dev)
    levels = inp.masks.levels.numpy()
    usage = np.stack(
        [np.bincount(own[levels == lvl], minlength=cfg.n_prototypes) for lvl in range(N_LEVELS)]
    ).astype(np.int64)  # [2, N]
    save_npz_atomic(out_dir / CODEBOOK_FILE, prototypes=prototypes.numpy().astype(np.float32), usage=usage)

    _, best = trainer.usage()
    window = trainer.loss_log
    final = {k: float(np.mean([w[k] for w in window])) if window else float("nan") for k in _LOSS_KEYS}
    final["l_max_all_masks"] = float(np.mean([float((1.0 - b).mean()) for b in best if b.numel()]))
    final = {k: _finite_or_none(v) for k, v in final.items()}
    labels, views = inp.masks.labels.numpy(), inp.masks.views.numpy()
    consistency = {}
    for lvl in range(N_LEVELS):
        m = levels == lvl
        consistency[LEVELS[lvl]] = _finite_or_none(cross_view_consistency(own[m], labels[m], views[m]))
    manifest = dataclasses.replace(
        expected,
        extra={
            "encoder": inp.encoder,
            "dim": inp.dim,
            "n_prototypes": cfg.n_prototypes,
            "levels": list(LEVELS),
            "shared_codebook": cfg.shared_codebook,
            "images": list(inp.masks.stems),
            "preprocessed": str(inp.folder),
            "n_masks": [int((levels == lvl).sum()) for lvl in range(N_LEVELS)],
            "n_labeled_masks": [int(((levels == lvl) & (labels >= 0)).sum()) for lvl in range(N_LEVELS)],
            "used_prototypes": [int((u > 0).sum()) for u in usage],
            "final_losses": final,
            "cross_view_consistency": consistency,
            "usage_log": trainer.usage_log,
            "steps": trainer.step,
            **coverage,
        },
    )
    manifest.save(out_dir)
    if ckpt.is_file():
        ckpt.unlink()
    return CodebookResult(
        out_dir=out_dir,
        prototypes=prototypes,
        usage=torch.from_numpy(usage),
        manifest=manifest,
        skipped=False,
        resumed_from=resumed_from,
    )
