"""Contraction hierarchies: node ordering and shortcut insertion.

Follows Geisberger, Sanders, Schultes, Delling, "Contraction Hierarchies: Faster and Simpler
Hierarchical Routing in Road Networks" (WEA 2008), with OSRM's priority term
``2·added/removed + added_hops/removed_hops + depth`` and lazy priority updates.

Costs are lexicographic pairs (duration_ms, distance_cm): a witness must be at least as good in
that order, so every query on the hierarchy returns the same duration *and* distance as a plain
lexicographic Dijkstra on the input graph. All weights are integers ≥ 1.

The whole contraction runs in one numba-compiled function over a growable adjacency pool: each
node owns a slice ``[start, start+cap)`` of the pool for its out-arcs and another for its in-arcs;
a full slice moves to the end of the pool with double capacity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from hexcity.routing.domain.heap import clear, pop_min, push_or_update

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

INF = np.int64(2**62)


@dataclass(frozen=True, slots=True)
class ContractionParams:
    """Knobs of the contraction; the defaults suit road networks of a city or region."""

    witness_settle_limit: int = 500
    simulation_settle_limit: int = 200


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """A contracted graph.

    ``rank[v]`` is the contraction order of input node ``v`` (0 = first contracted).
    Edges ``0..n_arcs-1`` are the input arcs (same ids); shortcuts follow. ``edge_child1/2`` are
    the two halves of a shortcut (-1 for an input arc). ``up_*`` arrays list, for each node, the
    edges of the hierarchy that lead upwards: ``up_fwd_*`` out-edges ``v→w`` with rank[w] >
    rank[v], ``up_bwd_*`` in-edges ``u→v`` with rank[u] > rank[v]; both as (node, edge id) pairs.
    """

    rank: I32
    edge_tail: I32
    edge_head: I32
    edge_weight_ms: I64
    edge_dist_cm: I64
    edge_child1: I64
    edge_child2: I64
    up_fwd_node: I32
    up_fwd_edge: I64
    up_bwd_node: I32
    up_bwd_edge: I64

    @property
    def n_shortcuts(self) -> int:
        return int(np.count_nonzero(self.edge_child1 >= 0))


def contract(
    n_nodes: int,
    tail: I32,
    head: I32,
    weight_ms: I32 | I64,
    dist_cm: I32 | I64,
    params: ContractionParams | None = None,
) -> Hierarchy:
    """Contract a directed graph; see the module docstring.

    Raises ValueError on weights < 1 or node ids out of range.
    """
    params = params or ContractionParams()
    tail64 = np.ascontiguousarray(tail, dtype=np.int64)
    head64 = np.ascontiguousarray(head, dtype=np.int64)
    w64 = np.ascontiguousarray(weight_ms, dtype=np.int64)
    d64 = np.ascontiguousarray(dist_cm, dtype=np.int64)
    if tail64.shape[0] and (w64.min() < 1 or d64.min() < 0):
        raise ValueError("arc weights must be >= 1 and distances >= 0")
    if tail64.shape[0] and (
        min(tail64.min(), head64.min()) < 0 or max(tail64.max(), head64.max()) >= n_nodes
    ):
        raise ValueError("arc endpoint out of range")
    out = _contract_graph(
        n_nodes, tail64, head64, w64, d64, params.witness_settle_limit, params.simulation_settle_limit
    )
    rank, e_tail, e_head, e_w, e_d, e_c1, e_c2, n_edges, uf_node, uf_edge, nuf, ub_node, ub_edge, nub = out
    return Hierarchy(
        rank=rank.astype(np.int32),
        edge_tail=e_tail[:n_edges].astype(np.int32),
        edge_head=e_head[:n_edges].astype(np.int32),
        edge_weight_ms=e_w[:n_edges].copy(),
        edge_dist_cm=e_d[:n_edges].copy(),
        edge_child1=e_c1[:n_edges].copy(),
        edge_child2=e_c2[:n_edges].copy(),
        up_fwd_node=uf_node[:nuf].astype(np.int32),
        up_fwd_edge=uf_edge[:nuf].copy(),
        up_bwd_node=ub_node[:nub].astype(np.int32),
        up_bwd_edge=ub_edge[:nub].copy(),
    )


@njit(cache=True)
def _grow(a, need):
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True)
def _append(start, length, cap, pool_nbr, pool_w, pool_d, pool_eid, used, v, nbr, w, d, eid):
    """Append one arc to node v's list; returns (pool arrays..., used)."""
    if length[v] == cap[v]:
        new_cap = max(4, 2 * cap[v])
        need = used + new_cap
        pool_nbr = _grow(pool_nbr, need)
        pool_w = _grow(pool_w, need)
        pool_d = _grow(pool_d, need)
        pool_eid = _grow(pool_eid, need)
        s = start[v]
        for i in range(length[v]):
            pool_nbr[used + i] = pool_nbr[s + i]
            pool_w[used + i] = pool_w[s + i]
            pool_d[used + i] = pool_d[s + i]
            pool_eid[used + i] = pool_eid[s + i]
        start[v] = used
        cap[v] = new_cap
        used += new_cap
    k = start[v] + length[v]
    pool_nbr[k] = nbr
    pool_w[k] = w
    pool_d[k] = d
    pool_eid[k] = eid
    length[v] += 1
    return pool_nbr, pool_w, pool_d, pool_eid, used


