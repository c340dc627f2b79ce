"""Build a :class:`RoadNetwork` from the ways, barriers and turn restrictions an OSM reader collected.

Pure numpy/scipy; the reader (``adapters/osm_reader.py``) does the file I/O and tag evaluation.

Design choices:

* **Chains never span OSM ways.** A chain runs between two consecutive graph nodes *of one way*;
  graph nodes are way ends, nodes used twice or more (shared by ways or revisited by one way),
  blocking barriers and restriction via nodes. This keeps one speed and name per chain, at the
  price of a few extra degree-2 graph nodes where one way continues another.
* **Closed chains** (a loop whose two ends are the same node) get an extra graph node at their
  middle vertex, so no arc is a self-loop; any remaining self-loop arc is dropped and counted.
* **Blocking barriers** become dead ends: every chain end at a barrier node gets its own graph
  node (same coordinates), so the barrier can be reached from each side but not passed.
* **Turn restrictions** (via node only) by node splitting: each incoming arc of the via node gets
  its allowed outgoing arcs; incoming arcs with equal sets share one copy of the node; an outgoing
  arc is duplicated once per copy that allows it (see ``network.py``).
* Only the largest strongly connected component is kept; ids are renumbered compactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from hexcity.kernel.geo import EARTH_RADIUS_M
from hexcity.routing.domain.network import F64, I32, I64, BoolArray, ImportReport, RoadNetwork

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class WayTable:
    """Routable ways as flat arrays: way ``w`` has nodes ``node_offset[w]:node_offset[w+1]``.

    Speeds are per way in km/h, ``nan`` for a closed direction; ``duration_s`` (``nan`` if
    absent) overrides the speeds with a total traversal time (ferries).
    """

    way_id: I64
    node_offset: I64
    node_id: I64
    node_lat: F64
    node_lon: F64
    fwd_speed_kmh: F64
    bwd_speed_kmh: F64
    duration_s: F64
    name_index: I32
    names: list[str]

    @property
    def n_ways(self) -> int:
        return int(self.way_id.shape[0])


@dataclass(frozen=True, slots=True)
class TurnRestriction:
    """A via-node turn restriction: ``only`` (``only_*``) or prohibitive (``no_*``)."""

    relation_id: int
    from_way: int
    via_node: int
    to_way: int
    only: bool


@dataclass(frozen=True, slots=True)
class MapExtract:
    """Everything the reader collected for one profile."""

    profile: str
    ways: WayTable
    barrier_nodes: I64
    restrictions: list[TurnRestriction]
    ways_read: int
    restrictions_read: int
    extra: dict[str, int] = field(default_factory=dict)


def haversine_m(lat1: F64, lon1: F64, lat2: F64, lon2: F64) -> F64:
    """Vectorised great-circle distance in metres (same formula as ``kernel.geo.haversine_m``)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat = p2 - p1
    dlon = np.radians(lon2 - lon1)
    h = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    out: F64 = 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(h)))
    return out


# --------------------------------------------------------------------------------------------
# Step 1: ways → positions, graph positions, chains
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Positions:
    """All way-node positions after cleaning; ``way`` is the index into the WayTable."""

    way: I64
    ref: I64
    lat: F64
    lon: F64
    way_first: BoolArray
    way_last: BoolArray


def _clean_positions(ways: WayTable) -> tuple[_Positions, int]:
    """Drop repeated consecutive refs and ways left with < 2 nodes; returns (positions, ways dropped)."""
    lengths = np.diff(ways.node_offset)
    way = np.repeat(np.arange(ways.n_ways, dtype=np.int64), lengths)
    ref = ways.node_id
    keep = np.ones(ref.shape[0], dtype=np.bool_)
    keep[1:] = ~((ref[1:] == ref[:-1]) & (way[1:] == way[:-1]))
    new_len = np.bincount(way[keep], minlength=ways.n_ways)
    keep &= (new_len >= 2)[way]
    way, ref = way[keep], ref[keep]
    first = np.ones(way.shape[0], dtype=np.bool_)
    first[1:] = way[1:] != way[:-1]
    last = np.ones(way.shape[0], dtype=np.bool_)
    last[:-1] = way[1:] != way[:-1]
    pos = _Positions(way, ref, ways.node_lat[keep], ways.node_lon[keep], first, last)
    return pos, int(np.count_nonzero((new_len < 2) & (lengths > 0)))


