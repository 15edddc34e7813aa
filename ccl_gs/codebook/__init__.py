"""Stage 2 of CCL-LGS: the contrastive codebook.

N learnable prototypes per level; every mask feature picks its nearest
prototype, ``L_max`` pulls the chosen prototype onto the feature, ``L_pull``
joins the prototypes chosen by masks of one tracked object across views and
``L_push`` keeps those of different objects below a cosine margin. The
output is a per-pixel prototype index map per level, the target of the
semantic field.

Library: :func:`train_codebook`, :func:`load_codebook`, the losses in
:mod:`ccl_gs.codebook.losses`, quality measures in
:mod:`ccl_gs.codebook.quality`. CLI: ``python -m ccl_gs.codebook``.
"""

from ccl_gs.codebook.config import CODEBOOK_VARIANTS, CodebookConfig, codebook_variant
from ccl_gs.codebook.data import MaskSet, PreprocessedInput, load_preprocessed
from ccl_gs.codebook.losses import assign, codebook_loss, max_loss, pull_loss, push_loss
from ccl_gs.codebook.quality import codebook_quality, cross_view_consistency
from ccl_gs.codebook.train import CodebookResult, CodebookTrainer, load_codebook, train_codebook

__all__ = [
    "CODEBOOK_VARIANTS",
    "CodebookConfig",
    "CodebookResult",
    "CodebookTrainer",
    "MaskSet",
    "PreprocessedInput",
    "assign",
    "codebook_loss",
    "codebook_quality",
    "codebook_variant",
    "cross_view_consistency",
    "load_codebook",
    "load_preprocessed",
    "max_loss",
    "pull_loss",
    "push_loss",
    "train_codebook",
]
