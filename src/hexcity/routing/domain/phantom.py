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

    def tail_ranges(self, keys: I64) -> tuple[I64, I64]:
        """(first index into ``tail_nodes``, count) for each (2·chain + backward) key."""
        return self._first[keys], self._first[keys + 1] - self._first[keys]

    @property
    def tail_nodes(self) -> I64:
        return self._tails

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


def bulk_seeds(
    network: RoadNetwork, chain_arcs: ChainArcs, snaps: list[Snap], *, as_source: bool
) -> tuple[I64, I64, I64, I64]:
    """``seeds_csr`` for many snaps at once, with array operations (same values, same order)."""
    chain = np.fromiter((s.chain for s in snaps), dtype=np.int64, count=len(snaps))
    segment = np.fromiter((s.segment for s in snaps), dtype=np.int64, count=len(snaps))
    t = np.fromiter((s.fraction for s in snaps), dtype=np.float64, count=len(snaps))
    offset_cm = np.rint(np.fromiter((s.offset_m for s in snaps), np.float64, len(snaps)) * 100).astype(
        np.int64
    )
    a = network.geom_offset[chain] + segment
    fwd_head, bwd_head = chain_arcs.head[2 * chain], chain_arcs.head[2 * chain + 1]
    has_f, has_b = fwd_head >= 0, bwd_head >= 0

    def interp(cum: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> I64:
        lo = cum[a]
        value = lo + t * (cum[a + 1] - lo)
        return np.where(mask, np.rint(np.where(mask, value, 0.0) * 1000), -1).astype(np.int64)

    to_fwd = interp(network.geom_cum_fwd_s, has_f)
    to_bwd = interp(network.geom_cum_bwd_s, has_b)
    dist_cm = chain_arcs.dist_cm[chain]
    if as_source:
        fwd = (
            fwd_head,
            np.maximum(0, chain_arcs.weight_ms[2 * chain] - to_fwd),
            np.maximum(0, dist_cm - offset_cm),
        )
        bwd = (bwd_head, to_bwd, offset_cm)
        count_f, count_b = has_f.astype(np.int64), has_b.astype(np.int64)
        return _interleave(count_f, count_b, fwd, bwd, None, None)
    start_f, count_f = chain_arcs.tail_ranges(2 * chain)
    start_b, count_b = chain_arcs.tail_ranges(2 * chain + 1)
    count_f = np.where(has_f, count_f, 0)
    count_b = np.where(has_b, count_b, 0)
    fwd = (fwd_head, to_fwd, offset_cm)
    bwd = (
        bwd_head,
        np.maximum(0, chain_arcs.weight_ms[2 * chain + 1] - to_bwd),
        np.maximum(0, dist_cm - offset_cm),
    )
    return _interleave(
        count_f, count_b, fwd, bwd, (start_f, chain_arcs.tail_nodes), (start_b, chain_arcs.tail_nodes)
    )


def _interleave(
    count_f: I64,
    count_b: I64,
    fwd: tuple[I64, I64, I64],
    bwd: tuple[I64, I64, I64],
    tails_f: tuple[I64, I64] | None,
    tails_b: tuple[I64, I64] | None,
) -> tuple[I64, I64, I64, I64]:
    """CSR of per-point seeds: ``count_f`` forward seeds then ``count_b`` backward seeds each.

    A seed's node is the head array's value, or, with ``tails_*`` = (start, nodes), the
    ``k``-th tail node ``nodes[start + k]``.
    """
    counts = count_f + count_b
    first = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    total = int(first[-1])
    nodes = np.empty(total, dtype=np.int64)
    ws = np.empty(total, dtype=np.int64)
    ds = np.empty(total, dtype=np.int64)
    for part, count, base, tails in (
        (fwd, count_f, first[:-1], tails_f),
        (bwd, count_b, first[:-1] + count_f, tails_b),
    ):
        point = np.repeat(np.arange(count.size), count)
        k = np.arange(point.size) - np.repeat(np.cumsum(count) - count, count)
        pos = base[point] + k
        nodes[pos] = part[0][point] if tails is None else tails[1][tails[0][point] + k]
        ws[pos] = part[1][point]
        ds[pos] = part[2][point]
    return first, nodes, ws, ds