@njit(cache=True)
def _remove_nbr(start, length, pool_nbr, pool_w, pool_d, pool_eid, v, nbr):
    """Remove every arc of v's list that points to nbr (swap with last)."""
    s = start[v]
    i = 0
    while i < length[v]:
        if pool_nbr[s + i] == nbr:
            last = s + length[v] - 1
            pool_nbr[s + i] = pool_nbr[last]
            pool_w[s + i] = pool_w[last]
            pool_d[s + i] = pool_d[last]
            pool_eid[s + i] = pool_eid[last]
            length[v] -= 1
        else:
            i += 1


@njit(cache=True)
def _witness_search(
    src, forbidden, max_w, limit, o_start, o_len, o_nbr, o_w, o_d, dist, ddist, touched, h_node, h_key, pos
):
    """Lexicographic Dijkstra from src avoiding ``forbidden``; returns #touched (reset by caller)."""
    n_touched = 0
    dist[src] = 0
    ddist[src] = 0
    touched[n_touched] = src
    n_touched += 1
    size = push_or_update(h_node, h_key, pos, 0, src, 0)
    settled = 0
    while size > 0:
        x, kx, size = pop_min(h_node, h_key, pos, size)
        if kx > max_w:
            break
        settled += 1
        if settled > limit:
            break
        s = o_start[x]
        for i in range(s, s + o_len[x]):
            y = o_nbr[i]
            if y == forbidden:
                continue
            nw = kx + o_w[i]
            nd = ddist[x] + o_d[i]
            if nw < dist[y] or (nw == dist[y] and nd < ddist[y]):
                if dist[y] == INF:
                    touched[n_touched] = y
                    n_touched += 1
                dist[y] = nw
                ddist[y] = nd
                if nw <= max_w:
                    size = push_or_update(h_node, h_key, pos, size, y, nw)
    clear(h_node, pos, size)
    return n_touched


@njit(cache=True)
def _process_node(
    v,
    insert,
    limit,
    i_start,
    i_len,
    i_nbr,
    i_w,
    i_d,
    i_eid,
    o_start,
    o_len,
    o_nbr,
    o_w,
    o_d,
    o_eid,
    e_hops,
    dist,
    ddist,
    touched,
    h_node,
    h_key,
    pos,
    sc_buf,
):
    """Find the shortcuts needed to contract v.

    Returns (n_shortcuts, hops_added); with ``insert`` the shortcuts are written to ``sc_buf``
    rows (u, w, weight, dist, eid_uv, eid_vw).
    """
    n_sc = 0
    hops = 0
    os_ = o_start[v]
    ol = o_len[v]
    if ol == 0:
        return 0, 0
    max_out = 0
    for j in range(os_, os_ + ol):
        max_out = max(max_out, o_w[j])
    is_ = i_start[v]
    for k in range(is_, is_ + i_len[v]):
        u = i_nbr[k]
        w_uv = i_w[k]
        n_t = _witness_search(
            u,
            v,
            w_uv + max_out,
            limit,
            o_start,
            o_len,
            o_nbr,
            o_w,
            o_d,
            dist,
            ddist,
            touched,
            h_node,
            h_key,
            pos,
        )
        for j in range(os_, os_ + ol):
            w = o_nbr[j]
            if w == u:
                continue
            cw = w_uv + o_w[j]
            cd = i_d[k] + o_d[j]
            if dist[w] < cw or (dist[w] == cw and ddist[w] <= cd):
                continue
            if insert:
                if n_sc >= sc_buf.shape[0]:
                    return -1, 0  # caller grows the buffer and retries
                sc_buf[n_sc, 0] = u
                sc_buf[n_sc, 1] = w
                sc_buf[n_sc, 2] = cw
                sc_buf[n_sc, 3] = cd
                sc_buf[n_sc, 4] = i_eid[k]
                sc_buf[n_sc, 5] = o_eid[j]
            n_sc += 1
            hops += e_hops[i_eid[k]] + e_hops[o_eid[j]]
        for t in range(n_t):
            dist[touched[t]] = INF
            ddist[touched[t]] = INF
    return n_sc, hops


