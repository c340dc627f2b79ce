"""Isochrones: the area reachable from a point within given travel times.

A bounded Dijkstra from the start's phantom seeds gives the arrival time at every node; every
arc whose tail is reached in time contributes the part of its chain that can still be driven
(cut by time along the chain's cumulative durations). The reachable road pieces are buffered by
``buffer_m`` and merged into polygons, in a local metric projection (like Valhalla's and
GraphHopper's isochrones, which also draw around the reachable network).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiLineString, MultiPolygon, Polygon
from shapely.ops import transform

from hexcity.kernel import EARTH_RADIUS_M
from hexcity.routing.domain.dijkstra import ForwardGraph, one_to_all
from hexcity.routing.domain.network import RoadNetwork
from hexcity.routing.domain.phantom import Phantom

MAX_VERTICES_PER_POLYGON = 2000


@dataclass(frozen=True, slots=True)
class Contour:
    """Reachable area within ``time_s``: a (multi)polygon in lon/lat degrees."""

    time_s: float
    geometry: Polygon | MultiPolygon
    reached_nodes: int


def isochrone(
    network: RoadNetwork, graph: ForwardGraph, start: Phantom, limits_s: list[float], buffer_m: float
) -> list[Contour]:
    """One contour per limit (ascending). ``graph`` is the network's ``out_csr`` (built once)."""
    first, to, weight, dist = graph
    seeds = start.source_seeds()
    max_ms = round(max(limits_s) * 1000)
    arrival_ms, _ = one_to_all(
        first,
        to,
        weight,
        dist,
        np.array([s[0] for s in seeds], dtype=np.int64),
        np.array([s[1] for s in seeds], dtype=np.int64),
        np.array([s[2] for s in seeds], dtype=np.int64),
        max_ms,
    )
    lat0 = start.snap.location.lat
    kx = math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    ky = math.radians(1.0) * EARTH_RADIUS_M
    contours = []
    for limit_s in limits_s:
        lines = _reachable_lines(network, start, arrival_ms, limit_s, kx, ky)
        area = MultiLineString(lines).buffer(buffer_m, quad_segs=2) if lines else Polygon()
        tolerance_m = buffer_m / 4
        area = area.simplify(tolerance_m)
        geometry = transform(lambda x, y, z=None: (x / kx, y / ky), area)
        if not isinstance(geometry, (Polygon, MultiPolygon)):
            geometry = Polygon()
        reached = int(np.count_nonzero(arrival_ms <= round(limit_s * 1000)))
        contours.append(Contour(time_s=limit_s, geometry=geometry, reached_nodes=reached))
    return contours


def _reachable_lines(
    network: RoadNetwork, start: Phantom, arrival_ms: np.ndarray, limit_s: float, kx: float, ky: float
) -> list[list[tuple[float, float]]]:
    limit_ms = limit_s * 1000.0
    lines: list[list[tuple[float, float]]] = []
    tail_time = arrival_ms[network.arc_tail]
    reached = np.flatnonzero(tail_time < limit_ms)
    for arc in reached.tolist():
        budget_s = (limit_ms - float(tail_time[arc])) / 1000.0
        chain = int(network.arc_chain[arc])
        forward = bool(network.arc_forward[arc])
        lines.append(_chain_prefix(network, chain, forward, budget_s, kx, ky))
    # the start point and the vertices next to it on its own chain
    snap = start.snap
    lo = int(network.geom_offset[snap.chain]) + snap.segment
    here = (snap.location.lng * kx, snap.location.lat * ky)
    for vertex in (lo, lo + 1):
        lines.append([here, (float(network.geom_lon[vertex]) * kx, float(network.geom_lat[vertex]) * ky)])
    return [ln for ln in lines if len(ln) >= 2]


def _chain_prefix(
    network: RoadNetwork, chain: int, forward: bool, budget_s: float, kx: float, ky: float
) -> list[tuple[float, float]]:
    lo, hi = int(network.geom_offset[chain]), int(network.geom_offset[chain + 1])
    lon = np.asarray(network.geom_lon[lo:hi]) * kx
    lat = np.asarray(network.geom_lat[lo:hi]) * ky
    if forward:
        cum = np.asarray(network.geom_cum_fwd_s[lo:hi]) - float(network.geom_cum_fwd_s[lo])
    else:
        bwd = np.asarray(network.geom_cum_bwd_s[lo:hi])
        cum = (bwd[-1] - bwd)[::-1]
        lon, lat = lon[::-1], lat[::-1]
    if not np.isfinite(cum[-1]) or cum[-1] <= budget_s:
        return list(zip(lon.tolist(), lat.tolist(), strict=True))
    k = int(np.searchsorted(cum, budget_s, side="right"))
    out = list(zip(lon[:k].tolist(), lat[:k].tolist(), strict=True))
    span = cum[k] - cum[k - 1]
    t = (budget_s - cum[k - 1]) / span if span > 0 else 0.0
    out.append((float(lon[k - 1] + t * (lon[k] - lon[k - 1])), float(lat[k - 1] + t * (lat[k] - lat[k - 1]))))
    return out


def to_geojson(contours: list[Contour]) -> dict[str, object]:
    """A GeoJSON FeatureCollection, one Feature per contour (largest first, for drawing)."""
    features = []
    for c in sorted(contours, key=lambda c: -c.time_s):
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "contour_s": c.time_s,
                    "contour_minutes": c.time_s / 60.0,
                    "reached_nodes": c.reached_nodes,
                },
                "geometry": shapely.geometry.mapping(c.geometry),
            }
        )
    return {"type": "FeatureCollection", "features": features}
