"""ccl-gs: open-vocabulary 3D scene understanding with Gaussian splatting.

The library is importable without side effects; the command-line tools
(``train.py``, ``render.py``, ``preprocess/``, ``eval/``) are thin wrappers.
"""

__version__ = "0.1.0"