@njit(cache=True)
def _simulated_priority(v, limit, adj, scratch, e_hops, depth):
    """Priority of v from a simulated contraction (no shortcuts are inserted)."""
    i_start, i_len, i_nbr, i_w, i_d, i_eid, o_start, o_len, o_nbr, o_w, o_d, o_eid = adj
    dist, ddist, touched, h_node, h_key, pos, sc_buf = scratch
    n_sc, hops = _process_node(
        v, False, limit, i_start, i_len, i_nbr, i_w, i_d, i_eid, o_start, o_len, o_nbr, o_w, o_d, o_eid,
        e_hops, dist, ddist, touched, h_node, h_key, pos, sc_buf,
    )  # fmt: skip
    return _priority(v, n_sc, hops, i_len, o_len, i_eid, o_eid, i_start, o_start, e_hops, depth)


@njit(cache=True)
def _priority(v, n_sc, hops, i_len, o_len, i_eid, o_eid, i_start, o_start, e_hops, depth):
    removed = i_len[v] + o_len[v]
    removed_hops = 0
    for k in range(i_start[v], i_start[v] + i_len[v]):
        removed_hops += e_hops[i_eid[k]]
    for k in range(o_start[v], o_start[v] + o_len[v]):
        removed_hops += e_hops[o_eid[k]]
    edge_q = 2.0 * n_sc / removed if removed > 0 else 0.0
    hop_q = hops / removed_hops if removed_hops > 0 else 0.0
    return edge_q + hop_q + depth[v]


