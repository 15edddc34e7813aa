"""Viewer frames on a tiny trained field: heat map on the object, levels, features, selection and its export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation

from ccl_gs.field.language import QueryError
from ccl_gs.field.render import (
    RenderConfig,
    RGBRunModel,
    features_png,
    load_viewable_run,
    render_queries,
)
from ccl_gs.io.ply import read_gaussians_ply
from ccl_gs.viewer.frame import (
    DisplayState,
    QueryEncoder,
    export_selection,
    level_names,
    parse_queries,
    render_frame,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model(tiny_field):
    import ccl_gs.encoders.oracle  # noqa: F401

    return load_viewable_run(tiny_field["field"], None, CPU)


@pytest.fixture(scope="module")
def encoder(model):
    return QueryEncoder(model)


def objects(gt) -> list[str]:
    return [c for c in gt.classes if c not in gt.meta["stuff_classes"]]


def test_parse_queries_and_level_names():
    assert parse_queries(" mug ;; red table; ") == ("mug", "red table")
    assert parse_queries("") == ()
    assert level_names(2) == ("sp", "wp") and level_names(1) == ("level 0",)


def test_heat_map_lies_on_the_queried_object(model, encoder, ground_truth, heat):
    ds = model.dataset("train")
    for i in (0, len(ds) - 1):
        item = ds[i]
        classes = ground_truth.view(item["index"])["class_id"]
        base = render_frame(model, encoder, item, DisplayState(display="rgb")).image
        for name in objects(ground_truth):
            obj = classes == ground_truth.classes.index(name) + 1
            f = render_frame(model, encoder, item, DisplayState(queries=(name,)))
            hot = heat(f.image, base) > 0.5
            assert f.level in ("sp", "wp") and f.peak > 0.5
            assert hot.sum() >= 0.4 * obj.sum(), name  # covers the object
            assert (hot & binary_dilation(obj)).sum() >= 0.9 * hot.sum(), name  # and little else


def test_level_switch_and_the_shown_query(model, encoder, ground_truth):
    item = model.dataset("train")[0]
    names = tuple(objects(ground_truth))
    for lv in ("sp", "wp"):
        assert render_frame(model, encoder, item, DisplayState(queries=names, level=lv)).level == lv
    a = render_frame(model, encoder, item, DisplayState(queries=names, shown=0)).image
    b = render_frame(model, encoder, item, DisplayState(queries=names, shown=1)).image
    assert (a != b).any()
    # the plain colour ignores the queries
    rgb = render_frame(model, encoder, item, DisplayState(queries=names, display="rgb"))
    np.testing.assert_array_equal(rgb.image, model.render_view(item).rgb)
    assert rgb.level is None


def test_features_view_is_the_render_libraries_colouring(model, encoder):
    item = model.dataset("train")[1]
    f = render_frame(model, encoder, item, DisplayState(display="features"))
    view = model.render_view(item)
    np.testing.assert_array_equal(f.image, features_png(view.features, *model.feature_basis(view)))
    assert f.image.shape == (item["height"], item["width"], 3)


def test_select_highlights_what_the_export_writes(tiny_field, model, encoder, ground_truth, tmp_path):
    ds = model.dataset("train")
    item = ds[0]
    classes = ground_truth.view(item["index"])["class_id"]
    name = objects(ground_truth)[0]
    obj = classes == ground_truth.classes.index(name) + 1
    plain = render_frame(model, encoder, item, DisplayState(queries=(name,), display="rgb")).image
    sel = render_frame(model, encoder, item, DisplayState(queries=(name,), display="rgb", select=True)).image
    lit = (sel != plain).any(-1)
    assert lit.sum() >= 0.3 * obj.sum()
    assert (lit & binary_dilation(obj, iterations=2)).sum() >= 0.8 * lit.sum()
    # the export: one PLY per query, the same Gaussians render.py selects
    state = DisplayState(queries=(name, "wall"), threshold=0.4)
    res = export_selection(model, encoder, state, tmp_path / "sel")
    n = res["counts"][name]
    assert n > 0 and len(read_gaussians_ply(res["paths"][name])) == n
    s = render_queries(RenderConfig(field_dir=tiny_field["field"], out=tmp_path / "render", queries=list(state.queries),
                                    split="test", write_png=False))
    assert s["selected"] == res["counts"]
    with pytest.raises(QueryError, match="type a query"):
        export_selection(model, encoder, DisplayState(), tmp_path / "none")


def test_rgb_only_run_renders_without_language(tiny_field, model, encoder):
    rgb = load_viewable_run(None, tiny_field["rgb"], CPU)
    assert isinstance(rgb, RGBRunModel) and rgb.n_levels == 0
    item = model.dataset("train")[2]
    f = render_frame(rgb, QueryEncoder(rgb), item, DisplayState(queries=("wall",), select=True))
    # the field trained with the frozen schedule keeps the RGB run's Gaussians: same colours
    diff = np.abs(f.image.astype(int) - model.render_view(item).rgb.astype(int))
    assert diff.mean() < 2.0 and f.level is None
    with pytest.raises(QueryError, match="no language"):
        rgb.relevancy_maps(None, None, "canonical", None)


def test_load_errors_are_one_line(tiny_field, tmp_path):
    with pytest.raises(QueryError, match="exactly one of"):
        load_viewable_run(None, None, CPU)
    with pytest.raises(QueryError, match="exactly one of"):
        load_viewable_run(tiny_field["field"], tiny_field["rgb"], CPU)
    with pytest.raises(QueryError, match="no RGB run"):
        load_viewable_run(None, tmp_path / "missing", CPU)
    with pytest.raises(QueryError, match="no finished RGB run"):
        load_viewable_run(None, tmp_path, CPU)
    with pytest.raises(QueryError, match="no trained run"):
        load_viewable_run(tmp_path / "missing", None, CPU)
