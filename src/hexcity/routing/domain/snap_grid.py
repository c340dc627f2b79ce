"""A uniform grid over road-piece midpoints for exact nearest-segment search in compiled code.

Pieces (segments cut to at most ``piece_m``) are bucketed by their midpoint. A query scans rings
of cells around the point; a ring at Chebyshev distance ``r`` holds no midpoint closer than
``(r - 1) · cell_m``, and no piece point lies more than ``piece_m / 2`` from its midpoint, so the
scan stops once ``best + piece_m / 2 <= (r - 1) · cell_m``: the answer is exact, not approximate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
MAX_CELLS = 4_000_000


@dataclass(frozen=True, slots=True)
class SnapGrid:
    x0: float
    y0: float
    cell_m: float
    nx: int
    ny: int
    cell_first: I64
    cell_pieces: I64  # piece ids sorted by cell


def build_grid(mid_x: F64, mid_y: F64, cell_m: float = 100.0) -> SnapGrid:
    """Bucket piece midpoints (metres) into a grid of at most MAX_CELLS cells."""
    x0, y0 = float(mid_x.min()), float(mid_y.min())
    width, height = float(mid_x.max()) - x0, float(mid_y.max()) - y0
    cell_m = max(cell_m, math.sqrt(max(width * height, 1.0) / MAX_CELLS))
    nx, ny = int(width // cell_m) + 1, int(height // cell_m) + 1
    cell = ((mid_x - x0) // cell_m).astype(np.int64) * ny + ((mid_y - y0) // cell_m).astype(np.int64)
    order = np.argsort(cell, kind="stable")
    first = np.zeros(nx * ny + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell, minlength=nx * ny), out=first[1:])
    return SnapGrid(x0, y0, cell_m, nx, ny, first, order.astype(np.int64))


@njit(cache=True, nogil=True, inline="always")
def _project(x, y, a, xs, ys):
    """(fraction along segment a→a+1, distance) of the closest segment point to (x, y), metres."""
    dx = xs[a + 1] - xs[a]
    dy = ys[a + 1] - ys[a]
    len2 = dx * dx + dy * dy
    t = ((x - xs[a]) * dx + (y - ys[a]) * dy) / len2 if len2 > 0 else 0.0
    t = min(1.0, max(0.0, t))
    ex = xs[a] + t * dx - x
    ey = ys[a] + t * dy - y
    return t, math.sqrt(ex * ex + ey * ey)


@njit(cache=True, nogil=True)
def nearest_segments(
    px, py, max_dist, x0, y0, cell_m, nx, ny, cell_first, cell_pieces, piece_seg, seg_start, xs, ys, piece_m
):
    """For each query point: (segment, fraction along it, distance in metres); -1 if none within max."""
    n = px.shape[0]
    out_seg = np.full(n, -1, np.int64)
    out_t = np.zeros(n, np.float64)
    out_d = np.full(n, np.inf, np.float64)
    for q in range(n):
        x = px[q]
        y = py[q]
        cx = math.floor((x - x0) / cell_m)
        cy = math.floor((y - y0) / cell_m)
        best = np.inf
        best_seg = -1
        best_t = 0.0
        r = 0
        while True:
            reach = (r - 1) * cell_m
            if reach > 0 and (best + piece_m / 2 <= reach or reach > max_dist[q] + piece_m / 2):
                break
            if cx + r < 0 or cy + r < 0 or cx - r >= nx or cy - r >= ny:
                if reach > max_dist[q] + piece_m / 2:
                    break
                r += 1
                continue
            for ix in range(max(cx - r, 0), min(cx + r, nx - 1) + 1):
                edge_x = ix == cx - r or ix == cx + r
                for iy in range(max(cy - r, 0), min(cy + r, ny - 1) + 1):
                    if not edge_x and iy != cy - r and iy != cy + r:
                        continue
                    c = ix * ny + iy
                    for k in range(cell_first[c], cell_first[c + 1]):
                        s = piece_seg[cell_pieces[k]]
                        t, d = _project(x, y, seg_start[s], xs, ys)
                        if d < best or (d == best and s < best_seg):
                            best = d
                            best_seg = s
                            best_t = t
            r += 1
        if best <= max_dist[q]:
            out_seg[q] = best_seg
            out_t[q] = best_t
            out_d[q] = best
    return out_seg, out_t, out_d


@njit(cache=True, nogil=True)
def snap_records(
    qlat, qlon, segs, ts, seg_start, seg_chain, geom_offset, geom_lat, geom_lon, cum_dist, radius_m
):
    """Per query: snapped (lat, lng), offset from the chain start (m), chain, segment, distance (m)."""
    n = segs.shape[0]
    lat = np.zeros(n)
    lon = np.zeros(n)
    offset = np.zeros(n)
    chain = np.full(n, -1, np.int64)
    segment = np.zeros(n, np.int64)
    dist = np.full(n, np.inf)
    for i in range(n):
        s = segs[i]
        if s < 0:
            continue
        a = seg_start[s]
        t = ts[i]
        c = seg_chain[s]
        lat[i] = geom_lat[a] + t * (geom_lat[a + 1] - geom_lat[a])
        lon[i] = geom_lon[a] + t * (geom_lon[a + 1] - geom_lon[a])
        offset[i] = cum_dist[a] + t * (cum_dist[a + 1] - cum_dist[a])
        chain[i] = c
        segment[i] = a - geom_offset[c]
        p1 = math.radians(qlat[i])
        p2 = math.radians(lat[i])
        h = (
            math.sin((p2 - p1) / 2) ** 2
            + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon[i] - qlon[i]) / 2) ** 2
        )
        dist[i] = 2 * radius_m * math.asin(min(1.0, math.sqrt(h)))
    return lat, lon, offset, chain, segment, dist


@njit(cache=True, nogil=True)
def nearest_k_chains(
    x, y, k, max_dist, x0, y0, cell_m, nx, ny, cell_first, cell_pieces, piece_seg, seg_start, seg_chain,
    xs, ys, piece_m,
):  # fmt: skip
    """The closest point on each of the ``k`` closest distinct chains: (segment, fraction, distance) arrays.

    The same exact ring search as ``nearest_segments``, stopping once the k-th best distance is
    provably final; ties go to the lower chain id. Unsorted; fewer than k entries when fewer
    chains lie within max_dist.
    """
    best_d = np.full(k, np.inf)
    best_seg = np.full(k, -1, np.int64)
    best_t = np.zeros(k)
    best_chain = np.full(k, -1, np.int64)
    cx = math.floor((x - x0) / cell_m)
    cy = math.floor((y - y0) / cell_m)
    r = 0
    while True:
        reach = (r - 1) * cell_m
        worst = best_d.max()
        if reach > 0 and (worst + piece_m / 2 <= reach or reach > max_dist + piece_m / 2):
            break
        if not (cx + r < 0 or cy + r < 0 or cx - r >= nx or cy - r >= ny):
            for ix in range(max(cx - r, 0), min(cx + r, nx - 1) + 1):
                edge_x = ix == cx - r or ix == cx + r
                for iy in range(max(cy - r, 0), min(cy + r, ny - 1) + 1):
                    if not edge_x and iy != cy - r and iy != cy + r:
                        continue
                    c = ix * ny + iy
                    for p in range(cell_first[c], cell_first[c + 1]):
                        s = piece_seg[cell_pieces[p]]
                        t, d = _project(x, y, seg_start[s], xs, ys)
                        chain = seg_chain[s]
                        slot = -1
                        for j in range(k):
                            if best_chain[j] == chain:
                                slot = j
                                break
                        if slot < 0:
                            # evict the worst entry, (distance, chain id) order: ties are deterministic
                            slot = 0
                            for j in range(1, k):
                                if best_d[j] > best_d[slot] or (
                                    best_d[j] == best_d[slot] and best_chain[j] > best_chain[slot]
                                ):
                                    slot = j
                            if d > best_d[slot] or (d == best_d[slot] and chain > best_chain[slot] >= 0):
                                continue
                        if d < best_d[slot] or best_chain[slot] != chain:
                            best_d[slot] = d
                            best_seg[slot] = s
                            best_t[slot] = t
                            best_chain[slot] = chain
        elif reach > max_dist + piece_m / 2:
            break
        r += 1
    keep = (best_seg >= 0) & (best_d <= max_dist)
    return best_seg[keep], best_t[keep], best_d[keep]