@njit(cache=True)
def _contract_graph(n, tail, head, w_in, d_in, witness_limit, sim_limit):
    m = tail.shape[0]
    # global edge table (input arcs keep their ids)
    e_cap = max(16, 3 * m)
    e_tail = np.empty(e_cap, np.int64)
    e_head = np.empty(e_cap, np.int64)
    e_w = np.empty(e_cap, np.int64)
    e_d = np.empty(e_cap, np.int64)
    e_c1 = np.full(e_cap, -1, np.int64)
    e_c2 = np.full(e_cap, -1, np.int64)
    e_hops = np.ones(e_cap, np.int64)
    e_tail[:m] = tail
    e_head[:m] = head
    e_w[:m] = w_in
    e_d[:m] = d_in
    n_edges = m

    # adjacency pools, initial capacity 2*degree+2 per node
    out_deg = np.zeros(n, np.int64)
    in_deg = np.zeros(n, np.int64)
    for a in range(m):
        out_deg[tail[a]] += 1
        in_deg[head[a]] += 1
    o_start = np.empty(n, np.int64)
    o_cap = np.empty(n, np.int64)
    o_len = np.zeros(n, np.int64)
    i_start = np.empty(n, np.int64)
    i_cap = np.empty(n, np.int64)
    i_len = np.zeros(n, np.int64)
    used_o = 0
    used_i = 0
    for v in range(n):
        o_start[v] = used_o
        o_cap[v] = 2 * out_deg[v] + 2
        used_o += o_cap[v]
        i_start[v] = used_i
        i_cap[v] = 2 * in_deg[v] + 2
        used_i += i_cap[v]
    o_nbr = np.empty(used_o * 2, np.int64)
    o_w = np.empty(used_o * 2, np.int64)
    o_d = np.empty(used_o * 2, np.int64)
    o_eid = np.empty(used_o * 2, np.int64)
    i_nbr = np.empty(used_i * 2, np.int64)
    i_w = np.empty(used_i * 2, np.int64)
    i_d = np.empty(used_i * 2, np.int64)
    i_eid = np.empty(used_i * 2, np.int64)
    for a in range(m):
        u = tail[a]
        v = head[a]
        # keep only the lexicographically best of parallel arcs
        found = -1
        for k in range(o_start[u], o_start[u] + o_len[u]):
            if o_nbr[k] == v:
                found = k
                break
        if found >= 0:
            if w_in[a] < o_w[found] or (w_in[a] == o_w[found] and d_in[a] < o_d[found]):
                o_w[found] = w_in[a]
                o_d[found] = d_in[a]
                o_eid[found] = a
                for k in range(i_start[v], i_start[v] + i_len[v]):
                    if i_nbr[k] == u:
                        i_w[k] = w_in[a]
                        i_d[k] = d_in[a]
                        i_eid[k] = a
            continue
        o_nbr, o_w, o_d, o_eid, used_o = _append(
            o_start, o_len, o_cap, o_nbr, o_w, o_d, o_eid, used_o, u, v, w_in[a], d_in[a], a
        )
        i_nbr, i_w, i_d, i_eid, used_i = _append(
            i_start, i_len, i_cap, i_nbr, i_w, i_d, i_eid, used_i, v, u, w_in[a], d_in[a], a
        )

    # search workspace
    dist = np.full(n, INF, np.int64)
    ddist = np.full(n, INF, np.int64)
    touched = np.empty(n, np.int64)
    h_node = np.empty(n, np.int32)
    h_key = np.empty(n, np.int64)
    pos = np.full(n, -1, np.int32)
    sc_buf = np.empty((64, 6), np.int64)
    adj = (i_start, i_len, i_nbr, i_w, i_d, i_eid, o_start, o_len, o_nbr, o_w, o_d, o_eid)
    scratch = (dist, ddist, touched, h_node, h_key, pos, sc_buf)

    depth = np.zeros(n, np.float64)
    contracted = np.zeros(n, np.bool_)
    rank = np.full(n, -1, np.int64)

    # priority queue over nodes
    p_node = np.empty(n, np.int32)
    p_key = np.empty(n, np.float64)
    p_pos = np.full(n, -1, np.int32)
    p_size = 0
    for v in range(n):
        prio = _simulated_priority(v, sim_limit, adj, scratch, e_hops, depth)
        p_size = push_or_update(p_node, p_key, p_pos, p_size, v, prio)

    # upward edge lists, filled as nodes are contracted
    uf_node = np.empty(max(16, 2 * m), np.int64)
    uf_edge = np.empty(max(16, 2 * m), np.int64)
    ub_node = np.empty(max(16, 2 * m), np.int64)
    ub_edge = np.empty(max(16, 2 * m), np.int64)
    nuf = 0
    nub = 0
    next_rank = 0
    while p_size > 0:
        v, _, p_size = pop_min(p_node, p_key, p_pos, p_size)
        prio = _simulated_priority(v, sim_limit, adj, scratch, e_hops, depth)
        if p_size > 0 and prio > p_key[0]:
            p_size = push_or_update(p_node, p_key, p_pos, p_size, v, prio)
            continue
        # contract v: find shortcuts with the full witness limit
        while True:
            n_sc, _ = _process_node(
                v,
                True,
                witness_limit,
                i_start,
                i_len,
                i_nbr,
                i_w,
                i_d,
                i_eid,
                o_start,
                o_len,
                o_nbr,
                o_w,
                o_d,
                o_eid,
                e_hops,
                dist,
                ddist,
                touched,
                h_node,
                h_key,
                pos,
                sc_buf,
            )
            if n_sc >= 0:
                break
            sc_buf = np.empty((2 * sc_buf.shape[0], 6), np.int64)
        # record v's upward edges (all remaining neighbours are contracted later)
        need_f = nuf + o_len[v]
        uf_node = _grow(uf_node, need_f)
        uf_edge = _grow(uf_edge, need_f)
        for k in range(o_start[v], o_start[v] + o_len[v]):
            uf_node[nuf] = v
            uf_edge[nuf] = o_eid[k]
            nuf += 1
        need_b = nub + i_len[v]
        ub_node = _grow(ub_node, need_b)
        ub_edge = _grow(ub_edge, need_b)
        for k in range(i_start[v], i_start[v] + i_len[v]):
            ub_node[nub] = v
            ub_edge[nub] = i_eid[k]
            nub += 1
        # detach v from its neighbours
        for k in range(o_start[v], o_start[v] + o_len[v]):
            _remove_nbr(i_start, i_len, i_nbr, i_w, i_d, i_eid, o_nbr[k], v)
        for k in range(i_start[v], i_start[v] + i_len[v]):
            _remove_nbr(o_start, o_len, o_nbr, o_w, o_d, o_eid, i_nbr[k], v)
        # insert shortcuts u→w (or improve an existing arc u→w)
        for s in range(n_sc):
            u = sc_buf[s, 0]
            w = sc_buf[s, 1]
            cw = sc_buf[s, 2]
            cd = sc_buf[s, 3]
            if n_edges >= e_tail.shape[0]:
                need = n_edges + 1
                e_tail = _grow(e_tail, need)
                e_head = _grow(e_head, need)
                e_w = _grow(e_w, need)
                e_d = _grow(e_d, need)
                old = e_c1.shape[0]
                e_c1 = _grow(e_c1, need)
                e_c2 = _grow(e_c2, need)
                e_hops = _grow(e_hops, need)
                e_c1[old:] = -1
                e_c2[old:] = -1
            eid = n_edges
            e_tail[eid] = u
            e_head[eid] = w
            e_w[eid] = cw
            e_d[eid] = cd
            e_c1[eid] = sc_buf[s, 4]
            e_c2[eid] = sc_buf[s, 5]
            e_hops[eid] = e_hops[sc_buf[s, 4]] + e_hops[sc_buf[s, 5]]
            found = -1
            for k in range(o_start[u], o_start[u] + o_len[u]):
                if o_nbr[k] == w:
                    found = k
                    break
            if found >= 0:
                if cw < o_w[found] or (cw == o_w[found] and cd < o_d[found]):
                    n_edges += 1
                    o_w[found] = cw
                    o_d[found] = cd
                    o_eid[found] = eid
                    for k in range(i_start[w], i_start[w] + i_len[w]):
                        if i_nbr[k] == u:
                            i_w[k] = cw
                            i_d[k] = cd
                            i_eid[k] = eid
                continue
            n_edges += 1
            o_nbr, o_w, o_d, o_eid, used_o = _append(
                o_start, o_len, o_cap, o_nbr, o_w, o_d, o_eid, used_o, u, w, cw, cd, eid
            )
            i_nbr, i_w, i_d, i_eid, used_i = _append(
                i_start, i_len, i_cap, i_nbr, i_w, i_d, i_eid, used_i, w, u, cw, cd, eid
            )
        adj = (i_start, i_len, i_nbr, i_w, i_d, i_eid, o_start, o_len, o_nbr, o_w, o_d, o_eid)
        scratch = (dist, ddist, touched, h_node, h_key, pos, sc_buf)
        contracted[v] = True
        rank[v] = next_rank
        next_rank += 1
        # neighbours: deeper, and their priorities change
        for k in range(o_start[v], o_start[v] + o_len[v]):
            x = o_nbr[k]
            depth[x] = max(depth[x], depth[v] + 1.0)
        for k in range(i_start[v], i_start[v] + i_len[v]):
            x = i_nbr[k]
            depth[x] = max(depth[x], depth[v] + 1.0)
        for side in range(2):
            st = o_start[v] if side == 0 else i_start[v]
            ln = o_len[v] if side == 0 else i_len[v]
            for k in range(st, st + ln):
                x = o_nbr[k] if side == 0 else i_nbr[k]
                if contracted[x]:
                    continue
                px = _simulated_priority(x, sim_limit, adj, scratch, e_hops, depth)
                p_size = push_or_update(p_node, p_key, p_pos, p_size, x, px)
        o_len[v] = 0
        i_len[v] = 0
    return (rank, e_tail, e_head, e_w, e_d, e_c1, e_c2, n_edges, uf_node, uf_edge, nuf, ub_node, ub_edge, nub)
