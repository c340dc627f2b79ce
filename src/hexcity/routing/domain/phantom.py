"""Phantom nodes: where a snapped point enters and leaves the graph.

A point snapped onto a chain can leave it forwards (to the chain's end node) or backwards (to its
start node), with the part of the chain between the point and that node as the initial cost. As a
destination it is reached from the chain's start (forwards) or end (backwards). This is OSRM's
"phantom node" idea. Durations are in milliseconds and distances in centimetres, rounded once
here, so every later sum is exact integer arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hexcity.routing.domain.network import RoadNetwork
from hexcity.routing.domain.snapping import Snap

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Phantom:
    """Entry/exit costs of one snapped point (integers: ms and cm)."""

    snap: Snap
    chain: int
    offset_cm: int
    to_start_fwd_ms: int  # chain start → point, driving forwards (-1: not allowed)
    to_start_bwd_ms: int  # point → chain start, driving backwards (-1: not allowed)
    fwd_weight_ms: int  # whole chain forwards (-1: not allowed)
    bwd_weight_ms: int  # whole chain backwards (-1: not allowed)
    dist_cm: int  # whole chain length
    fwd_head: int  # chain end node reached forwards (-1 if none)
    bwd_head: int  # chain start node reached backwards (-1 if none)
    fwd_tails: tuple[int, ...]  # nodes that start the chain forwards (node copies)
    bwd_tails: tuple[int, ...]

    def source_seeds(self) -> list[tuple[int, int, int]]:
        """(node, duration_ms, distance_cm) to leave the point."""
        seeds = []
        if self.fwd_head >= 0:
            seeds.append(
                (
                    self.fwd_head,
                    max(0, self.fwd_weight_ms - self.to_start_fwd_ms),
                    max(0, self.dist_cm - self.offset_cm),
                )
            )
        if self.bwd_head >= 0:
            seeds.append((self.bwd_head, self.to_start_bwd_ms, self.offset_cm))
        return seeds

    def target_seeds(self) -> list[tuple[int, int, int]]:
        """(node, duration_ms, distance_cm) to arrive at the point."""
        seeds = [(t, self.to_start_fwd_ms, self.offset_cm) for t in self.fwd_tails]
        seeds += [
            (t, max(0, self.bwd_weight_ms - self.to_start_bwd_ms), max(0, self.dist_cm - self.offset_cm))
            for t in self.bwd_tails
        ]
        return seeds


class ChainArcs:
    """For each chain and direction, the arcs that run along it."""

    def __init__(self, network: RoadNetwork) -> None:
        key = np.asarray(network.arc_chain, dtype=np.int64) * 2 + (~np.asarray(network.arc_forward)).astype(
            np.int64
        )
        self._order = np.argsort(key, kind="stable")
        self._first = np.searchsorted(key[self._order], np.arange(2 * network.n_chains + 1))

    def arcs(self, chain: int, forward: bool) -> I64:
        k = 2 * chain + (0 if forward else 1)
        return self._order[self._first[k] : self._first[k + 1]]


def make_phantom(network: RoadNetwork, chain_arcs: ChainArcs, snap: Snap) -> Phantom:
    """Entry/exit costs of a snap, from the chain's cumulative durations."""
    start = int(network.geom_offset[snap.chain])
    a = start + snap.segment
    t = snap.fraction

    def interp(cum: npt.NDArray[np.float64]) -> float:
        return float(cum[a] + t * (cum[a + 1] - cum[a]))

    fwd = chain_arcs.arcs(snap.chain, True)
    bwd = chain_arcs.arcs(snap.chain, False)
    ref = fwd[0] if fwd.size else bwd[0]
    return Phantom(
        snap=snap,
        chain=snap.chain,
        offset_cm=round(snap.offset_m * 100),
        to_start_fwd_ms=round(interp(network.geom_cum_fwd_s) * 1000) if fwd.size else -1,
        to_start_bwd_ms=round(interp(network.geom_cum_bwd_s) * 1000) if bwd.size else -1,
        fwd_weight_ms=int(network.arc_weight_ms[fwd[0]]) if fwd.size else -1,
        bwd_weight_ms=int(network.arc_weight_ms[bwd[0]]) if bwd.size else -1,
        dist_cm=int(network.arc_dist_cm[ref]),
        fwd_head=int(network.arc_head[fwd[0]]) if fwd.size else -1,
        bwd_head=int(network.arc_head[bwd[0]]) if bwd.size else -1,
        fwd_tails=tuple(sorted({int(x) for x in network.arc_tail[fwd]})),
        bwd_tails=tuple(sorted({int(x) for x in network.arc_tail[bwd]})),
    )


def same_chain_cost(source: Phantom, target: Phantom) -> tuple[int, int] | None:
    """Cost of driving from source to target without leaving their common chain, if possible."""
    if source.chain != target.chain:
        return None
    best: tuple[int, int] | None = None
    if source.fwd_head >= 0 and target.offset_cm >= source.offset_cm:
        best = (max(0, target.to_start_fwd_ms - source.to_start_fwd_ms), target.offset_cm - source.offset_cm)
    if source.bwd_head >= 0 and target.offset_cm <= source.offset_cm:
        cand = (max(0, source.to_start_bwd_ms - target.to_start_bwd_ms), source.offset_cm - target.offset_cm)
        if best is None or cand < best:
            best = cand
    return best


def seeds_csr(phantoms: list[Phantom], *, as_source: bool) -> tuple[I64, I64, I64, I64]:
    """Seeds of many points as CSR arrays (first, node, duration_ms, distance_cm)."""
    first = [0]
    nodes: list[int] = []
    ws: list[int] = []
    ds: list[int] = []
    for p in phantoms:
        for node, w, d in p.source_seeds() if as_source else p.target_seeds():
            nodes.append(node)
            ws.append(w)
            ds.append(d)
        first.append(len(nodes))
    return (
        np.asarray(first, dtype=np.int64),
        np.asarray(nodes, dtype=np.int64),
        np.asarray(ws, dtype=np.int64),
        np.asarray(ds, dtype=np.int64),
    )
