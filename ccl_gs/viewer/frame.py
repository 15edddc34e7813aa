"""One viewer frame: a trained run rendered at a camera with the current query settings.

Everything here is a thin use of :mod:`ccl_gs.field.render` (the one render /
query mechanism of every run kind): ``render_view`` for the colour,
``relevancy_maps`` + ``heatmap_over`` for the heat map, ``feature_basis`` +
``features_png`` for the colour view of the language features,
``selection_masks`` for the highlight of what "Select" exports, and
``write_selections`` for the PLY export itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ccl_gs.field.language import QueryError, encode_queries
from ccl_gs.field.render import (
    QueryModel,
    features_png,
    heatmap_over,
    make_encoder,
    peak_level,
    selection_masks,
)
from ccl_gs.masks.types import LEVELS

DISPLAYS = ("heat map", "rgb", "features")
"""What a frame shows: relevancy over the colour (LERF's composite), the colour alone, the language features."""
AUTO_LEVEL = "auto"
HIGHLIGHT_RGB = (255, 0, 255)
"""Colour of the selection highlight."""


def parse_queries(text: str) -> tuple[str, ...]:
    """Queries typed in one box, separated by ``;`` (blank ones dropped): ``"mug; red table"`` -> ``("mug", "red table")``."""
    return tuple(q.strip() for q in text.split(";") if q.strip())


def level_names(n_levels: int) -> tuple[str, ...]:
    """Names of a run's language levels: the two mask levels of a semantic field (``sp``, ``wp``), or ``level i``."""
    if n_levels == len(LEVELS):
        return tuple(LEVELS)
    return tuple(f"level {i}" for i in range(n_levels))


@dataclass(frozen=True)
class DisplayState:
    """What the page asks to see (the GUI's values)."""

    queries: tuple[str, ...] = ()
    shown: int = 0
    """Index of the query whose heat map / selection is shown."""
    display: str = "heat map"
    """One of :data:`DISPLAYS`."""
    level: str = AUTO_LEVEL
    """``auto`` (the level whose map peaks highest, as render.py) or a name of :func:`level_names`."""
    relevancy: str = "canonical"
    """``canonical`` (LERF's, against "object", "things", ...) or ``softmax`` (over the query set)."""
    threshold: float = 0.4
    """Normalized-relevancy threshold of the selection (render.py's ``--threshold``)."""
    select: bool = False
    """Highlight what the PLY export of the shown query holds."""


class QueryEncoder:
    """The run's text encoder (rebuilt from its recorded spec on first use) and the embeddings of the last queries."""

    def __init__(self, model: QueryModel) -> None:
        self.model = model
        self._encoder = None
        self._last: tuple[tuple[str, ...], Tensor, Tensor | None] | None = None

    def load(self):
        """The encoder, built and checked against the run on first use."""
        if self._encoder is None:
            enc = make_encoder(self.model.encoder_spec)
            self.model.check_encoder(enc)
            self._encoder = enc
        return self._encoder

    def embeddings(self, queries: tuple[str, ...]) -> tuple[Tensor, Tensor | None]:
        """Query embeddings ``[Q, D]`` and canonical phrase embeddings ``[P, D]`` of ``queries``."""
        if not queries:
            raise QueryError("no query")
        if self._last is None or self._last[0] != queries:
            q, c = encode_queries(self.load(), list(queries))
            self._last = (queries, q, c)
        return self._last[1], self._last[2]


@dataclass
class Frame:
    """A rendered frame and what it took."""

    image: np.ndarray  # [H, W, 3] uint8
    seconds: float
    level: str | None = None
    """Level the heat map / mask was taken at (None without a query)."""
    peak: float | None = None
    """Highest relevancy of the shown query in the frame."""
    info: dict[str, Any] = field(default_factory=dict)


def highlight_over(rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = HIGHLIGHT_RGB,
                   alpha: float = 0.55) -> np.ndarray:
    """``rgb [H, W, 3]`` uint8 with the pixels of ``mask [H, W]`` blended towards ``color``."""
    out = rgb.astype(np.float32)
    m = np.asarray(mask, bool)
    out[m] = (1 - alpha) * out[m] + alpha * np.asarray(color, np.float32)
    return (out + 0.5).astype(np.uint8)


def has_language(model: QueryModel) -> bool:
    """Whether the run answers text queries (an RGB-only run has no language levels)."""
    return int(model.n_levels) > 0


@torch.no_grad()
def render_frame(model: QueryModel, encoder: QueryEncoder, item: dict[str, Any], state: DisplayState) -> Frame:
    """Render ``item`` (a camera, see :func:`ccl_gs.viewer.camera.render_item`) as ``state`` asks."""
    t0 = time.perf_counter()
    view = model.render_view(item)
    image = view.rgb
    lang = has_language(model)
    if lang and state.display == "features":
        image = features_png(view.features, *model.feature_basis(view))
    level = peak = None
    if lang and state.queries and (state.display == "heat map" or state.select):
        q_emb, c_emb = encoder.embeddings(state.queries)
        qi = min(max(state.shown, 0), len(state.queries) - 1)
        rel = model.relevancy_maps(view, q_emb, state.relevancy, c_emb)  # [L, Q, H, W]
        names = level_names(rel.shape[0])
        lv = peak_level(rel[:, qi]) if state.level not in names else names.index(state.level)
        level, r = names[lv], rel[lv, qi].float().cpu()
        peak = float(r.max())
        if state.display == "heat map":
            image = heatmap_over(image, r.numpy())
        if state.select:
            m = selection_masks(model, view, rel, q_emb, state.relevancy, c_emb, state.threshold)[qi]
            image = highlight_over(image, m.cpu().numpy())
    return Frame(np.ascontiguousarray(image), time.perf_counter() - t0, level, peak)


def export_selection(model: QueryModel, encoder: QueryEncoder, state: DisplayState, out: Path) -> dict[str, Any]:
    """Write the PLY of every query's selection into ``out`` (render.py's ``selection/<query>.ply``).

    Returns ``{"counts": {query: n}, "paths": {query: path or None}}`` (None: nothing selected, no file).
    """
    from ccl_gs.metrics.lerf_ovs import query_slug

    if not state.queries:
        raise QueryError("type a query first")
    q_emb, c_emb = encoder.embeddings(state.queries)
    slugs = [query_slug(q) for q in state.queries]
    counts = model.write_selections(Path(out), list(state.queries), slugs, q_emb, state.relevancy, c_emb,
                                    state.threshold)
    paths = {q: (Path(out) / f"{s}.ply" if counts.get(q) else None) for q, s in zip(state.queries, slugs)}
    return {"counts": counts, "paths": paths}