def _chains(graph: BoolArray, way: I64) -> tuple[I64, I64]:
    """(start, end) positions of consecutive graph positions within one way."""
    gpos = np.flatnonzero(graph).astype(np.int64)
    start, end = gpos[:-1], gpos[1:]
    same = way[start] == way[end]
    return start[same], end[same]


def _graph_positions(pos: _Positions, special_refs: I64) -> tuple[BoolArray, I64, I64]:
    """Mark graph positions and cut chains; loops get their middle vertex as extra graph node."""
    _, inv, counts = np.unique(pos.ref, return_inverse=True, return_counts=True)
    graph = (counts[inv] >= 2) | pos.way_first | pos.way_last | np.isin(pos.ref, special_refs)
    start, end = _chains(graph, pos.way)
    loop = pos.ref[start] == pos.ref[end]
    if np.any(loop):
        graph[(start[loop] + end[loop]) // 2] = True
        start, end = _chains(graph, pos.way)
    return graph, start, end


# --------------------------------------------------------------------------------------------
# Step 2: node ids (barriers become one dead end per chain end)
# --------------------------------------------------------------------------------------------


def _node_ids(pos: _Positions, start: I64, end: I64, barriers: I64) -> tuple[I64, I64, F64, F64, I64]:
    """Graph node of each chain end; returns (start_node, end_node, node_lat, node_lon, node_ref)."""
    ends = np.stack([start, end], axis=1).reshape(-1)  # chain c: 2c = start, 2c+1 = end
    at_barrier = np.isin(pos.ref[ends], barriers)
    shared_refs, first_idx = np.unique(pos.ref[ends[~at_barrier]], return_index=True)
    shared_pos = ends[~at_barrier][first_idx]
    node = np.empty(ends.shape[0], dtype=np.int64)
    node[~at_barrier] = np.searchsorted(shared_refs, pos.ref[ends[~at_barrier]])
    n_shared = shared_refs.shape[0]
    node[at_barrier] = n_shared + np.arange(int(np.count_nonzero(at_barrier)), dtype=np.int64)
    node_pos = np.concatenate([shared_pos, ends[at_barrier]])
    return node[0::2], node[1::2], pos.lat[node_pos], pos.lon[node_pos], pos.ref[node_pos]


# --------------------------------------------------------------------------------------------
# Step 3: geometry, cumulative distances and times
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Chains:
    start_node: I64
    end_node: I64
    node_ref: I64  # OSM id of each graph node (barrier dead ends repeat their barrier's id)
    way: I64
    geom_offset: I64
    geom_lat: F64
    geom_lon: F64
    cum_dist_m: F64
    cum_fwd_s: F64
    cum_bwd_s: F64
    forward: BoolArray
    backward: BoolArray


def _segment_speeds_ms(ways: WayTable, pos: _Positions, seg_m: F64) -> tuple[F64, F64]:
    """Per-way speeds in m/s; closed directions get 1.0 (masked later), ``duration`` ways length/duration."""
    fwd = ways.fwd_speed_kmh / 3.6
    bwd = ways.bwd_speed_kmh / 3.6
    timed = ~np.isnan(ways.duration_s)
    if np.any(timed):
        same_way = np.zeros(pos.way.shape[0], dtype=np.float64)
        same_way[:-1] = seg_m[:-1] * (pos.way[1:] == pos.way[:-1])
        length_m = np.bincount(pos.way, weights=same_way, minlength=ways.n_ways)
        speed = np.maximum(length_m, 0.01) / ways.duration_s
        fwd = np.where(timed & ~np.isnan(fwd), speed, fwd)
        bwd = np.where(timed & ~np.isnan(bwd), speed, bwd)
    return np.nan_to_num(fwd, nan=1.0), np.nan_to_num(bwd, nan=1.0)


def _chain_geometry(ways: WayTable, pos: _Positions, start: I64, end: I64) -> tuple[I64, I64, F64, F64, F64]:
    """Geometry offsets, vertex positions and per-vertex cumulative distance/forward/backward time."""
    n = pos.ref.shape[0]
    seg_m = np.zeros(n, dtype=np.float64)  # seg_m[i]: distance from position i to i+1
    seg_m[:-1] = haversine_m(pos.lat[:-1], pos.lon[:-1], pos.lat[1:], pos.lon[1:])
    fwd_ms, bwd_ms = _segment_speeds_ms(ways, pos, seg_m)
    lengths = end - start + 1
    geom_offset = np.zeros(start.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=geom_offset[1:])
    geom_pos = np.repeat(start - geom_offset[:-1], lengths) + np.arange(int(geom_offset[-1]), dtype=np.int64)
    chain_start = np.repeat(start, lengths)

    def cumulative(seg: F64) -> F64:
        total = np.zeros(n + 1, dtype=np.float64)
        np.cumsum(seg, out=total[1:])
        out: F64 = total[geom_pos] - total[chain_start]
        return out

    cum_m = cumulative(seg_m)
    seg_way = pos.way
    return (
        geom_offset,
        geom_pos,
        cum_m,
        cumulative(seg_m / fwd_ms[seg_way]),
        cumulative(seg_m / bwd_ms[seg_way]),
    )


def _build_chains(
    ways: WayTable, pos: _Positions, start: I64, end: I64, barriers: I64
) -> tuple[_Chains, F64, F64]:
    """Chains with nodes and geometry; returns (chains, node_lat, node_lon)."""
    start_node, end_node, node_lat, node_lon, node_ref = _node_ids(pos, start, end, barriers)
    geom_offset, geom_pos, cum_m, cum_fwd, cum_bwd = _chain_geometry(ways, pos, start, end)
    way = pos.way[start]
    forward = ~np.isnan(ways.fwd_speed_kmh[way])
    backward = ~np.isnan(ways.bwd_speed_kmh[way])
    lengths = np.diff(geom_offset)
    cum_fwd[~np.repeat(forward, lengths)] = np.nan
    cum_bwd[~np.repeat(backward, lengths)] = np.nan
    chains = _Chains(
        start_node, end_node, node_ref, way, geom_offset, pos.lat[geom_pos], pos.lon[geom_pos],
        cum_m, cum_fwd, cum_bwd, forward, backward,
    )  # fmt: skip
    return chains, node_lat, node_lon


# --------------------------------------------------------------------------------------------
# Step 4: arcs
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Arcs:
    tail: I64
    head: I64
    chain: I64
    forward: BoolArray
    weight_ms: I64
    dist_cm: I64


def _build_arcs(ch: _Chains) -> tuple[_Arcs, int]:
    """One arc per open chain direction, interleaved by chain; drops self-loops (returns their count)."""
    last = ch.geom_offset[1:] - 1
    total_m = ch.cum_dist_m[last]
    n = ch.start_node.shape[0]
    chain = np.repeat(np.arange(n, dtype=np.int64), 2)
    forward = np.tile(np.array([True, False]), n)
    open_ = np.stack([ch.forward, ch.backward], axis=1).reshape(-1)
    total_s = np.stack([ch.cum_fwd_s[last], ch.cum_bwd_s[last]], axis=1).reshape(-1)
    tail = np.where(forward, ch.start_node[chain], ch.end_node[chain])
    head = np.where(forward, ch.end_node[chain], ch.start_node[chain])
    loops = open_ & (tail == head)
    keep = open_ & ~loops
    weight = np.maximum(1, np.rint(np.nan_to_num(total_s[keep]) * 1000.0)).astype(np.int64)
    dist = np.rint(total_m[chain[keep]] * 100.0).astype(np.int64)
    arcs = _Arcs(tail[keep], head[keep], chain[keep], forward[keep], weight, dist)
    return arcs, int(np.count_nonzero(loops))


# --------------------------------------------------------------------------------------------
# Step 5: turn restrictions by node splitting
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Splitter:
    """Mutable arc lists for splitting via nodes one after the other."""

    tail: list[int]
    head: list[int]
    src: list[int]  # original arc each arc copies (chain, direction, weights)
    chain_way: list[int]
    arc_chain: list[int]
    n_nodes: int
    copy_of: list[int] = field(default_factory=list)  # original node of each new node copy
    incoming: dict[int, list[int]] = field(default_factory=dict)
    outgoing: dict[int, list[int]] = field(default_factory=dict)
    dropped: set[int] = field(default_factory=set)

    def way_of(self, arc: int) -> int:
        return self.chain_way[self.arc_chain[self.src[arc]]]

    def chain_of(self, arc: int) -> int:
        return self.arc_chain[self.src[arc]]


def _allowed_sets(
    sp: _Splitter, via: int, restrictions: list[TurnRestriction]
) -> tuple[dict[int, frozenset[int]], int]:
    """Allowed outgoing arcs per incoming arc at ``via``; returns (sets, restrictions applied)."""
    incoming = [a for a in sp.incoming.get(via, []) if a not in sp.dropped]
    outgoing = [a for a in sp.outgoing.get(via, []) if a not in sp.dropped]
    allowed = {a: frozenset(outgoing) for a in incoming}
    applied = 0
    for r in restrictions:
        used = False
        for a in incoming:
            if sp.way_of(a) != r.from_way:
                continue
            targets = {
                o for o in outgoing
                if sp.way_of(o) == r.to_way and (r.from_way != r.to_way or sp.chain_of(o) == sp.chain_of(a))
            }  # fmt: skip
            if not targets:
                continue
            used = True
            allowed[a] = allowed[a] & targets if r.only else allowed[a] - targets
        applied += used
    return allowed, applied


def _split_node(sp: _Splitter, via: int, allowed: dict[int, frozenset[int]]) -> None:
    """Give each group of incoming arcs with the same allowed set its own copy of ``via``."""
    groups: dict[frozenset[int], list[int]] = {}
    for a in sorted(allowed):
        groups.setdefault(allowed[a], []).append(a)
    full = frozenset(a for a in sp.outgoing.get(via, []) if a not in sp.dropped)
    if set(groups) <= {full}:
        return
    copies: list[tuple[int, frozenset[int]]] = []
    for k, (allowed_set, arcs) in enumerate(groups.items()):
        node = via if k == 0 else sp.n_nodes + len(sp.copy_of)
        if k > 0:
            sp.copy_of.append(via)
        for a in arcs:
            sp.head[a] = node
        copies.append((node, allowed_set))
    for o in sorted(a for a in sp.outgoing.get(via, []) if a not in sp.dropped):
        nodes = [node for node, s in copies if o in s]
        if not nodes:
            sp.dropped.add(o)
            continue
        sp.tail[o] = nodes[0]
        for node in nodes[1:]:
            new = len(sp.tail)
            sp.tail.append(node)
            sp.head.append(sp.head[o])
            sp.src.append(sp.src[o])
            if sp.head[o] in sp.incoming:
                sp.incoming[sp.head[o]].append(new)


def _apply_restrictions(
    arcs: _Arcs, chain_way_id: I64, n_nodes: int, via_nodes: dict[int, list[TurnRestriction]]
) -> tuple[_Arcs, list[int], int]:
    """Split every via node; returns (arcs incl. duplicates, original node of each copy, applied)."""
    if not via_nodes:
        return arcs, [], 0
    sp = _Splitter(
        tail=arcs.tail.tolist(), head=arcs.head.tolist(), src=list(range(arcs.tail.shape[0])),
        chain_way=chain_way_id.tolist(), arc_chain=arcs.chain.tolist(), n_nodes=n_nodes,
    )  # fmt: skip
    vias = np.array(sorted(via_nodes), dtype=np.int64)
    for arc in np.flatnonzero(np.isin(arcs.head, vias)).tolist():
        sp.incoming.setdefault(sp.head[arc], []).append(arc)
    for arc in np.flatnonzero(np.isin(arcs.tail, vias)).tolist():
        sp.outgoing.setdefault(sp.tail[arc], []).append(arc)
    for v in vias.tolist():
        sp.incoming.setdefault(v, [])
    applied = 0
    for v in vias.tolist():
        allowed, n_applied = _allowed_sets(sp, v, via_nodes[v])
        applied += n_applied
        if n_applied:
            _split_node(sp, v, allowed)
    keep = np.ones(len(sp.tail), dtype=np.bool_)
    keep[list(sp.dropped)] = False
    src = np.asarray(sp.src, dtype=np.int64)[keep]
    out = _Arcs(
        np.asarray(sp.tail, dtype=np.int64)[keep], np.asarray(sp.head, dtype=np.int64)[keep],
        arcs.chain[src], arcs.forward[src], arcs.weight_ms[src], arcs.dist_cm[src],
    )  # fmt: skip
    return out, sp.copy_of, applied


def _restrictions_by_via(
    restrictions: list[TurnRestriction], node_ref: I64, chain_way_id: I64
) -> tuple[dict[int, list[TurnRestriction]], int]:
    """Restrictions grouped by via graph node; returns (groups, restrictions whose ways/via are unknown)."""
    way_ids = set(chain_way_id.tolist())
    order = np.argsort(node_ref, kind="stable")
    refs_sorted = node_ref[order]
    groups: dict[int, list[TurnRestriction]] = defaultdict(list)
    invalid = 0
    for r in sorted(restrictions, key=lambda r: (r.via_node, r.relation_id)):
        i = int(np.searchsorted(refs_sorted, r.via_node))
        if i >= refs_sorted.shape[0] or refs_sorted[i] != r.via_node or r.from_way not in way_ids:
            invalid += 1
            continue
        node = int(order[i])
        # barrier copies share the ref; a via node at a barrier is a dead end anyway
        at_barrier = i + 1 < refs_sorted.shape[0] and refs_sorted[i + 1] == r.via_node
        if at_barrier or r.to_way not in way_ids:
            invalid += 1
            continue
        groups[node].append(r)
    return dict(groups), invalid


# --------------------------------------------------------------------------------------------
# Step 6: largest strongly connected component and compaction
# --------------------------------------------------------------------------------------------


def _largest_scc(n_nodes: int, tail: I64, head: I64) -> BoolArray:
    """Mask of the nodes in the largest strongly connected component (smallest label on ties)."""
    if n_nodes == 0:
        return np.zeros(0, dtype=np.bool_)
    graph = csr_matrix((np.ones(tail.shape[0], dtype=np.int8), (tail, head)), shape=(n_nodes, n_nodes))
    _, labels = connected_components(graph, directed=True, connection="strong")
    best = int(np.argmax(np.bincount(labels)))
    mask: BoolArray = labels == best
    return mask


def _gather_geometry(ch: _Chains, chains: I64) -> tuple[I64, I64]:
    """New geometry offsets and the old vertex indices of the selected chains."""
    lengths = ch.geom_offset[chains + 1] - ch.geom_offset[chains]
    offset = np.zeros(chains.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offset[1:])
    idx = np.repeat(ch.geom_offset[chains] - offset[:-1], lengths) + np.arange(
        int(offset[-1]), dtype=np.int64
    )
    return offset, idx


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def build_road_network(extract: MapExtract, progress: Progress | None = None) -> RoadNetwork:
    """The routable network of ``extract`` (largest strongly connected component only)."""
    notify = progress or (lambda stage, done, total: None)
    ways = extract.ways
    pos, degenerate = _clean_positions(ways)
    via_refs = np.array(sorted({r.via_node for r in extract.restrictions}), dtype=np.int64)
    barriers = np.unique(extract.barrier_nodes).astype(np.int64)
    barriers_on = barriers[np.isin(barriers, pos.ref)]
    _, start, end = _graph_positions(pos, np.union1d(via_refs, barriers_on))
    notify("build", 1, 4)
    ch, node_lat, node_lon = _build_chains(ways, pos, start, end, barriers_on)
    arcs, self_loops = _build_arcs(ch)
    notify("build", 2, 4)
    chain_way_id = ways.way_id[ch.way]
    via_nodes, invalid = _restrictions_by_via(extract.restrictions, ch.node_ref, chain_way_id)
    arcs, copy_of, applied = _apply_restrictions(arcs, chain_way_id, node_lat.shape[0], via_nodes)
    n_copies = len(copy_of)
    notify("build", 3, 4)
    if n_copies:
        originals = np.asarray(copy_of, dtype=np.int64)
        node_lat = np.concatenate([node_lat, node_lat[originals]])
        node_lon = np.concatenate([node_lon, node_lon[originals]])
    n_nodes = int(node_lat.shape[0])
    n_chains_with_arcs = int(np.unique(arcs.chain).shape[0])
    keep_node = _largest_scc(n_nodes, arcs.tail, arcs.head)
    network = _compact(extract, ch, arcs, keep_node, (node_lat, node_lon))
    kept_chains = network.n_chains
    extra = dict(extract.extra)
    extra.update(
        self_loops_dropped=self_loops, ways_degenerate=degenerate, node_copies=n_copies,
        restrictions_invalid=invalid + sum(len(v) for v in via_nodes.values()) - applied,
        arcs_total=int(arcs.tail.shape[0]), arcs_kept=network.n_arcs,
        barrier_nodes_read=int(barriers.shape[0]),
    )  # fmt: skip
    report = ImportReport(
        ways_read=extract.ways_read, ways_routable=ways.n_ways,
        restrictions_read=extract.restrictions_read, restrictions_applied=applied,
        nodes_total=n_nodes, nodes_kept=network.n_nodes, nodes_dropped_scc=n_nodes - network.n_nodes,
        chains_kept=kept_chains, chains_dropped_scc=n_chains_with_arcs - kept_chains,
        barriers_blocking=int(barriers_on.shape[0]), extra=extra,
    )  # fmt: skip
    notify("build", 4, 4)
    return _with_report(network, report)


def _compact(
    extract: MapExtract, ch: _Chains, arcs: _Arcs, keep_node: BoolArray, node_coords: tuple[F64, F64]
) -> RoadNetwork:
    """Restrict to ``keep_node``, renumber nodes/chains/arcs compactly, gather geometry."""
    node_lat, node_lon = node_coords
    keep_arc = keep_node[arcs.tail] & keep_node[arcs.head]
    new_node = np.cumsum(keep_node, dtype=np.int64) - 1
    chains = np.unique(arcs.chain[keep_arc])
    new_chain = np.full(ch.start_node.shape[0], -1, dtype=np.int64)
    new_chain[chains] = np.arange(chains.shape[0], dtype=np.int64)
    order = np.lexsort((arcs.tail[keep_arc], ~arcs.forward[keep_arc], arcs.chain[keep_arc]))
    sel = np.flatnonzero(keep_arc)[order]
    offset, gidx = _gather_geometry(ch, chains)
    ways = extract.ways
    name_idx = ways.name_index[ch.way[chains]]
    used_names, chain_name = np.unique(name_idx, return_inverse=True)
    return RoadNetwork(
        profile=extract.profile,
        node_lat=node_lat[keep_node], node_lon=node_lon[keep_node],
        geom_offset=offset, geom_lat=ch.geom_lat[gidx], geom_lon=ch.geom_lon[gidx],
        geom_cum_dist_m=ch.cum_dist_m[gidx],
        geom_cum_fwd_s=ch.cum_fwd_s[gidx], geom_cum_bwd_s=ch.cum_bwd_s[gidx],
        chain_forward=ch.forward[chains], chain_backward=ch.backward[chains],
        chain_name=chain_name.astype(np.int32), names=[ways.names[i] for i in used_names.tolist()],
        arc_tail=new_node[arcs.tail[sel]].astype(np.int32),
        arc_head=new_node[arcs.head[sel]].astype(np.int32),
        arc_chain=new_chain[arcs.chain[sel]].astype(np.int32), arc_forward=arcs.forward[sel].copy(),
        arc_weight_ms=arcs.weight_ms[sel].astype(np.int32),
        arc_dist_cm=arcs.dist_cm[sel].astype(np.int32),
        report=ImportReport(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    )  # fmt: skip


def _with_report(network: RoadNetwork, report: ImportReport) -> RoadNetwork:
    return replace(network, report=report)
