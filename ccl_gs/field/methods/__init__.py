"""Stage-3 methods: how the per-Gaussian feature is supervised and turned into language.

A method is two pieces, registered by name in :data:`FIELD_METHODS`:

* a **supervision** (:class:`Supervision`): reads the method's stage-2
  artifact, gives each training view its targets and builds the head;
* a **head** (:class:`LanguageHead`, an ``nn.Module``): the loss of rendered
  features against those targets, and the language of any set of features
  (rendered pixels or the Gaussians' own) as scores against text queries.
  It is saved inside ``field.pt`` and restored by name at query time.

Methods (the stage-2 artifact ``--supervision`` points to picks one by its
manifest kind, see :data:`METHOD_OF_KIND`):

``codebook`` (CCL-LGS; artifact: a codebook)
    ``d_f``-d feature -> MLP -> per level ``N_l + 1`` logits (the last =
    "no mask"); cross-entropy against the prototype index maps; the language
    of a pixel is its argmax prototype.
``raw`` (baseline; artifact: the preprocess folder itself)
    ``d_f``-d feature -> MLP -> per level a ``D``-d embedding, regressed with
    ``1 - cos`` onto the CLIP feature of the mask covering the pixel (no
    codebook, no compression other than the MLP).
``autoencoder`` (LangSplat-style baseline; artifact: a language autoencoder)
    a 3-d feature per level (plus a coverage logit: ``4 L`` values), regressed
    with L1 onto the autoencoder latent of the covering mask's feature and
    decoded by the autoencoder's decoder at query time.

Pixels that no mask covers: the codebook head learns them as "no mask" (and
they score ``fill``); the two baselines regress their embedding on covered
pixels only, as LangSplat does, and learn coverage with one more logit per
level, so that uncovered pixels score ``fill`` in every method. The fit measure in the metrics is the label accuracy (codebook) or
the mean cosine of the decoded embedding with the covering mask's feature
(both baselines, so the two are comparable).

``--decoder.*`` shapes the codebook and raw heads; the autoencoder head has
no decoder of its own (its feature is the latent and coverage, ``4 L`` values).

Modules
=======

* :mod:`~ccl_gs.field.methods.heads`: :class:`LanguageHead` and the codebook, raw and autoencoder heads;
* :mod:`~ccl_gs.field.methods.supervisions`: :class:`Supervision` and its kinds, :data:`FIELD_METHODS`, :func:`method_of`.

Every name is importable from ``ccl_gs.field.methods`` itself.
"""

from __future__ import annotations

from ccl_gs.field.methods.heads import (
    AutoencoderHead,
    CodebookHead,
    EmbeddingHead,
    LanguageHead,
    RawHead,
    ScoreFn,
    _mlp_trunk,
)
from ccl_gs.field.methods.supervisions import (
    FIELD_METHODS,
    METHOD_OF_KIND,
    AutoencoderSupervision,
    CodebookSupervision,
    FieldMethod,
    MaskFeatureSupervision,
    RawSupervision,
    Supervision,
    _require,
    method_of,
    resize_index,
)
from ccl_gs.field.model import NO_MASK

__all__ = [
    "FIELD_METHODS", "METHOD_OF_KIND", "NO_MASK", "AutoencoderHead", "CodebookHead", "EmbeddingHead",
    "FieldMethod", "LanguageHead", "RawHead", "Supervision", "method_of", "resize_index",
]
