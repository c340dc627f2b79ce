"""Route geometry: the vertices a path runs along, assembled with array operations.

A geometry is an ``(n, 2)`` float array of ``(lat, lng)`` rows, from the first snapped point to
the last, with consecutive duplicates removed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hexcity.routing.domain.network import RoadNetwork
from hexcity.routing.domain.snapping import Snap

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def _run(start: int, stop_inclusive: int) -> I64:
    """Vertex ids from start to stop (inclusive), ascending or descending; empty if crossed."""
    step = 1 if stop_inclusive >= start else -1
    return np.arange(start, stop_inclusive + step, step, dtype=np.int64)


def arcs_vertices(network: RoadNetwork, arcs: I64) -> I64:
    """Vertex ids along a sequence of arcs, skipping each arc's first vertex."""
    if arcs.size == 0:
        return np.empty(0, dtype=np.int64)
    chain = network.arc_chain[arcs]
    forward = network.arc_forward[arcs]
    lo = network.geom_offset[chain]
    hi = network.geom_offset[chain + 1]
    count = (hi - lo - 1).astype(np.int64)
    start = np.where(forward, lo + 1, hi - 2)
    step = np.where(forward, 1, -1)
    which = np.repeat(np.arange(arcs.size), count)
    position = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    return (start[which] + step[which] * position).astype(np.int64)


def leave_vertices(network: RoadNetwork, snap: Snap, *, forward: bool) -> I64:
    """From a snapped point to its chain's end (forward) or start (backward)."""
    lo = int(network.geom_offset[snap.chain])
    hi = int(network.geom_offset[snap.chain + 1])
    a = lo + snap.segment
    return _run(a + 1, hi - 1) if forward else _run(a, lo)


def arrive_vertices(network: RoadNetwork, snap: Snap, *, forward: bool) -> I64:
    """From the chain's start (forward) or end (backward) to just before the snapped point."""
    lo = int(network.geom_offset[snap.chain])
    hi = int(network.geom_offset[snap.chain + 1])
    a = lo + snap.segment
    return _run(lo, a) if forward else _run(hi - 1, a + 1)


def between_vertices(network: RoadNetwork, a: Snap, b: Snap, *, forward: bool) -> I64:
    """Vertices strictly between two snaps on one chain, in driving order."""
    lo = int(network.geom_offset[a.chain])
    if forward:
        return np.arange(lo + a.segment + 1, lo + b.segment + 1, dtype=np.int64)
    return np.arange(lo + a.segment, lo + b.segment, -1, dtype=np.int64)


def assemble(network: RoadNetwork, first: Snap, vertex_ids: list[I64], last: Snap) -> F64:
    """(lat, lng) rows: the first snap, the vertices, the last snap; duplicates collapsed."""
    ids = np.concatenate(vertex_ids) if vertex_ids else np.empty(0, dtype=np.int64)
    lat = np.concatenate(([first.location.lat], network.geom_lat[ids], [last.location.lat]))
    lng = np.concatenate(([first.location.lng], network.geom_lon[ids], [last.location.lng]))
    keep = np.ones(lat.size, dtype=bool)
    keep[1:] = (np.diff(lat) != 0) | (np.diff(lng) != 0)
    out = np.column_stack([lat[keep], lng[keep]])
    if out.shape[0] == 1:
        out = np.vstack([out, out])
    return out
