"""Numba CPU kernels of the tile compositor (forward, backward, intersection).

These are plain NumPy-array kernels; :mod:`ccl_gs.splat._composite` wraps them
in a ``torch.autograd.Function``. They implement gsplat's compositing rule
(``RasterizeToPixels3DGSFwd.cu`` / ``...Bwd.cu``) for one pixel ``p`` with
centre ``(x + 0.5, y + 0.5)`` and the depth-sorted Gaussians ``g`` of its tile:

    d = mean2d_g - p
    sigma = 0.5 (a dx^2 + c dy^2) + b dx dy          (conic = (a, b, c))
    alpha = min(0.999, opacity_g exp(-sigma))
    skip g when sigma < 0 or alpha < 1/255
    stop before T (1 - alpha) <= 1e-4              (that Gaussian is excluded)
    colour += colour_g alpha T;  T *= 1 - alpha

Differences that do not change the result:

- Gaussians are looped outside, pixels inside, and each Gaussian visits only
  the pixels of each row where ``sigma <= ln(255 opacity)`` (the exact
  ellipse, plus half a pixel of margin); elsewhere ``alpha < 1/255`` holds,
  so gsplat would skip those pixels too.
- ``sigma > SIGMA_SKIP`` is skipped before ``exp`` is called: with
  opacity <= 1 such alphas are far below 1/255, and it keeps every float out
  of the subnormal range (subnormals make x86 CPUs ~10x slower). The
  transmittance never falls below 1e-4 by the stopping rule, so it stays
  normal too; no flush-to-zero setting is needed in any thread.

Tiles are processed in parallel (``prange``); gradients are written per
intersection (each belongs to one tile, so no two threads write the same
slot) and summed per Gaussian afterwards.
"""

from __future__ import annotations

import math
import os
import threading

import numba
import numpy as np
from numba import njit, prange

# float32 constants keep the per-pixel arithmetic in float32, as gsplat's kernels.
ALPHA_MIN = np.float32(1.0 / 255.0)
ALPHA_MAX = np.float32(0.999)
T_MIN = np.float32(1e-4)
SIGMA_SKIP = np.float32(30.0)  # exp(-30) ~ 1e-13: alpha < 1/255 for any opacity <= 1
HALF = np.float32(0.5)
ONE = np.float32(1.0)
ZERO = np.float32(0.0)
LIST_MODE = 48  # with at most this many pixels left in a tile, visit them from a list


_launch_lock = threading.Lock()
_layer_chosen = False


def launch(kernel, *args) -> None:  # noqa: ANN001
    """Run a parallel kernel: numba's ``workqueue`` threads, one launch at a time.

    Unless ``NUMBA_THREADING_LAYER`` is set, the first launch selects numba's
    ``workqueue`` layer, whose idle workers sleep. The default ``omp`` layer
    loads a second OpenMP runtime next to PyTorch's, and its idle workers take
    CPU from the PyTorch ops that run between kernels: on a shared 2-core
    machine forward + backward at 100k Gaussians measured 1.5x to over 10x
    slower than with ``workqueue``. ``workqueue`` may not be entered by two
    threads at once, hence the lock. The layer is fixed by the first parallel
    numba call in the process (``numba.get_num_threads()`` counts), so code
    that runs numba first decides.
    """
    global _layer_chosen
    with _launch_lock:
        if not _layer_chosen:
            if "NUMBA_THREADING_LAYER" not in os.environ:
                numba.config.THREADING_LAYER = "workqueue"
            _layer_chosen = True
        kernel(*args)


