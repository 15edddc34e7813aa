"""Synthetic scenes with exact semantic ground truth, in the real benchmarks' layouts.

No benchmark photos and no pretrained weights are needed: objects of named
classes, made of named parts and subparts (analytic shapes with procedural
textures), stand on a textured floor inside walls; an independent NumPy ray
caster renders RGB, depth and exact instance / part / subpart / class maps;
writers produce the 3D-OVS (LLFF) and LERF-OVS (nerfstudio + LangSplat
labels) folder layouts; :mod:`~ccl_gs.data.synthetic.simulate` derives
SAM-like masks and SAM2-like tracks with controlled imperfections; the
``"oracle"`` encoder (:mod:`ccl_gs.encoders.oracle`) embeds masks by their
ground-truth classes.

Command line: ``python -m ccl_gs.data.synthetic --out DIR --layout both --size 128 --views 24 --path orbit --seed 0``.
"""

from __future__ import annotations

from pathlib import Path

from ccl_gs.data.synthetic.generator import SyntheticConfig, SyntheticScene, make_scene
from ccl_gs.data.synthetic.gt import GroundTruth
from ccl_gs.data.synthetic.objects import OBJECT_CLASSES
from ccl_gs.data.synthetic.render import render_view
from ccl_gs.data.synthetic.simulate import SimConfig, simulate_masks, simulate_tracks, write_simulation
from ccl_gs.data.synthetic.writers import OutputConfig, write_dataset
from ccl_gs.encoders import oracle as _oracle  # noqa: F401  (registers the "oracle" encoder)
from ccl_gs.io.artifacts import check_out_dir

__all__ = [
    "OBJECT_CLASSES",
    "GroundTruth",
    "OutputConfig",
    "SimConfig",
    "SyntheticConfig",
    "SyntheticScene",
    "generate",
    "make_scene",
    "render_view",
    "simulate_masks",
    "simulate_tracks",
    "write_dataset",
    "write_simulation",
]


def generate(scene_cfg: SyntheticConfig, out_cfg: OutputConfig, sim_cfg: SimConfig | None = None) -> list[Path]:
    """Generate, render and write one scene; returns the scene folders written.

    With ``out_cfg.simulate`` the simulated masks and tracks of ``sim_cfg``
    (default :class:`SimConfig`) are written into each scene folder too.

    Raises:
        ValueError: an impossible option (the message names the flag).
        ArtifactError: ``out_cfg.out`` is (or lies below) a file.
    """
    check_out_dir(out_cfg.out)
    scene_cfg.validate()
    scene = make_scene(scene_cfg)
    out_cfg.validate(scene.n_views)
    sim_cfg = sim_cfg or SimConfig()
    if out_cfg.simulate:
        sim_cfg.resolved()  # fail on bad options before rendering
    renders = [render_view(scene, v) for v in range(scene.n_views)]
    roots = write_dataset(scene, renders, out_cfg)
    if out_cfg.simulate:
        for root in roots:
            write_simulation(root, sim_cfg)
    return roots
