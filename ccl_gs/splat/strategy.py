"""Densification and pruning through gsplat's strategy objects.

We use :class:`gsplat.strategy.DefaultStrategy` (the 3DGS rule: clone small
and split large Gaussians whose accumulated screen-space gradient exceeds a
threshold, prune transparent and oversized ones). Its render-info contract
(``means2d``, ``radii``, ``width``, ``height``, ``n_cameras``,
``gaussian_ids``) is honoured by both rasterizer backends.

One deliberate change: in gsplat 1.5.3 the periodic opacity reset never fires
(``step % reset_every == 0 & step > 0`` parses as a chained comparison with
``0 & step``). :class:`DensifyStrategy` performs the reset the 3DGS way
(every ``reset_every`` steps while refining), so ``reset_every`` means what
it says. Set it larger than the number of iterations to disable it, which is
the default of short CPU schedules.

The start and stop of densification default to fractions of the run (3DGS
densifies from step 500 to 15k of 30k): :meth:`DensifyConfig.resolved` fills
them from the iteration count, so a short run does not densify to its last
step (new Gaussians then never converge) and a long one is not cut short.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from gsplat.strategy import DefaultStrategy
from gsplat.strategy.ops import reset_opa


@dataclass
class DensifyConfig:
    """Densification schedule (gsplat DefaultStrategy fields; 3DGS defaults but the growth threshold and the
    start / stop, which follow the run length)."""

    refine_start_iter: int | None = field(
        default=None, metadata={"help": "First step that densifies (None: min(500, iterations / 10); 3DGS: 500)."}
    )
    refine_stop_iter: int | None = field(
        default=None, metadata={"help": "Step where densification stops (None: 55%% of the iterations; 3DGS: 15k of 30k)."}
    )
    refine_every: int = field(default=100, metadata={"help": "Densify every this many steps."})
    reset_every: int = field(default=3000, metadata={"help": "Reset opacities every this many steps while refining."})
    grow_grad2d: float = field(
        default=0.0001,
        metadata={
            "help": "Screen-space gradient threshold for growing (3DGS: 2e-4 over 145 densification steps; a short run "
            "densifies a few times, so half of it)."
        },
    )
    grow_scale3d: float = field(default=0.01, metadata={"help": "Clone below / split above this scale (x scene scale)."})
    prune_opa: float = field(default=0.005, metadata={"help": "Prune Gaussians below this opacity."})
    prune_scale3d: float = field(default=0.1, metadata={"help": "Prune Gaussians larger than this (x scene scale), after the first reset."})
    absgrad: bool = field(default=False, metadata={"help": "Use absolute gradients (gsplat's AbsGS option; CUDA backend only)."})
    verbose: bool = field(default=False, metadata={"help": "Print densification events."})

    def __post_init__(self) -> None:
        for name in ("refine_start_iter", "refine_stop_iter"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"--densify.{name.replace('_', '-')} must be >= 0, got {v}")
        if self.refine_every < 1:
            raise ValueError(f"--densify.refine-every must be >= 1, got {self.refine_every}")
        if self.reset_every < 1:
            raise ValueError(f"--densify.reset-every must be >= 1, got {self.reset_every}")

    def resolved(self, iterations: int) -> "DensifyConfig":
        """This config with the unset start / stop filled for a run of ``iterations`` steps."""
        start = min(500, iterations // 10) if self.refine_start_iter is None else self.refine_start_iter
        stop = int(0.55 * iterations) if self.refine_stop_iter is None else self.refine_stop_iter
        return replace(self, refine_start_iter=start, refine_stop_iter=stop)


class DensifyStrategy(DefaultStrategy):
    """gsplat's DefaultStrategy with a working periodic opacity reset."""

    def step_post_backward(self, params, optimizers, state: dict[str, Any], step: int, info: dict[str, Any], packed: bool = False):
        super().step_post_backward(params, optimizers, state, step, info, packed=packed)
        if 0 < step < self.refine_stop_iter and step % self.reset_every == 0:
            reset_opa(params=params, optimizers=optimizers, state=state, value=self.prune_opa * 2.0)


def make_strategy(cfg: DensifyConfig, iterations: int) -> DensifyStrategy:
    """Build the strategy object from its config for a run of ``iterations`` steps."""
    cfg = cfg.resolved(iterations)
    return DensifyStrategy(
        refine_start_iter=cfg.refine_start_iter,
        refine_stop_iter=cfg.refine_stop_iter,
        refine_every=cfg.refine_every,
        reset_every=cfg.reset_every,
        grow_grad2d=cfg.grow_grad2d,
        grow_scale3d=cfg.grow_scale3d,
        prune_opa=cfg.prune_opa,
        prune_scale3d=cfg.prune_scale3d,
        absgrad=cfg.absgrad,
        verbose=cfg.verbose,
    )


def strategy_state_to_cpu(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpointable copy of the strategy state."""
    return {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