@njit(cache=True, nogil=True)
def build_intersections(
    means2d: np.ndarray,  # [I, 2] float32, I = C * N
    radii: np.ndarray,  # [I, 2] int32
    order: np.ndarray,  # [V] int64 visible entries sorted by depth (stable)
    n_per_camera: int,
    tile_size: int,
    tile_width: int,
    tile_height: int,
    n_cameras: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian-tile intersections sorted by (camera, tile, depth).

    Tile range per Gaussian as gsplat's ``isect_tiles``: ``[floor(t - r),
    ceil(t + r))`` in tile units, clamped to the grid. A counting sort by tile
    over the depth-ordered Gaussians keeps depth order inside each tile.

    Returns:
        flatten_ids [M] int32 (entries of ``I``), offsets [C * th * tw + 1]
        int64 (start of each tile's run), tiles_per_gauss [I] int32.
    """
    n_img_tiles = tile_width * tile_height
    n_tiles = n_cameras * n_img_tiles
    n_entries = means2d.shape[0]
    tiles_per_gauss = np.zeros(n_entries, np.int32)
    counts = np.zeros(n_tiles + 1, np.int64)
    rect = np.zeros((order.shape[0], 4), np.int64)
    ts = np.float32(tile_size)
    for v in range(order.shape[0]):
        e = order[v]
        tx = np.float32(means2d[e, 0]) / ts
        ty = np.float32(means2d[e, 1]) / ts
        rx = np.float32(radii[e, 0]) / ts
        ry = np.float32(radii[e, 1]) / ts
        x0 = int(min(max(math.floor(tx - rx), 0.0), float(tile_width)))
        y0 = int(min(max(math.floor(ty - ry), 0.0), float(tile_height)))
        x1 = int(min(max(math.ceil(tx + rx), 0.0), float(tile_width)))
        y1 = int(min(max(math.ceil(ty + ry), 0.0), float(tile_height)))
        rect[v, 0] = x0
        rect[v, 1] = y0
        rect[v, 2] = x1
        rect[v, 3] = y1
        if x1 <= x0 or y1 <= y0:
            continue
        tiles_per_gauss[e] = (x1 - x0) * (y1 - y0)
        base = (e // n_per_camera) * n_img_tiles
        for yy in range(y0, y1):
            for xx in range(x0, x1):
                counts[base + yy * tile_width + xx + 1] += 1
    for t in range(n_tiles):
        counts[t + 1] += counts[t]
    offsets = counts.copy()
    fill = counts[:-1].copy()
    flatten_ids = np.empty(offsets[n_tiles], np.int32)
    for v in range(order.shape[0]):
        e = order[v]
        base = (e // n_per_camera) * n_img_tiles
        for yy in range(rect[v, 1], rect[v, 3]):
            for xx in range(rect[v, 0], rect[v, 2]):
                t = base + yy * tile_width + xx
                flatten_ids[fill[t]] = e
                fill[t] += 1
    return flatten_ids, offsets, tiles_per_gauss


@njit(cache=True, nogil=True, inline="always")
def _clamp_int(v: float, lo: int, hi: int) -> int:
    return int(min(max(v, float(lo)), float(hi)))


@njit(cache=True, nogil=True, inline="always")
def _row_span(
    mx: float, dy: float, ca: float, cb: float, cc: float, level: float, lo: int, hi: int
) -> tuple[int, int]:
    """Pixels ``[a, b)`` of ``[lo, hi)`` in a row where ``sigma <= level`` may hold.

    Row offset ``dy = my - (y + 0.5)``; ``sigma(dx) <= level`` is the interval
    ``dx in (-b dy -+ sqrt(disc)) / a`` with ``disc = 2 a level - dy^2 (a c - b^2)``.
    Half a pixel of margin on each side absorbs rounding.
    """
    disc = 2.0 * ca * level - dy * dy * (ca * cc - cb * cb)
    if disc < 0.0 or ca <= 0.0:
        return lo, lo
    root = math.sqrt(disc)
    centre = mx + cb * dy / ca - 0.5  # pixel index whose centre has dx = -b dy / a
    half = root / ca + 0.5
    return _clamp_int(math.floor(centre - half), lo, hi), _clamp_int(math.ceil(centre + half) + 1.0, lo, hi)


@njit(cache=True, nogil=True, inline="always")
def _blend(
    p: int, dx: float, dy: float, ca: float, cb: float, cc: float, op: float, g: int, k: int,
    colors: np.ndarray, T: np.ndarray, acc: np.ndarray, last: np.ndarray, done: np.ndarray,
) -> int:
    """Blend Gaussian ``g`` (intersection ``k``) into tile pixel ``p``; 1 if ``p`` just finished."""
    sigma = HALF * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
    if sigma < ZERO or sigma > SIGMA_SKIP:
        return 0
    alpha = min(ALPHA_MAX, op * math.exp(-sigma))
    if alpha < ALPHA_MIN:
        return 0
    next_T = T[p] * (ONE - alpha)
    if next_T <= T_MIN:
        done[p] = True
        return 1
    w = alpha * T[p]
    for d in range(acc.shape[1]):
        acc[p, d] += colors[g, d] * w
    T[p] = next_T
    last[p] = k
    return 0


@njit(parallel=True, cache=True, nogil=True, fastmath=False)
def composite_forward(
    means2d: np.ndarray,  # [I, 2] float32
    conics: np.ndarray,  # [I, 3] float32
    colors: np.ndarray,  # [I, D] float32
    opacities: np.ndarray,  # [I] float32
    radii: np.ndarray,  # [I, 2] int32
    backgrounds: np.ndarray,  # [C, D] float32 (zeros when absent)
    offsets: np.ndarray,  # [C * th * tw + 1] int64
    flatten_ids: np.ndarray,  # [M] int32
    width: int,
    height: int,
    tile_size: int,
    tile_width: int,
    out_colors: np.ndarray,  # [C, H, W, D] float32
    out_T: np.ndarray,  # [C, H, W] float32, final transmittance
    out_last: np.ndarray,  # [C, H, W] int64, last contributing intersection (-1: none)
) -> None:
    """Front-to-back compositing of every tile.

    While many pixels of a tile are still open, each Gaussian walks its
    ellipse row by row; once few are left (<= ``LIST_MODE``), it walks the
    list of open pixels instead, so finished pixels cost nothing.
    """
    n_tiles = offsets.shape[0] - 1
    tile_height = (height + tile_size - 1) // tile_size
    n_img_tiles = tile_width * tile_height
    D = colors.shape[1]
    for t in prange(n_tiles):
        cam = t // n_img_tiles
        rem = t - cam * n_img_tiles
        ty = rem // tile_width
        tx = rem - ty * tile_width
        x0 = tx * tile_size
        y0 = ty * tile_size
        x1 = min(x0 + tile_size, width)
        y1 = min(y0 + tile_size, height)
        tw = x1 - x0
        npix = tw * (y1 - y0)
        T = np.ones(npix, np.float32)
        acc = np.zeros((npix, D), np.float32)
        last = np.full(npix, -1, np.int64)
        done = np.zeros(npix, np.bool_)
        n_open = npix
        row_open = np.full(y1 - y0, tw, np.int64)  # pixels of each row not yet done
        open_list = np.empty(npix, np.int64)
        n_list = 0
        list_stale = True
        for k in range(offsets[t], offsets[t + 1]):
            if n_open == 0:
                break
            g = flatten_ids[k]
            mx = means2d[g, 0]
            my = means2d[g, 1]
            ca = conics[g, 0]
            cb = conics[g, 1]
            cc = conics[g, 2]
            op = opacities[g]
            if n_open <= LIST_MODE:
                if list_stale:
                    n_list = 0
                    for p in range(npix):
                        if not done[p]:
                            open_list[n_list] = p
                            n_list += 1
                    list_stale = False
                rx = radii[g, 0] + 1.0
                ry = radii[g, 1] + 1.0
                for j in range(n_list):
                    p = open_list[j]
                    if done[p]:
                        continue
                    r = p // tw
                    dx = mx - (np.float32(x0 + p - r * tw) + HALF)
                    dy = my - (np.float32(y0 + r) + HALF)
                    if abs(dx) > rx or abs(dy) > ry:
                        continue
                    if _blend(p, dx, dy, ca, cb, cc, op, g, k, colors, T, acc, last, done):
                        n_open -= 1
                        list_stale = True
                continue
            level = math.log(op * 255.0) + 1e-3  # sigma above this: alpha < 1/255
            ya = _clamp_int(math.floor(my - radii[g, 1] - 1.0), y0, y1)
            yb = _clamp_int(math.ceil(my + radii[g, 1] + 1.0), y0, y1)
            for py in range(ya, yb):
                if row_open[py - y0] == 0:
                    continue
                dy = my - (np.float32(py) + HALF)
                xa, xb = _row_span(mx, dy, ca, cb, cc, level, x0, x1)
                row = (py - y0) * tw - x0
                for px in range(xa, xb):
                    p = row + px
                    if done[p]:
                        continue
                    dx = mx - (np.float32(px) + HALF)
                    if _blend(p, dx, dy, ca, cb, cc, op, g, k, colors, T, acc, last, done):
                        n_open -= 1
                        row_open[py - y0] -= 1
        for py in range(y0, y1):
            for px in range(x0, x1):
                p = (py - y0) * tw + (px - x0)
                for d in range(D):
                    out_colors[cam, py, px, d] = acc[p, d] + T[p] * backgrounds[cam, d]
                out_T[cam, py, px] = T[p]
                out_last[cam, py, px] = last[p]


@njit(cache=True, nogil=True, inline="always")
def _unblend(
    p: int, dx: float, dy: float, ca: float, cb: float, cc: float, op: float, g: int,
    colors: np.ndarray, T: np.ndarray, buf: np.ndarray, vc: np.ndarray, v_fin: np.ndarray,
    g_geo: np.ndarray, g_col: np.ndarray,
) -> None:
    """Undo Gaussian ``g`` at pixel ``p`` (back to front) and add its gradients.

    ``g_geo`` accumulates (means2d x, y, conic a, b, c, opacity); ``g_col`` the colour.
    """
    sigma = HALF * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
    if sigma < ZERO or sigma > SIGMA_SKIP:
        return
    vis = math.exp(-sigma)
    alpha = min(ALPHA_MAX, op * vis)
    if alpha < ALPHA_MIN:
        return
    ra = ONE / (ONE - alpha)
    T[p] *= ra
    fac = alpha * T[p]
    v_alpha = v_fin[p] * ra
    for d in range(g_col.shape[0]):
        g_col[d] += fac * vc[p, d]
        v_alpha += (colors[g, d] * T[p] - buf[p, d] * ra) * vc[p, d]
        buf[p, d] += colors[g, d] * fac
    if op * vis <= ALPHA_MAX:
        v_sigma = -op * vis * v_alpha
        g_geo[0] += v_sigma * (ca * dx + cb * dy)
        g_geo[1] += v_sigma * (cb * dx + cc * dy)
        g_geo[2] += HALF * v_sigma * dx * dx
        g_geo[3] += v_sigma * dx * dy
        g_geo[4] += HALF * v_sigma * dy * dy
        g_geo[5] += vis * v_alpha


@njit(parallel=True, cache=True, nogil=True, fastmath=False)
def composite_backward(
    means2d: np.ndarray,  # [I, 2] float32
    conics: np.ndarray,  # [I, 3] float32
    colors: np.ndarray,  # [I, D] float32
    opacities: np.ndarray,  # [I] float32
    radii: np.ndarray,  # [I, 2] int32
    backgrounds: np.ndarray,  # [C, D] float32 (zeros when absent)
    offsets: np.ndarray,  # [C * th * tw + 1] int64
    flatten_ids: np.ndarray,  # [M] int32
    width: int,
    height: int,
    tile_size: int,
    tile_width: int,
    final_T: np.ndarray,  # [C, H, W] float32
    last_ids: np.ndarray,  # [C, H, W] int64
    v_colors_out: np.ndarray,  # [C, H, W, D] float32
    v_alphas_out: np.ndarray,  # [C, H, W] float32
    v_isect: np.ndarray,  # [M, 6 + D] float32 zeros; per intersection
) -> None:
    """Back-to-front pass over each tile, as gsplat's backward kernel.

    Pixel ``p`` takes part for intersections ``k <= last[p]``. While few
    pixels take part (<= ``LIST_MODE``), each Gaussian walks the list of
    those pixels; otherwise its ellipse row by row. Row ``m`` of ``v_isect``
    receives intersection ``m``'s gradient: columns 0-1 means2d, 2-4 conics,
    5 opacity, 6.. colours.
    """
    n_tiles = offsets.shape[0] - 1
    tile_height = (height + tile_size - 1) // tile_size
    n_img_tiles = tile_width * tile_height
    D = colors.shape[1]
    for t in prange(n_tiles):
        start = offsets[t]
        end = offsets[t + 1]
        if end == start:
            continue
        cam = t // n_img_tiles
        rem = t - cam * n_img_tiles
        ty = rem // tile_width
        tx = rem - ty * tile_width
        x0 = tx * tile_size
        y0 = ty * tile_size
        x1 = min(x0 + tile_size, width)
        y1 = min(y0 + tile_size, height)
        tw = x1 - x0
        npix = tw * (y1 - y0)
        T = np.empty(npix, np.float32)
        last = np.empty(npix, np.int64)
        vc = np.empty((npix, D), np.float32)
        # Per-pixel constant part of dL/dalpha * (1 - alpha): T_final (v_alpha - bg . v_colour).
        v_fin = np.empty(npix, np.float32)
        buf = np.zeros((npix, D), np.float32)
        row_last = np.full(y1 - y0, -1, np.int64)  # last contributing intersection per row
        for py in range(y0, y1):
            for px in range(x0, x1):
                p = (py - y0) * tw + (px - x0)
                T[p] = final_T[cam, py, px]
                last[p] = last_ids[cam, py, px]
                row_last[py - y0] = max(row_last[py - y0], last[p])
                bg_dot = ZERO
                for d in range(D):
                    vc[p, d] = v_colors_out[cam, py, px, d]
                    bg_dot += backgrounds[cam, d] * vc[p, d]
                v_fin[p] = T[p] * (v_alphas_out[cam, py, px] - bg_dot)
        by_last = np.argsort(-last)  # pixels in the order they join going back to front
        n_active = 0
        k_max = last[by_last[0]]
        g_geo = np.zeros(6, np.float32)
        g_col = np.zeros(D, np.float32)
        for k in range(k_max, start - 1, -1):
            while n_active < npix and last[by_last[n_active]] >= k:
                n_active += 1
            g = flatten_ids[k]
            mx = means2d[g, 0]
            my = means2d[g, 1]
            ca = conics[g, 0]
            cb = conics[g, 1]
            cc = conics[g, 2]
            op = opacities[g]
            g_geo[:] = ZERO
            g_col[:] = ZERO
            if n_active <= LIST_MODE:
                rx = radii[g, 0] + 1.0
                ry = radii[g, 1] + 1.0
                for j in range(n_active):
                    p = by_last[j]
                    r = p // tw
                    dx = mx - (np.float32(x0 + p - r * tw) + HALF)
                    dy = my - (np.float32(y0 + r) + HALF)
                    if abs(dx) > rx or abs(dy) > ry:
                        continue
                    _unblend(p, dx, dy, ca, cb, cc, op, g, colors, T, buf, vc, v_fin, g_geo, g_col)
            else:
                level = math.log(op * 255.0) + 1e-3
                ya = _clamp_int(math.floor(my - radii[g, 1] - 1.0), y0, y1)
                yb = _clamp_int(math.ceil(my + radii[g, 1] + 1.0), y0, y1)
                for py in range(ya, yb):
                    if k > row_last[py - y0]:
                        continue
                    dy = my - (np.float32(py) + HALF)
                    xa, xb = _row_span(mx, dy, ca, cb, cc, level, x0, x1)
                    row = (py - y0) * tw - x0
                    for px in range(xa, xb):
                        p = row + px
                        if k > last[p]:
                            continue
                        dx = mx - (np.float32(px) + HALF)
                        _unblend(p, dx, dy, ca, cb, cc, op, g, colors, T, buf, vc, v_fin, g_geo, g_col)
            for j in range(6):
                v_isect[k, j] = g_geo[j]
            for d in range(D):
                v_isect[k, 6 + d] = g_col[d]


@njit(cache=True, nogil=True)
def sum_per_gaussian(
    flatten_ids: np.ndarray,  # [M] int32
    per_isect: np.ndarray,  # [M, K] float32
    out: np.ndarray,  # [I, K] float32, zero-initialised
) -> None:
    """``out[flatten_ids[m]] += per_isect[m]`` (serial, deterministic)."""
    K = per_isect.shape[1]
    for m in range(flatten_ids.shape[0]):
        g = flatten_ids[m]
        for j in range(K):
            out[g, j] += per_isect[m, j]
