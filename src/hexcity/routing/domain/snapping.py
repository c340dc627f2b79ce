"""Snapping a coordinate to the closest point on a road segment (not the closest node).

Segments are cut into pieces no longer than ``PIECE_M`` and the pieces' midpoints are bucketed in
a uniform grid in a local equirectangular projection (metres); ``snap_grid`` searches rings of
cells until no unseen piece can be closer, so answers are exact, for one nearest point per query
(batched) or for the k nearest distinct chains. The projection is accurate for city- and
region-sized extracts; snap distances are reported as great-circle distances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hexcity.kernel import EARTH_RADIUS_M, LatLng
from hexcity.routing.domain.network import RoadNetwork
from hexcity.routing.domain.snap_grid import build_grid, nearest_k_chains, nearest_segments, snap_records

PIECE_M = 40.0
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Snap:
    """A point snapped onto chain ``chain`` at segment ``segment`` (vertex index within the chain).

    ``fraction`` is the position along that segment (0 = its first vertex). ``offset_m`` is the
    distance from the chain start. ``distance_m`` is from the input to ``location``.
    """

    input: LatLng
    location: LatLng
    chain: int
    segment: int
    fraction: float
    offset_m: float
    distance_m: float


class SnapIndex:
    """Nearest-segment index over a network's chains."""

    def __init__(self, network: RoadNetwork) -> None:
        self._net = network
        lat = np.asarray(network.geom_lat)
        lon = np.asarray(network.geom_lon)
        self._lat0 = float(np.mean(lat)) if lat.size else 0.0
        self._kx = math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(self._lat0))
        self._ky = math.radians(1.0) * EARTH_RADIUS_M
        self._x = lon * self._kx
        self._y = lat * self._ky
        offsets = np.asarray(network.geom_offset)
        seg_start = np.arange(lat.size - 1, dtype=np.int64)
        is_last = np.zeros(lat.size, dtype=bool)
        is_last[offsets[1:] - 1] = True
        seg_start = seg_start[~is_last[:-1]] if lat.size else seg_start
        self._seg_start = seg_start
        self._seg_chain = np.searchsorted(offsets, seg_start, side="right") - 1
        dx = self._x[seg_start + 1] - self._x[seg_start]
        dy = self._y[seg_start + 1] - self._y[seg_start]
        length = np.hypot(dx, dy)
        pieces = np.maximum(1, np.ceil(length / PIECE_M)).astype(np.int64)
        piece_seg = np.repeat(np.arange(seg_start.size), pieces)
        first_piece = np.cumsum(pieces) - pieces
        k = np.arange(piece_seg.size) - first_piece[piece_seg]
        t = (k + 0.5) / pieces[piece_seg]
        mx = self._x[seg_start[piece_seg]] + t * dx[piece_seg]
        my = self._y[seg_start[piece_seg]] + t * dy[piece_seg]
        self._piece_seg = piece_seg
        self._grid = build_grid(mx, my) if piece_seg.size else None

    def snap_many(self, points: list[LatLng], max_distance_m: list[float]) -> list[Snap | None]:
        """The closest road point of each input (None beyond its max distance), exact.

        Runs the compiled grid search (``snap_grid``) over all points in one call. Distances are
        decided in the local projection; the reported ``distance_m`` is the great-circle one.
        """
        grid = self._grid
        if grid is None or not points:
            return [None] * len(points)
        px = np.array([p.lng for p in points]) * self._kx
        py = np.array([p.lat for p in points]) * self._ky
        # allow for the projection's error before the great-circle check below
        limits = np.array([min(m * 1.05 + 1.0, 1e12) for m in max_distance_m], dtype=np.float64)
        segs, ts, _ = nearest_segments(
            px,
            py,
            limits,
            grid.x0,
            grid.y0,
            grid.cell_m,
            grid.nx,
            grid.ny,
            grid.cell_first,
            grid.cell_pieces,
            self._piece_seg,
            self._seg_start,
            self._x,
            self._y,
            PIECE_M,
        )
        return self._make_snaps(points, segs, ts, max_distance_m)

    def _make_snaps(
        self, points: list[LatLng], segs: I64, ts: F64, max_distance_m: list[float]
    ) -> list[Snap | None]:
        """Snap records for kernel results (segs < 0: no snap), computed in compiled code."""
        net = self._net
        qlat = np.array([p.lat for p in points], dtype=np.float64)
        qlon = np.array([p.lng for p in points], dtype=np.float64)
        lat, lon, offset, chain, segment, dist = snap_records(
            qlat,
            qlon,
            segs,
            ts,
            self._seg_start,
            self._seg_chain,
            net.geom_offset,
            net.geom_lat,
            net.geom_lon,
            net.geom_cum_dist_m,
            EARTH_RADIUS_M,
        )
        found = segs >= 0
        out: list[Snap | None] = []
        rows = zip(
            found.tolist(),
            lat.tolist(),
            lon.tolist(),
            chain.tolist(),
            segment.tolist(),
            ts.tolist(),
            offset.tolist(),
            dist.tolist(),
            strict=True,
        )
        for i, (ok, la, lo, c, sg, t, off, d) in enumerate(rows):
            if not ok or d > max_distance_m[i]:
                out.append(None)
            else:
                out.append(Snap(points[i], LatLng(la, lo), c, sg, t, off, d))
        return out

    def nearest(self, point: LatLng, number: int = 1, max_distance_m: float = math.inf) -> list[Snap]:
        """Up to ``number`` snaps on distinct chains, closest first, within ``max_distance_m``."""
        grid = self._grid
        if grid is None or number < 1:
            return []
        limit = min(max_distance_m * 1.05 + 1.0, 1e12)
        segs, ts, _ = nearest_k_chains(
            point.lng * self._kx, point.lat * self._ky, number, limit, grid.x0, grid.y0, grid.cell_m, grid.nx,
            grid.ny, grid.cell_first, grid.cell_pieces, self._piece_seg, self._seg_start, self._seg_chain,
            self._x, self._y, PIECE_M,
        )  # fmt: skip
        snaps = self._make_snaps([point] * len(segs), segs, ts, [max_distance_m] * len(segs))
        found = [s for s in snaps if s is not None]
        return sorted(found, key=lambda snap: (snap.distance_m, snap.chain))
