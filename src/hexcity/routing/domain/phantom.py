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
    """Per chain and direction: the head node, weight and the tail node copies of its arcs."""

    def __init__(self, network: RoadNetwork) -> None:
        n_chains = network.n_chains
        chain = np.asarray(network.arc_chain, dtype=np.int64)
        forward = np.asarray(network.arc_forward, dtype=bool)
        key = chain * 2 + (~forward).astype(np.int64)
        order = np.argsort(key, kind="stable")
        self._tails = np.asarray(network.arc_tail, dtype=np.int64)[order]
        self._first = np.searchsorted(key[order], np.arange(2 * n_chains + 1))
        self.head = np.full(2 * n_chains, -1, dtype=np.int64)
        self.weight_ms = np.full(2 * n_chains, -1, dtype=np.int64)
        self.dist_cm = np.zeros(n_chains, dtype=np.int64)
        # every arc of one (chain, direction) shares head and weight: any one of them will do
        self.head[key] = network.arc_head
        self.weight_ms[key] = network.arc_weight_ms
        self.dist_cm[chain] = network.arc_dist_cm

    def tails(self, chain: int, forward: bool) -> tuple[int, ...]:
        k = 2 * chain + (0 if forward else 1)
        return tuple(sorted(set(self._tails[self._first[k] : self._first[k + 1]].tolist())))


def make_phantom(network: RoadNetwork, chain_arcs: ChainArcs, snap: Snap) -> Phantom:
    """Entry/exit costs of a snap, from the chain's cumulative durations."""
    a = int(network.geom_offset[snap.chain]) + snap.segment
    t = snap.fraction
    c = snap.chain
    fwd_head = int(chain_arcs.head[2 * c])
    bwd_head = int(chain_arcs.head[2 * c + 1])

    def interp(cum: npt.NDArray[np.float64]) -> int:
        lo = float(cum[a])
        return round((lo + t * (float(cum[a + 1]) - lo)) * 1000)

    return Phantom(
        snap=snap,
        chain=c,
        offset_cm=round(snap.offset_m * 100),
        to_start_fwd_ms=interp(network.geom_cum_fwd_s) if fwd_head >= 0 else -1,
        to_start_bwd_ms=interp(network.geom_cum_bwd_s) if bwd_head >= 0 else -1,
        fwd_weight_ms=int(chain_arcs.weight_ms[2 * c]),
        bwd_weight_ms=int(chain_arcs.weight_ms[2 * c + 1]),
        dist_cm=int(chain_arcs.dist_cm[c]),
        fwd_head=fwd_head,
        bwd_head=bwd_head,
        fwd_tails=chain_arcs.tails(c, True) if fwd_head >= 0 else (),
        bwd_tails=chain_arcs.tails(c, False) if bwd_head >= 0 else (),
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
