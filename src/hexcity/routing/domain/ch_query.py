"""Queries on a contraction hierarchy: point-to-point and bucket-based many-to-many.

Point-to-point is the bidirectional upward Dijkstra of Geisberger et al. (2008) with
stall-on-demand; many-to-many is the bucket algorithm of Knopp, Sanders, Schultes, Schulz,
Wagner, "Computing Many-to-Many Shortest Paths Using Highway Hierarchies" (ALENEX 2007), as
OSRM's table plugin does it. Both take several *seeds* per side (node, initial duration,
initial distance): a snapped point on a road lies between two nodes, and the search starts from
both ends with the part of the segment already travelled (OSRM's phantom nodes).

Costs are lexicographic (duration_ms, distance_cm) integers, so results are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from hexcity.routing.domain.contraction import INF, Hierarchy
from hexcity.routing.domain.heap import clear, pop_min, push_or_update

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class QueryGraph:
    """Upward graphs in CSR form, plus the edge table needed to unpack shortcuts."""

    n_nodes: int
    n_arcs: int
    fwd_first: I64
    fwd_to: I32
    fwd_weight: I32
    fwd_dist: I32
    fwd_edge: I32
    bwd_first: I64
    bwd_to: I32
    bwd_weight: I32
    bwd_dist: I32
    bwd_edge: I32
    edge_tail: I32
    edge_head: I32
    edge_child1: I32
    edge_child2: I32


def build_query_graph(h: Hierarchy, n_nodes: int, n_arcs: int) -> QueryGraph:
    """Lay the hierarchy's upward edges out as two CSR graphs."""

    def csr(nodes: I32, edges: I64, other: I32) -> tuple[I64, I32, I32, I32, I32]:
        order = np.lexsort((other[edges], nodes))
        nodes_s = nodes[order]
        edges_s = edges[order]
        first = np.zeros(n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(nodes_s, minlength=n_nodes), out=first[1:])
        return (
            first,
            other[edges_s].astype(np.int32),
            h.edge_weight_ms[edges_s].astype(np.int32),
            h.edge_dist_cm[edges_s].astype(np.int32),
            edges_s.astype(np.int32),
        )

    ff, ft, fw, fd, fe = csr(h.up_fwd_node, h.up_fwd_edge, h.edge_head)
    bf, bt, bw, bd, be = csr(h.up_bwd_node, h.up_bwd_edge, h.edge_tail)
    return QueryGraph(
        n_nodes=n_nodes,
        n_arcs=n_arcs,
        fwd_first=ff,
        fwd_to=ft,
        fwd_weight=fw,
        fwd_dist=fd,
        fwd_edge=fe,
        bwd_first=bf,
        bwd_to=bt,
        bwd_weight=bw,
        bwd_dist=bd,
        bwd_edge=be,
        edge_tail=h.edge_tail.astype(np.int32),
        edge_head=h.edge_head.astype(np.int32),
        edge_child1=h.edge_child1.astype(np.int32),
        edge_child2=h.edge_child2.astype(np.int32),
    )


class Workspace:
    """Per-thread scratch arrays for searches (never shared between concurrent queries)."""

    def __init__(self, n_nodes: int) -> None:
        n = max(n_nodes, 1)
        self.dist_f = np.full(n, INF, np.int64)
        self.dd_f = np.full(n, INF, np.int64)
        self.par_f = np.full(n, -1, np.int64)
        self.dist_b = np.full(n, INF, np.int64)
        self.dd_b = np.full(n, INF, np.int64)
        self.par_b = np.full(n, -1, np.int64)
        self.touched_f = np.empty(n, np.int64)
        self.touched_b = np.empty(n, np.int64)
        self.hf_node = np.empty(n, np.int32)
        self.hf_key = np.empty(n, np.int64)
        self.hf_pos = np.full(n, -1, np.int32)
        self.hb_node = np.empty(n, np.int32)
        self.hb_key = np.empty(n, np.int64)
        self.hb_pos = np.full(n, -1, np.int32)


def search_route(
    q: QueryGraph, ws: Workspace, s_nodes: I64, s_w: I64, s_d: I64, t_nodes: I64, t_w: I64, t_d: I64
) -> tuple[int, int, int, int, int]:
    """Point-to-point search from source seeds to target seeds.

    Returns (duration_ms, distance_cm, meeting node or -1, touched_f, touched_b); the search state
    stays in ``ws`` for ``path_arcs`` until ``clear_route`` resets it.
    """
    out = route_query(
        s_nodes, s_w, s_d, t_nodes, t_w, t_d,
        q.fwd_first, q.fwd_to, q.fwd_weight, q.fwd_dist, q.fwd_edge,
        q.bwd_first, q.bwd_to, q.bwd_weight, q.bwd_dist, q.bwd_edge,
        ws.dist_f, ws.dd_f, ws.par_f, ws.dist_b, ws.dd_b, ws.par_b, ws.touched_f, ws.touched_b,
        ws.hf_node, ws.hf_key, ws.hf_pos, ws.hb_node, ws.hb_key, ws.hb_pos,
    )  # fmt: skip
    return int(out[0]), int(out[1]), int(out[2]), int(out[3]), int(out[4])


