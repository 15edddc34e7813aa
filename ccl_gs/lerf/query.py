"""Queries of a trained LERF run: the 30-scale search, relevancy maps and 3D relevancy.

Per view and query (``lerf.py`` ``get_outputs_for_camera_ray_bundle``):

1. pass 1: the CLIP head is evaluated on the top-k samples of every pixel at
   each of ``n_scales`` constant scales in ``[0, max_scale]``; the scale whose
   image-wide maximum relevancy is highest is kept (per query);
2. pass 2: the relevancy map at that scale.

Relevancy is :func:`ccl_gs.query.relevancy` (the one implementation). The map
is returned as one "level" (``[1, Q, H, W]``), so the LERF-OVS and 3D-OVS
evaluations read it like a Gaussian field's.

3D relevancy (absent from LERF's code): points where the NeRF puts its
surfaces (the expected ray termination of training-view pixels whose
accumulated opacity exceeds 0.5), scored at each query's scale (the median
of its best scales over the rendered views) and selected with the rule 2D
masks use; one PLY of points per query.

This module registers the ``"lerf"`` run kind of ``render.py --field-dir``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ccl_gs.field.language import QueryError, select_gaussians
from ccl_gs.field.render import feature_colors, register_run_kind
from ccl_gs.io.artifacts import ArtifactError, Manifest
from ccl_gs.lerf.model import LerfModel, LerfModelConfig
from ccl_gs.lerf.train import LERF_VERSION, LerfTrainConfig, Normalization, _load, render_image
from ccl_gs.query import relevancy

N_SCALES = 30
MAX_SCALE = 1.5


@dataclass
class LerfView:
    """One rendered view: RGB and the top-k language samples of every pixel."""

    height: int
    width: int
    rgb: np.ndarray  # [H, W, 3] uint8
    enc: Tensor  # [P, k, E]
    weights: Tensor  # [P, k]
    best: dict[int, float] = field(default_factory=dict)
    """Best scale per query index (set by the search)."""
    clip_at: dict[float, Tensor] = field(default_factory=dict)
    """Rendered unit CLIP ``[P, D]`` per scale used in pass 2."""
    _features: Tensor | None = None

    @property
    def features(self) -> Tensor:
        """``[H, W, D]`` rendered CLIP at scale 1.0 (LERF's ``clip`` output), for display."""
        if self._features is None:
            raise RuntimeError("features are set by LerfQueryModel.render_view")
        return self._features


class LerfQueryModel:
    """A trained LERF run behind :class:`ccl_gs.field.render.QueryModel`.

    Args:
        folder: the run folder (``lerf.pt``, ``config.json``, ``manifest.json``).
        device: where to run.
        n_scales, max_scale: the scale search (LERF: 30 scales in [0, 1.5]).
        search_stride: pass 1 looks at every n-th pixel row and column (1 =
            every pixel, as LERF; larger is the authors' suggested speed-up,
            ``kerrj/lerf`` issue #23); pass 2 is always at full resolution.
        chunk: rays (and CLIP-head samples / k) per chunk.
    """

    n_levels = 1

    def __init__(self, folder: Path, device: torch.device, n_scales: int = N_SCALES, max_scale: float = MAX_SCALE,
                 search_stride: int = 1, chunk: int = 4096) -> None:
        from ccl_gs.config import from_dict
        from ccl_gs.io.artifacts import read_json
        from ccl_gs.splat.trainer import load_run_scene

        folder = Path(folder)
        if not (folder / "lerf.pt").is_file():
            raise QueryError(f"no trained LERF model at {folder / 'lerf.pt'}: train it first (python -m ccl_gs.lerf)")
        ck = _load(folder / "lerf.pt", "lerf")
        self.cfg = from_dict(LerfTrainConfig, read_json(folder / "config.json"))
        check_current(folder)
        mcfg = from_dict(LerfModelConfig, ck["model_config"])
        self.model = LerfModel(mcfg, int(ck["clip_dim"]), int(ck["dino_dim"]), bool(ck["white_background"]))
        try:
            self.model.load_state_dict(ck["model"])
        except RuntimeError as e:
            raise ArtifactError(f"{folder / 'lerf.pt'} does not load into its recorded model config: "
                                f"{str(e).splitlines()[0]}") from e
        self.model.eval()
        self.device = device
        self.norm = Normalization(**ck["normalization"])
        self.encoder_spec: dict[str, Any] = dict(ck["clip_encoder"])
        self.scene = load_run_scene(self.cfg)
        self.test_every = self.cfg.test_every
        if n_scales < 1 or search_stride < 1:
            raise QueryError(f"LERF scale search needs n_scales >= 1 and search_stride >= 1 (got {n_scales}, {search_stride})")
        self.scales = torch.linspace(0.0, max_scale, n_scales)
        self.search_stride = int(search_stride)
        self.chunk = int(chunk)
        self._basis: tuple[Tensor, Tensor, Tensor] | None = None
        self._best_history: dict[bytes, list[float]] = {}
        """Best scales found so far per query (keyed by the query embedding's bytes)."""

    # ------------------------------------------------------------------ views
    def dataset(self, split: str):
        from ccl_gs.splat.trainer import make_dataset

        return make_dataset(self.cfg, self.scene, split, "cpu")

    def check_encoder(self, encoder) -> None:
        want = self.encoder_spec.get("name")
        if want is not None and encoder.name != want:
            raise QueryError(f"query encoder '{encoder.name}' differs from the encoder of the LERF targets '{want}'")

    def c2w(self, viewmat: Tensor) -> Tensor:
        """World-to-camera ``[4, 4]`` -> normalized camera-to-world ``[4, 4]``."""
        return torch.from_numpy(self.norm.c2w(np.linalg.inv(viewmat.cpu().numpy().astype(np.float64)))).float()

    @torch.no_grad()
    def render_view(self, item: dict[str, Any]) -> LerfView:
        H, W = int(item["height"]), int(item["width"])
        r = render_image(self.model, self.c2w(item["viewmat"]), item["K"].cpu(), H, W, self.chunk, language=True)
        rgb = (r["rgb"].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        view = LerfView(H, W, rgb, r["lerf_enc"], r["lerf_weights"])
        view._features = self.clip_at(view, 1.0).view(H, W, -1)
        return view

    @torch.no_grad()
    def clip_at(self, view: LerfView, scale: float, pixels: Tensor | None = None) -> Tensor:
        """Rendered unit CLIP ``[P, D]`` of the view's pixels (or a subset) at one constant scale."""
        enc = view.enc if pixels is None else view.enc[pixels]
        w = view.weights if pixels is None else view.weights[pixels]
        out = []
        for s in range(0, enc.shape[0], self.chunk):
            e = enc[s : s + self.chunk]
            out.append(self.model.render_clip(e, w[s : s + self.chunk], torch.full(e.shape[:2], float(scale))))
        return torch.cat(out)

    @torch.no_grad()
    def search_scales(self, view: LerfView, query_emb: Tensor, kind: str, canonical_emb: Tensor | None) -> Tensor:
        """Pass 1: per query, the scale whose image-wide maximum relevancy is highest: ``[Q]``."""
        best_val = torch.full((query_emb.shape[0],), -float("inf"))
        best = torch.zeros(query_emb.shape[0])
        k = self.search_stride
        rows, cols = torch.meshgrid(torch.arange(k // 2, view.height, k), torch.arange(k // 2, view.width, k), indexing="ij")
        pixels = (rows * view.width + cols).reshape(-1)
        for s in self.scales.tolist():
            peak = relevancy(kind, self.clip_at(view, s, pixels), query_emb, canonical_emb).max(0).values  # [Q]
            better = peak > best_val
            best = torch.where(better, torch.tensor(s), best)
            best_val = torch.where(better, peak, best_val)
        return best

    @torch.no_grad()
    def relevancy_maps(self, view: LerfView, query_emb: Tensor, kind: str, canonical_emb: Tensor | None) -> Tensor:
        best = self.search_scales(view, query_emb, kind, canonical_emb)
        maps = []
        for qi, s in enumerate(best.tolist()):
            if s not in view.clip_at:
                view.clip_at[s] = self.clip_at(view, s)
            view.best[qi] = s
            self._best_history.setdefault(_key(query_emb[qi]), []).append(s)
            maps.append(relevancy(kind, view.clip_at[s], query_emb[qi : qi + 1], canonical_emb)[:, 0])
        return torch.stack(maps).view(1, len(maps), view.height, view.width)

    @torch.no_grad()
    def cosine_maps(self, view: LerfView, query_emb: Tensor) -> Tensor:
        """Cosine of each query with the rendered CLIP at that query's best scale (searched first if needed)."""
        maps = []
        for qi in range(query_emb.shape[0]):
            s = view.best.get(qi, 1.0)
            if s not in view.clip_at:
                view.clip_at[s] = self.clip_at(view, s)
            maps.append(view.clip_at[s] @ torch.nn.functional.normalize(query_emb[qi], dim=0))
        return torch.stack(maps).view(1, len(maps), view.height, view.width)

    def feature_basis(self, view: LerfView) -> tuple[Tensor, Tensor, Tensor]:
        if self._basis is None:
            f = view.features.reshape(-1, view.features.shape[-1])
            mean, axes = feature_colors(f)
            self._basis = (mean, axes, 2 * ((f - mean) @ axes).std(0).clamp_min(1e-6))
        return self._basis

    # ------------------------------------------------------------------- 3D
    @torch.no_grad()
    def surface_points(self, stride: int = 2, max_points: int = 200_000) -> tuple[Tensor, np.ndarray]:
        """Points on the NeRF's surfaces (normalized coordinates ``[N, 3]``) and their colours ``[N, 3]`` uint8.

        The expected termination point of every ``stride``-th pixel of the
        training views whose accumulated opacity exceeds 0.5.
        """
        from ccl_gs.lerf.train import ray_batch

        ds = self.dataset("train")
        pts, cols = [], []
        for i in range(len(ds)):
            item = ds[i]
            H, W = int(item["height"]), int(item["width"])
            rows, cs = torch.meshgrid(torch.arange(0, H, stride), torch.arange(0, W, stride), indexing="ij")
            rows, cs = rows.reshape(-1), cs.reshape(-1)
            c2w = self.c2w(item["viewmat"])
            for s in range(0, rows.shape[0], self.chunk):
                rays = ray_batch(c2w, item["K"].cpu(), rows[s : s + self.chunk], cs[s : s + self.chunk], H)
                out = self.model(rays, step=None, language=False)
                ok = out["accumulation"] > 0.5
                pts.append((rays.origins + rays.directions * out["depth"][:, None])[ok])
                cols.append(out["rgb"][ok])
        p, c = torch.cat(pts), torch.cat(cols)
        if p.shape[0] > max_points:
            keep = torch.randperm(p.shape[0], generator=torch.Generator().manual_seed(0))[:max_points]
            p, c = p[keep], c[keep]
        return p, (c.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)

    @torch.no_grad()
    def point_relevancy(self, points: Tensor, query_emb: Tensor, kind: str, canonical_emb: Tensor | None,
                        scales: Tensor) -> Tensor:
        """Relevancy ``[Q, N]`` of normalized points ``[N, 3]``, query ``q`` at ``scales[q]``."""
        out = torch.empty(query_emb.shape[0], points.shape[0])
        for s in range(0, points.shape[0], self.chunk):
            enc = self.model.language.encode(points[s : s + self.chunk])  # [n, E]
            for qi in range(query_emb.shape[0]):
                clip = self.model.language.clip(enc, torch.full(enc.shape[:1], float(scales[qi])))
                out[qi, s : s + self.chunk] = relevancy(kind, clip, query_emb[qi : qi + 1], canonical_emb)[:, 0]
        return out

    def query_scales(self, query_emb: Tensor) -> Tensor:
        """Per query of ``query_emb [Q, D]``: the median of its best scales over the views rendered so far
        (1.0 when none): ``[Q]``."""
        hist = [self._best_history.get(_key(q)) for q in query_emb]
        return torch.tensor([float(np.median(h)) if h else 1.0 for h in hist])

    def write_selections(self, out: Path, queries: list[str], slugs: list[str], query_emb: Tensor, kind: str,
                         canonical_emb: Tensor | None, threshold: float) -> dict[str, int]:
        from ccl_gs.io.ply import write_points_ply

        pts, colors = self.surface_points()
        rel = self.point_relevancy(pts, query_emb, kind, canonical_emb, self.query_scales(query_emb))
        world = self.norm.to_world(pts.numpy().astype(np.float64)).astype(np.float32)
        counts = {}
        for qi, (q, slug) in enumerate(zip(queries, slugs)):
            keep = select_gaussians(rel[qi : qi + 1], threshold).numpy()
            counts[q] = int(keep.sum())
            if keep.any():
                write_points_ply(out / f"{slug}.ply", world[keep], colors[keep])
        return counts


def _key(query: Tensor) -> bytes:
    return query.detach().float().cpu().numpy().tobytes()


def check_current(folder: Path) -> None:
    """Refuse a run whose targets changed or vanished since training (one line)."""
    man = Manifest.load(folder, kind="lerf")
    if man.format_version != LERF_VERSION:
        raise ArtifactError(f"{folder} is a LERF run of format {man.format_version}, expected {LERF_VERSION}; retrain")
    tdir = Path(man.inputs.get("targets_dir", ""))
    try:
        now = Manifest.load(tdir).fingerprint()
    except ArtifactError:
        raise ArtifactError(f"LERF run {folder} was trained from targets {tdir} that are gone; retrain it") from None
    if now != man.inputs.get("targets"):
        raise ArtifactError(f"LERF run {folder} is stale: its targets {tdir} changed since training; retrain it")


def is_lerf_run(folder: Path) -> bool:
    """A LERF run folder: a trained ``lerf.pt``, or the config of a run still training."""
    if (folder / "lerf.pt").is_file():
        return True
    try:
        from ccl_gs.io.artifacts import read_json

        cfg = read_json(folder / "config.json")
    except ArtifactError:
        return False
    return isinstance(cfg, dict) and "rays_per_batch" in cfg and "preset" in cfg


@register_run_kind("lerf", is_lerf_run)
def load_lerf_run(folder: Path, device: torch.device, cfg=None) -> LerfQueryModel:
    """The ``"lerf"`` run kind: ``cfg`` (a :class:`~ccl_gs.field.render.RenderConfig`) sets the scale search."""
    if cfg is None:
        return LerfQueryModel(folder, device)
    return LerfQueryModel(folder, device, n_scales=cfg.lerf_scales, search_stride=cfg.lerf_search_stride)
