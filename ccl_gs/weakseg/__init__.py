"""The 3D-OVS method (Liu et al., NeurIPS 2023): weakly supervised open-vocabulary segmentation on frozen Gaussians.

Given only the class names of a scene (``segmentations/classes.txt``), a
per-Gaussian feature is distilled from multi-scale CLIP crops and DINO
feature correlations, and every pixel takes the argmax over those names.

- :mod:`ccl_gs.weakseg.targets`: the targets stage (multi-scale per-pixel CLIP, DINO tokens).
- :mod:`ccl_gs.weakseg.losses`: feature distillation, RDA and FDA (pure functions).
- :mod:`ccl_gs.weakseg.model`: the per-Gaussian feature, the affine decoder and the scale selection.
- :mod:`ccl_gs.weakseg.train`: training on frozen geometry (``python -m ccl_gs.weakseg``).
- :mod:`ccl_gs.weakseg.query`: the ``"weakseg"`` run kind of ``render.py --field-dir`` and the viewer.
"""
