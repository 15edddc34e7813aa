"""Stage 4 outputs: renders, relevancy heat maps, masks, eval inputs and 3D selections.

:func:`render_queries` writes, for a trained field and a list of text queries,
into ``--out``::

    rgb/<view>.png                       rendered colour
    features/<view>.png                  the rendered language features, first 3 principal components as RGB
    heatmap/<view>/<query>.png           relevancy (turbo colour map) over the RGB
    mask/<view>/<query>.png              normalized relevancy > threshold at the chosen level
    lerf_ovs/<scene>/<view>/<query>.npy  float32 [L, H, W] relevancy (eval/lerf_ovs.py input)
    lerf_ovs_3d/<scene>/<view>/<query>.npy  float32 [1, H, W] accumulated opacity of the Gaussians the
                                         query selects under the 3D-selection protocol, rendered alone
                                         (eval/lerf_ovs.py --protocol 3d; runs with per-Gaussian language)
    ovs3d/<scene>/<view>.npy             float32 [C, H, W] class scores (eval/ovs3d.py, argmax protocol)
    ovs3d_levels/<scene>/<view>.npy      float32 [L, C, H, W] relevancy (eval/ovs3d.py, threshold protocol)
    selection/<query>.ply                the Gaussians relevant to the query (3DGS PLY)
    render.json                          queries, views, levels, timing

Which views and queries: ``--queries`` over a ``--split`` (``train``,
``test``, ``all``, or ``path``: ``--path-frames`` poses interpolated through
the training cameras in order, written as ``path_XXXXX``, PNGs only); or a LERF-OVS
label folder (``--lerf-labels label/<scene>``: its categories over its
labelled frames, ``frame_XXXXX`` = view ``XXXXX - 1``); or a 3D-OVS scene
(``--ovs3d-data <scene>``: the classes of ``segmentations/classes.txt`` over
the views named by the folders under ``segmentations/``).

3D-OVS class scores are ``max`` over levels of the cosine similarity of the
pixel's decoded prototype with the class text; any monotone score gives the
same closed-set argmax.

The relevancy form is chosen by name (``canonical`` = LERF's pairwise
softmax against "object", "things", "stuff", "texture"; ``softmax`` = over
the query set, CCL-LGS's) and computed by :func:`ccl_gs.query.relevancy`.

The rules of the outputs are shared with the interactive viewer
(:mod:`ccl_gs.viewer`): :func:`peak_level` (the "auto" level),
:func:`query_mask` (the mask PNGs), :func:`selection_masks` (where the PLY
selection lies in a view: the selected Gaussians rendered, or the 2D mask for
runs without per-Gaussian selections); :class:`RGBRunModel` gives an RGB-only
``train.py`` run the rendering half of :class:`QueryModel`
(:func:`load_viewable_run` loads either).

Modules
=======

* :mod:`~ccl_gs.field.render.planning`: :class:`RenderConfig` and the views and queries it names (:func:`plan`, :func:`camera_path`);
* :mod:`~ccl_gs.field.render.runs`: :class:`QueryModel`, the run kinds (:func:`register_run_kind`, :func:`load_query_model`), the Gaussian and RGB-only runs (:func:`load_viewable_run`);
* :mod:`~ccl_gs.field.render.images`: PNG files, heat maps and feature colours;
* :mod:`~ccl_gs.field.render.outputs`: :func:`peak_level`, :func:`query_mask`, :func:`selection_masks` and :func:`render_queries`.

Every name is importable from ``ccl_gs.field.render`` itself.
"""

from __future__ import annotations

from ccl_gs.field.render.images import _save_png, feature_colors, features_png, heatmap_over
from ccl_gs.field.render.outputs import peak_level, query_mask, render_queries, selection_masks
from ccl_gs.field.render.planning import RenderConfig, RenderPlan, camera_path, plan
from ccl_gs.field.render.runs import (
    RUN_KIND_PLUGINS,
    RUN_KINDS,
    GaussianQueryModel,
    GaussianView,
    QueryModel,
    RGBRunModel,
    RunKind,
    _tensor_key,
    load_query_model,
    load_viewable_run,
    make_encoder,
    register_run_kind,
    render_gaussian_rgb,
)

__all__ = [
    "RUN_KINDS",
    "RUN_KIND_PLUGINS",
    "GaussianQueryModel",
    "GaussianView",
    "QueryModel",
    "RGBRunModel",
    "RenderConfig",
    "RenderPlan",
    "RunKind",
    "camera_path",
    "feature_colors",
    "features_png",
    "heatmap_over",
    "load_query_model",
    "load_viewable_run",
    "make_encoder",
    "peak_level",
    "plan",
    "query_mask",
    "register_run_kind",
    "render_gaussian_rgb",
    "render_queries",
    "selection_masks",
]
