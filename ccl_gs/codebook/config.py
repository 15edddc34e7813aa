"""Configuration of the contrastive codebook (stage 2) and its named variants."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal


@dataclass
class CodebookConfig:
    """Contrastive codebook learning (CCL), CCL-LGS Sec. 3.3.

    The loss per step is ``L = w_max L_max + w_pull L_pull + w_push L_push``
    (paper: 1, 0.25, 0.25, margin 0.7). See :mod:`ccl_gs.codebook.losses`.
    """

    n_prototypes: int = field(
        default=64,
        metadata={"help": "N, prototypes per codebook (the decoder later predicts N logits per pixel)"},
    )
    margin: float = field(
        default=0.7,
        metadata={"help": "m, push margin: different-label prototype pairs are pushed below this cosine"},
    )
    pull_gate: float | None = field(
        default=None,
        metadata={"help": "pull only same-label pairs whose prototypes have cosine above this (robust to tracker "
                          "identity switches; not in the paper); None = pull every same-label pair"},
    )
    w_max: float = field(default=1.0, metadata={"help": "weight of L_max = 1 - cos(F_i, T_j*)"})
    w_pull: float = field(default=0.25, metadata={"help": "weight of L_pull (same-label prototype pairs)"})
    w_push: float = field(default=0.25, metadata={"help": "weight of L_push (different-label prototype pairs)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate of the prototypes"})
    iterations: int = field(default=3000, metadata={"help": "optimizer steps (each codebook is stepped together)"})
    batch_size: int = field(
        default=4096,
        metadata={"help": "mask features per step for L_max, drawn without replacement; <= 0 = all masks"},
    )
    pairs_within: int = field(
        default=256,
        metadata={"help": "mask pairs per step from the same view (half same-label, half different-label)"},
    )
    pairs_across: int = field(
        default=1024,
        metadata={"help": "mask pairs per step from different views (half same-label, half different-label)"},
    )
    shared_codebook: bool = field(
        default=False,
        metadata={"help": "one codebook for both levels (sp, wp) instead of one codebook per level"},
    )
    init: Literal["kmeans++", "random_features", "random"] = field(
        default="kmeans++",
        metadata={"help": "prototype init: k-means++ on features (cosine), random features or random unit vectors"},
    )
    reseed_every: int = field(
        default=100,
        metadata={"help": "steps between usage counts over all masks; dead prototypes are re-seeded then; 0 = never"},
    )
    reseed_until: float = field(
        default=0.8,
        metadata={"help": "fraction of iterations after which dead prototypes are only counted, not re-seeded"},
    )
    checkpoint_every: int = field(
        default=250, metadata={"help": "steps between resumable checkpoints (prototypes, Adam state, step, RNG)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of init, batch and pair sampling"})

    def __post_init__(self) -> None:
        if self.n_prototypes < 1:
            raise ValueError(f"--n-prototypes must be >= 1, got {self.n_prototypes}")
        if not 0.0 <= self.reseed_until <= 1.0:
            raise ValueError(f"--reseed-until must be in [0, 1], got {self.reseed_until}")
        for name in ("iterations", "pairs_within", "pairs_across", "reseed_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")


CODEBOOK_VARIANTS: dict[str, CodebookConfig] = {
    "ccl": CodebookConfig(),
    "no_pull_push": CodebookConfig(w_pull=0.0, w_push=0.0),
    "pull_only": CodebookConfig(w_push=0.0),
    "push_only": CodebookConfig(w_pull=0.0),
    "ccl_gated": CodebookConfig(pull_gate=0.7),
}
"""Named codebook configs: the method (``"ccl"``), its loss ablations (paper
Table 2: baseline = L_max only, w/ pull, w/ push), and ``"ccl_gated"``: CCL
whose pull skips same-label pairs of prototypes already further apart than
the push margin (cosine <= 0.7), so pull and push share one boundary and a
tracker identity switch cannot drag two objects' prototypes together."""


def codebook_variant(name: str, **overrides) -> CodebookConfig:
    """A copy of the registered variant ``name`` with ``overrides`` applied."""
    if name not in CODEBOOK_VARIANTS:
        raise KeyError(f"unknown codebook variant '{name}'; known: {sorted(CODEBOOK_VARIANTS)}")
    return dataclasses.replace(CODEBOOK_VARIANTS[name], **overrides)
