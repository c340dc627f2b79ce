"""The road network of one profile, as the import pipeline hands it to contraction.

Layout (all numpy arrays, structure-of-arrays):

*Graph nodes* ``0..n_nodes-1``: intersections, dead ends and the ends of chains. A node that is the
via node of a turn restriction is split into one copy per group of incoming arcs that share the same
allowed outgoing arcs (node splitting), so turn restrictions are exact in a node-based graph. Copies
share coordinates.

*Chains* ``0..n_chains-1``: a polyline of OSM segments between two graph nodes with no junction
inside. ``geom_offset[c]:geom_offset[c+1]`` indexes the chain's vertices in ``geom_lat``/``geom_lon``.
Per vertex, ``geom_cum_dist_m`` is the distance from the chain start; ``geom_cum_fwd_s`` is the
travel time from the chain start to the vertex driving start→end, and ``geom_cum_bwd_s`` the travel
time between the vertex and the chain start driving end→start (both increasing along the chain;
``nan`` where that direction is not allowed).

*Arcs* ``0..n_arcs-1``: directed graph edges. Arc ``a`` goes from ``arc_tail[a]`` to ``arc_head[a]``
along chain ``arc_chain[a]`` forwards (``arc_forward[a]``) or backwards. Weights are integers so
that shortest paths are exact: ``arc_weight_ms`` (duration, milliseconds, >= 1) and ``arc_dist_cm``
(distance, centimetres). Several arcs may share one chain and direction when the chain's start node
was split (one arc per copy); all of them share the same head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What the import kept and dropped, for the CLI and the manifest."""

    ways_read: int
    ways_routable: int
    restrictions_read: int
    restrictions_applied: int
    nodes_total: int
    nodes_kept: int
    nodes_dropped_scc: int
    chains_kept: int
    chains_dropped_scc: int
    barriers_blocking: int
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoadNetwork:
    """One profile's routable network (largest strongly connected component only)."""

    profile: str
    node_lat: F64
    node_lon: F64
    geom_offset: I64
    geom_lat: F64
    geom_lon: F64
    geom_cum_dist_m: F64
    geom_cum_fwd_s: F64
    geom_cum_bwd_s: F64
    chain_forward: BoolArray
    chain_backward: BoolArray
    chain_name: I32
    names: list[str]
    arc_tail: I32
    arc_head: I32
    arc_chain: I32
    arc_forward: BoolArray
    arc_weight_ms: I32
    arc_dist_cm: I32
    report: ImportReport

    @property
    def n_nodes(self) -> int:
        return int(self.node_lat.shape[0])

    @property
    def n_chains(self) -> int:
        return int(self.geom_offset.shape[0] - 1)

    @property
    def n_arcs(self) -> int:
        return int(self.arc_tail.shape[0])
