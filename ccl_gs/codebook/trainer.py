"""One codebook run's training state and its step: :class:`CodebookTrainer` (losses, Adam, dead-prototype re-seeding).

See :mod:`ccl_gs.codebook.train` for the step and the codebooks.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from ccl_gs.codebook.config import CodebookConfig
from ccl_gs.codebook.data import N_LEVELS, MaskSet
from ccl_gs.codebook.init import init_prototypes, worst_represented
from ccl_gs.codebook.losses import assign, codebook_loss, normalize
from ccl_gs.codebook.pairs import PairSampler
from ccl_gs.runtime import device_for_run

log = logging.getLogger(__name__)

_LOSS_KEYS = ("loss", "l_max", "l_pull", "l_push")
_FINAL_WINDOW = 50
"""Final losses in the manifest are means over this many last steps."""


def default_device() -> torch.device:
    """CUDA when available, else CPU (single-threaded, see :data:`ccl_gs.runtime.CPU_TORCH_THREADS`)."""
    return device_for_run()


def _pools(masks: MaskSet, shared: bool) -> list[Tensor]:
    """Row indices ``[M_c]`` of the masks trained by each codebook."""
    if shared:
        return [torch.arange(masks.features.shape[0])]
    return [torch.nonzero(masks.levels == lvl).flatten() for lvl in range(N_LEVELS)]


def _codebook_of_level(shared: bool) -> list[int]:
    return [0] * N_LEVELS if shared else list(range(N_LEVELS))


class CodebookTrainer:
    """The training state of one codebook run and its step function.

    The trainer owns the prototypes ``[C, N, D]`` (``C`` = 1 shared or 2 per
    level), one Adam optimizer, the sampling generator and the usage log;
    :meth:`state_dict` / :meth:`load_state_dict` are the checkpoint.
    """

    def __init__(self, masks: MaskSet, cfg: CodebookConfig, device: torch.device | str | None = None):
        self.cfg = cfg
        self.device = torch.device(device) if device is not None else default_device()
        self.masks = masks
        self.features = masks.features.to(self.device)  # [M, D]
        self.pools = _pools(masks, cfg.shared_codebook)
        self.samplers = [PairSampler(masks.views[p], masks.labels[p]) for p in self.pools]
        self.generator = torch.Generator().manual_seed(cfg.seed)
        protos = []
        for c, pool in enumerate(self.pools):
            if pool.numel() == 0:
                log.warning("codebook %d has no masks to train on; its prototypes stay random", c)
                protos.append(init_prototypes(self.features[:1], cfg.n_prototypes, "random", self.generator))
            else:
                f = self.features[pool.to(self.device)]
                protos.append(init_prototypes(f, cfg.n_prototypes, cfg.init, self.generator))
        self.prototypes = torch.nn.Parameter(torch.stack(protos).float())  # [C, N, D]
        self.optimizer = torch.optim.Adam([self.prototypes], lr=cfg.lr)
        self.step = 0
        self.loss_log: list[dict[str, float]] = []
        """Per step: the losses averaged over codebooks (last :data:`_FINAL_WINDOW` kept)."""
        self.usage_log: list[dict] = []
        """Per usage count: ``{"step", "used": [C], "dead": [C], "reseeded": [C]}``."""

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "prototypes": self.prototypes.detach().cpu().clone(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.generator.get_state(),
            "loss_log": list(self.loss_log),
            "usage_log": list(self.usage_log),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.prototypes.copy_(state["prototypes"].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["rng"])
        self.step = int(state["step"])
        self.loss_log = list(state["loss_log"])
        self.usage_log = list(state["usage_log"])

    # ------------------------------------------------------------------ step
    def _sample_pairs(self, c: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pool-local indices of positive and negative pairs: ``(pa, pb, na, nb)``, each ``[P]``."""
        s, g, cfg = self.samplers[c], self.generator, self.cfg
        pos, neg = [], []
        for n, same_view in ((cfg.pairs_within, True), (cfg.pairs_across, False)):
            pos.append(s.sample(n - n // 2, positive=True, same_view=same_view, generator=g))
            neg.append(s.sample(n // 2, positive=False, same_view=same_view, generator=g))
        pa, pb = (torch.cat([p[i] for p in pos]) for i in (0, 1))
        na, nb = (torch.cat([p[i] for p in neg]) for i in (0, 1))
        return pa, pb, na, nb

    def train_step(self) -> dict[str, float]:
        """One optimizer step over all codebooks; returns the losses averaged over codebooks."""
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        total = self.prototypes.sum() * 0.0
        sums = dict.fromkeys(_LOSS_KEYS, 0.0)
        n_active = 0
        for c, pool in enumerate(self.pools):
            M = pool.numel()
            if M == 0:
                continue
            B = M if cfg.batch_size <= 0 or cfg.batch_size >= M else cfg.batch_size
            batch = pool if B == M else pool[torch.randperm(M, generator=self.generator)[:B]]
            pa, pb, na, nb = (pool[i] for i in self._sample_pairs(c))
            f = self.features
            dev = self.device
            terms = codebook_loss(
                self.prototypes[c],
                f[batch.to(dev)],
                f[pa.to(dev)],
                f[pb.to(dev)],
                f[na.to(dev)],
                f[nb.to(dev)],
                margin=cfg.margin,
                w_max=cfg.w_max,
                w_pull=cfg.w_pull,
                w_push=cfg.w_push,
                pull_gate=cfg.pull_gate,
            )
            total = total + terms.total
            for k, v in terms.as_floats().items():
                sums[k] += v
            n_active += 1
        total.backward()
        self.optimizer.step()
        self.step += 1
        out = {k: v / max(n_active, 1) for k, v in sums.items()}
        self.loss_log = (self.loss_log + [out])[-_FINAL_WINDOW:]
        return out

    # ----------------------------------------------------------- dead protos
    @torch.no_grad()
    def usage(self) -> tuple[Tensor, list[Tensor]]:
        """Assign every mask of every pool.

        Returns:
            ``(counts [C, N] int64, best_cos)`` with ``best_cos[c]`` ``[M_c]``
            the cosine of each pool mask to its chosen prototype.
        """
        C, N, _ = self.prototypes.shape
        counts = torch.zeros(C, N, dtype=torch.long)
        best = []
        for c, pool in enumerate(self.pools):
            j, cos = assign(self.features[pool.to(self.device)], self.prototypes[c])
            counts[c] = torch.bincount(j.cpu(), minlength=N)
            best.append(cos)
        return counts, best

    @torch.no_grad()
    def count_and_reseed(self, reseed: bool) -> dict:
        """Count dead prototypes and (if ``reseed``) move them onto the worst-represented features."""
        counts, best = self.usage()
        dead = [torch.nonzero(cnt == 0).flatten() for cnt in counts]
        reseeded = [0] * len(dead)
        if reseed:
            state = self.optimizer.state.get(self.prototypes, {})
            for c, d in enumerate(dead):
                pool = self.pools[c]
                if d.numel() == 0 or pool.numel() == 0:
                    continue
                seeds = worst_represented(self.features[pool.to(self.device)], best[c], d.numel())
                rows = d[: seeds.shape[0]].to(self.device)
                self.prototypes.data[c, rows] = seeds.to(self.prototypes.dtype)
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        state[key][c, rows] = 0.0
                reseeded[c] = int(rows.numel())
        entry = {
            "step": self.step,
            "used": [int((cnt > 0).sum()) for cnt in counts],
            "dead": [int(d.numel()) for d in dead],
            "reseeded": reseeded,
        }
        self.usage_log.append(entry)
        log.info("step %d: used %s, dead %s, re-seeded %s", self.step, entry["used"], entry["dead"], reseeded)
        return entry

    def final_prototypes(self) -> Tensor:
        """``[2, N, D]`` unit-norm prototypes, one slice per level."""
        p = normalize(self.prototypes.detach()).cpu()
        return p[_codebook_of_level(self.cfg.shared_codebook)].contiguous()
