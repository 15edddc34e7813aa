"""Multi-view photometric consistency of the rendered depth (a sparse-view geometry regularizer).

With few training views, Gaussians can reproduce every training image while
sitting at the wrong depth: each view is explained by its own, slightly
misplaced structure, and a held-out view between them shows it as doubled or
smeared edges. Depth that is right makes the views agree: a pixel ``p`` of
view ``i``, lifted with the depth rendered there and projected into a
neighbouring view ``j``, lands on the same surface point, so the colour
patches around ``p`` in ``i`` and around its projection in ``j`` match.

:class:`WarpConsistency` turns this into a loss on the depth rendered at a
training step: for random pixels of the view (pixels with alpha >= 0.5 when
the images have alpha), the rendered expected depth lifts the pixel
(:func:`ccl_gs.splat.stereo.backproject`), and the cost is the plane sweep's
(:func:`ccl_gs.splat.stereo.sweep_costs`): the mean absolute difference of
``P x P`` patches, averaged over the ``best_views`` best of the view's
``neighbours`` nearest views, so a neighbour where the point is occluded or
out of frame does not count. Pixels that fewer than ``best_views`` neighbours
see are left out. The gradient moves the depth (hence the Gaussians' means,
scales and opacities) towards where the views agree. It is the unregularized
plane sweep the stereo seeding runs once, applied to the depth being learnt at
every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ccl_gs.splat.stereo import StereoView, backproject, neighbour_views, sweep_costs


@dataclass
class MultiViewConfig:
    """Options of the multi-view consistency loss (``--multiview.*``)."""

    weight: float = field(default=0.0, metadata={"help": "Weight of the multi-view consistency loss (0 = off)."})
    neighbours: int = field(default=4, metadata={"help": "Views compared with each training view (nearest camera centres)."})
    best_views: int = field(default=2, metadata={"help": "A pixel's cost is the mean over its this many best neighbours."})
    pixels: int = field(default=4096, metadata={"help": "Pixels sampled per step."})
    patch: int = field(default=3, metadata={"help": "Patch side in pixels."})
    start: float = field(default=0.1, metadata={"help": "Switch the loss on after this fraction of the steps."})

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"--multiview.weight must be >= 0, got {self.weight}")
        for name in ("neighbours", "best_views", "pixels", "patch"):
            if getattr(self, name) < 1:
                raise ValueError(f"--multiview.{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.best_views > self.neighbours:
            raise ValueError(f"--multiview.best-views ({self.best_views}) must not exceed --multiview.neighbours ({self.neighbours})")
        if not 0.0 <= self.start <= 1.0:
            raise ValueError(f"--multiview.start must be in [0, 1], got {self.start}")


class WarpConsistency:
    """The loss over one training set (views, alphas and neighbour lists prepared once)."""

    def __init__(self, train_set, cfg: MultiViewConfig):
        self.cfg = cfg
        self.views: list[StereoView] = []
        for i in range(len(train_set)):
            item = train_set[i]
            alpha = item.get("alpha")
            self.views.append(
                StereoView(
                    image=item["image"].detach().float(),
                    viewmat=item["viewmat"].detach().float(),
                    K=item["K"].detach().float(),
                    near=0.0,
                    far=0.0,
                    alpha=None if alpha is None else alpha.detach().float(),
                )
            )
        n = len(self.views)
        self.neighbours = (
            neighbour_views(torch.stack([v.viewmat for v in self.views]), cfg.neighbours)
            if n > cfg.best_views
            else torch.zeros(n, 0, dtype=torch.long)
        )
        self._candidates = [self._pixels(v) for v in self.views]

    @staticmethod
    def _pixels(view: StereoView) -> Tensor:
        """``[M, 2]`` pixel centres (x + 0.5, y + 0.5) the loss may sample: alpha >= 0.5, or all."""
        H, W = view.image.shape[:2]
        mask = torch.ones(H, W, dtype=torch.bool, device=view.image.device) if view.alpha is None else view.alpha[..., 0] >= 0.5
        ys, xs = torch.nonzero(mask, as_tuple=True)
        return torch.stack([xs, ys], 1).float() + 0.5

    def loss(self, view: int, depth: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean patch cost of the rendered depth of training view ``view``.

        Args:
            view: position of the view in the training set.
            depth: ``[H, W, 1]`` expected camera-space depth rendered for that view (differentiable).
            generator: source of the pixel sample (torch's default generator when None).
        Returns:
            A scalar on ``depth``'s device; zero (with a graph) when no sampled pixel is seen by
            ``best_views`` neighbours.
        """
        ref = self.views[view]
        nbrs = self.neighbours[view].tolist()
        cand = self._candidates[view]
        if len(nbrs) < self.cfg.best_views or len(cand) == 0:
            return depth.sum() * 0.0
        pick = torch.randint(0, len(cand), (min(self.cfg.pixels, len(cand)),), generator=generator)
        pix = cand[pick.to(cand.device)]  # [R, 2]
        d = depth[..., 0].to(cand.device)[pix[:, 1].long(), pix[:, 0].long()]  # [R]
        valid = d > 1e-4
        world = backproject(ref, pix, d.clamp_min(1e-4)[:, None])  # [R, 1, 3]
        cost = sweep_costs(ref, [self.views[j] for j in nbrs], pix, world, self.cfg.patch, self.cfg.best_views)[:, 0]
        ok = valid & torch.isfinite(cost)
        if not ok.any():
            return depth.sum() * 0.0
        return cost[ok].mean().to(depth.device)


__all__ = ["MultiViewConfig", "WarpConsistency"]