def path_arcs(q: QueryGraph, ws: Workspace, meet: int) -> tuple[I64, int, int]:
    """Input arcs of the path found by ``search_route``, with its first and last node."""
    arcs, first, last = unpack_path(
        meet, ws.par_f, ws.par_b, q.edge_tail, q.edge_head, q.edge_child1, q.edge_child2, q.n_arcs
    )
    return arcs, int(first), int(last)


def clear_route(ws: Workspace, touched_f: int, touched_b: int) -> None:
    """Reset the workspace after ``search_route`` (only the touched entries)."""
    reset(ws.dist_f, ws.dd_f, ws.par_f, ws.touched_f, touched_f)
    reset(ws.dist_b, ws.dd_b, ws.par_b, ws.touched_b, touched_b)


def search_table(
    q: QueryGraph, ws: Workspace, sources: tuple[I64, I64, I64, I64], targets: tuple[I64, I64, I64, I64],
    res_w: I64, res_d: I64,
) -> None:  # fmt: skip
    """Many-to-many into ``res_w``/``res_d`` (pre-filled with INF); seeds as CSR (first, node, w, d)."""
    table_query(
        *sources, *targets,
        q.fwd_first, q.fwd_to, q.fwd_weight, q.fwd_dist, q.bwd_first, q.bwd_to, q.bwd_weight, q.bwd_dist,
        ws.dist_f, ws.dd_f, ws.par_f, ws.touched_f, ws.hf_node, ws.hf_key, ws.hf_pos, res_w, res_d,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def _better(w, d, bw, bd):
    return w < bw or (w == bw and d < bd)


@njit(cache=True, nogil=True)
def _stalled(x, kx, dx, dist, dd, first, to, wt, dt):
    """Stall-on-demand: x is reached better through a higher node on the opposite graph."""
    for i in range(first[x], first[x + 1]):
        y = to[i]
        if dist[y] < INF:
            nw = dist[y] + wt[i]
            if nw < kx or (nw == kx and dd[y] + dt[i] < dx):
                return True
    return False


@njit(cache=True, nogil=True)
def _seed(nodes, ws, ds, dist, dd, par, touched, h_node, h_key, h_pos):
    nt = 0
    size = 0
    for i in range(nodes.shape[0]):
        v = nodes[i]
        if dist[v] == INF:
            touched[nt] = v
            nt += 1
        if _better(ws[i], ds[i], dist[v], dd[v]):
            dist[v] = ws[i]
            dd[v] = ds[i]
            par[v] = -1
            size = push_or_update(h_node, h_key, h_pos, size, v, ws[i])
    return nt, size


@njit(cache=True, nogil=True)
def route_query(
    s_nodes,
    s_w,
    s_d,
    t_nodes,
    t_w,
    t_d,
    fwd_first,
    fwd_to,
    fwd_w,
    fwd_d,
    fwd_e,
    bwd_first,
    bwd_to,
    bwd_w,
    bwd_d,
    bwd_e,
    dist_f,
    dd_f,
    par_f,
    dist_b,
    dd_b,
    par_b,
    touched_f,
    touched_b,
    hf_node,
    hf_key,
    hf_pos,
    hb_node,
    hb_key,
    hb_pos,
):
    """Bidirectional CH search; returns (weight, dist, meeting node or -1).

    Leaves the search state in the workspace for ``unpack_path``; call ``reset`` afterwards.
    Returns the touched counts as well: (w, d, meet, n_touched_f, n_touched_b).
    """
    ntf, size_f = _seed(s_nodes, s_w, s_d, dist_f, dd_f, par_f, touched_f, hf_node, hf_key, hf_pos)
    ntb, size_b = _seed(t_nodes, t_w, t_d, dist_b, dd_b, par_b, touched_b, hb_node, hb_key, hb_pos)
    best_w = INF
    best_d = INF
    meet = -1
    forward = True
    while size_f > 0 or size_b > 0:
        if size_f > 0 and hf_key[0] > best_w:
            size_f = clear(hf_node, hf_pos, size_f)
        if size_b > 0 and hb_key[0] > best_w:
            size_b = clear(hb_node, hb_pos, size_b)
        if size_f == 0 and size_b == 0:
            break
        if (forward and size_f > 0) or size_b == 0:
            x, kx, size_f = pop_min(hf_node, hf_key, hf_pos, size_f)
            dx = dd_f[x]
            if dist_b[x] < INF and _better(kx + dist_b[x], dx + dd_b[x], best_w, best_d):
                best_w = kx + dist_b[x]
                best_d = dx + dd_b[x]
                meet = x
            if not _stalled(x, kx, dx, dist_f, dd_f, bwd_first, bwd_to, bwd_w, bwd_d):
                for i in range(fwd_first[x], fwd_first[x + 1]):
                    y = fwd_to[i]
                    nw = kx + fwd_w[i]
                    nd = dx + fwd_d[i]
                    if _better(nw, nd, dist_f[y], dd_f[y]):
                        if dist_f[y] == INF:
                            touched_f[ntf] = y
                            ntf += 1
                        dist_f[y] = nw
                        dd_f[y] = nd
                        par_f[y] = fwd_e[i]
                        size_f = push_or_update(hf_node, hf_key, hf_pos, size_f, y, nw)
        else:
            x, kx, size_b = pop_min(hb_node, hb_key, hb_pos, size_b)
            dx = dd_b[x]
            if dist_f[x] < INF and _better(kx + dist_f[x], dx + dd_f[x], best_w, best_d):
                best_w = kx + dist_f[x]
                best_d = dx + dd_f[x]
                meet = x
            if not _stalled(x, kx, dx, dist_b, dd_b, fwd_first, fwd_to, fwd_w, fwd_d):
                for i in range(bwd_first[x], bwd_first[x + 1]):
                    y = bwd_to[i]
                    nw = kx + bwd_w[i]
                    nd = dx + bwd_d[i]
                    if _better(nw, nd, dist_b[y], dd_b[y]):
                        if dist_b[y] == INF:
                            touched_b[ntb] = y
                            ntb += 1
                        dist_b[y] = nw
                        dd_b[y] = nd
                        par_b[y] = bwd_e[i]
                        size_b = push_or_update(hb_node, hb_key, hb_pos, size_b, y, nw)
        forward = not forward
    return best_w, best_d, meet, ntf, ntb


@njit(cache=True, nogil=True)
def reset(dist, dd, par, touched, n_touched):
    for i in range(n_touched):
        v = touched[i]
        dist[v] = INF
        dd[v] = INF
        par[v] = -1


@njit(cache=True, nogil=True)
def unpack_path(meet, par_f, par_b, edge_tail, edge_head, edge_c1, edge_c2, n_arcs):
    """Input arcs of the path through ``meet``; returns (arcs, first node, last node)."""
    n_up = 0
    x = meet
    while par_f[x] >= 0:
        n_up += 1
        x = edge_tail[par_f[x]]
    first_node = x
    n_down = 0
    x = meet
    while par_b[x] >= 0:
        n_down += 1
        x = edge_head[par_b[x]]
    last_node = x
    # hierarchy edges in path order: the up part reversed, then the down part
    top = np.empty(n_up + n_down, np.int64)
    x = meet
    for i in range(n_up - 1, -1, -1):
        top[i] = par_f[x]
        x = edge_tail[par_f[x]]
    x = meet
    for i in range(n_up, n_up + n_down):
        top[i] = par_b[x]
        x = edge_head[par_b[x]]
    # expand shortcuts depth-first with an explicit stack
    cap = 64
    out = np.empty(cap, np.int64)
    n_out = 0
    stack = np.empty(64 + top.shape[0], np.int64)
    sp = 0
    for i in range(top.shape[0] - 1, -1, -1):
        stack[sp] = top[i]
        sp += 1
    while sp > 0:
        sp -= 1
        e = stack[sp]
        if e < n_arcs:
            if n_out == cap:
                cap *= 2
                grown = np.empty(cap, np.int64)
                grown[:n_out] = out[:n_out]
                out = grown
            out[n_out] = e
            n_out += 1
        else:
            if sp + 2 > stack.shape[0]:
                grown_s = np.empty(2 * stack.shape[0], np.int64)
                grown_s[:sp] = stack[:sp]
                stack = grown_s
            stack[sp] = edge_c2[e]
            stack[sp + 1] = edge_c1[e]
            sp += 2
    return out[:n_out].copy(), first_node, last_node


@njit(cache=True, nogil=True)
def _upward_search(
    nodes,
    ws,
    ds,
    first,
    to,
    wt,
    dt,
    o_first,
    o_to,
    o_wt,
    o_dt,
    dist,
    dd,
    par,
    touched,
    h_node,
    h_key,
    h_pos,
    out_node,
    out_w,
    out_d,
):
    """Full upward search; writes settled (node, w, d) to out_*; returns count (state reset)."""
    nt, size = _seed(nodes, ws, ds, dist, dd, par, touched, h_node, h_key, h_pos)
    n_out = 0
    while size > 0:
        x, kx, size = pop_min(h_node, h_key, h_pos, size)
        dx = dd[x]
        if _stalled(x, kx, dx, dist, dd, o_first, o_to, o_wt, o_dt):
            continue
        out_node[n_out] = x
        out_w[n_out] = kx
        out_d[n_out] = dx
        n_out += 1
        for i in range(first[x], first[x + 1]):
            y = to[i]
            nw = kx + wt[i]
            nd = dx + dt[i]
            if _better(nw, nd, dist[y], dd[y]):
                if dist[y] == INF:
                    touched[nt] = y
                    nt += 1
                dist[y] = nw
                dd[y] = nd
                size = push_or_update(h_node, h_key, h_pos, size, y, nw)
    reset(dist, dd, par, touched, nt)
    return n_out


@njit(cache=True, nogil=True)
def table_query(
    s_first,
    s_nodes,
    s_w,
    s_d,
    t_first,
    t_nodes,
    t_w,
    t_d,
    fwd_first,
    fwd_to,
    fwd_w,
    fwd_d,
    bwd_first,
    bwd_to,
    bwd_w,
    bwd_d,
    dist,
    dd,
    par,
    touched,
    h_node,
    h_key,
    h_pos,
    res_w,
    res_d,
):
    """Many-to-many durations/distances into res_w/res_d (INF where unreachable)."""
    n = fwd_first.shape[0] - 1
    n_src = s_first.shape[0] - 1
    n_tgt = t_first.shape[0] - 1
    out_node = np.empty(n, np.int64)
    out_w = np.empty(n, np.int64)
    out_d = np.empty(n, np.int64)
    # backward searches fill buckets
    cap = max(1024, n_tgt * 256)
    b_node = np.empty(cap, np.int64)
    b_tgt = np.empty(cap, np.int64)
    b_w = np.empty(cap, np.int64)
    b_d = np.empty(cap, np.int64)
    nb = 0
    for t in range(n_tgt):
        lo = t_first[t]
        hi = t_first[t + 1]
        k = _upward_search(
            t_nodes[lo:hi],
            t_w[lo:hi],
            t_d[lo:hi],
            bwd_first,
            bwd_to,
            bwd_w,
            bwd_d,
            fwd_first,
            fwd_to,
            fwd_w,
            fwd_d,
            dist,
            dd,
            par,
            touched,
            h_node,
            h_key,
            h_pos,
            out_node,
            out_w,
            out_d,
        )
        if nb + k > cap:
            cap = max(2 * cap, nb + k)
            b_node2 = np.empty(cap, np.int64)
            b_tgt2 = np.empty(cap, np.int64)
            b_w2 = np.empty(cap, np.int64)
            b_d2 = np.empty(cap, np.int64)
            b_node2[:nb] = b_node[:nb]
            b_tgt2[:nb] = b_tgt[:nb]
            b_w2[:nb] = b_w[:nb]
            b_d2[:nb] = b_d[:nb]
            b_node, b_tgt, b_w, b_d = b_node2, b_tgt2, b_w2, b_d2
        for i in range(k):
            b_node[nb] = out_node[i]
            b_tgt[nb] = t
            b_w[nb] = out_w[i]
            b_d[nb] = out_d[i]
            nb += 1
    # counting sort of bucket entries by node
    b_first = np.zeros(n + 1, np.int64)
    for i in range(nb):
        b_first[b_node[i] + 1] += 1
    for v in range(n):
        b_first[v + 1] += b_first[v]
    fill = b_first[:-1].copy()
    e_tgt = np.empty(nb, np.int64)
    e_w = np.empty(nb, np.int64)
    e_d = np.empty(nb, np.int64)
    for i in range(nb):
        v = b_node[i]
        j = fill[v]
        fill[v] += 1
        e_tgt[j] = b_tgt[i]
        e_w[j] = b_w[i]
        e_d[j] = b_d[i]
    # forward searches scan buckets
    for s in range(n_src):
        lo = s_first[s]
        hi = s_first[s + 1]
        k = _upward_search(
            s_nodes[lo:hi],
            s_w[lo:hi],
            s_d[lo:hi],
            fwd_first,
            fwd_to,
            fwd_w,
            fwd_d,
            bwd_first,
            bwd_to,
            bwd_w,
            bwd_d,
            dist,
            dd,
            par,
            touched,
            h_node,
            h_key,
            h_pos,
            out_node,
            out_w,
            out_d,
        )
        for i in range(k):
            x = out_node[i]
            wx = out_w[i]
            dx = out_d[i]
            for j in range(b_first[x], b_first[x + 1]):
                t = e_tgt[j]
                nw = wx + e_w[j]
                nd = dx + e_d[j]
                if nw < res_w[s, t] or (nw == res_w[s, t] and nd < res_d[s, t]):
                    res_w[s, t] = nw
                    res_d[s, t] = nd
