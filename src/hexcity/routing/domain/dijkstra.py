"""Plain lexicographic Dijkstra on the arc graph: the exactness oracle and the isochrone search.

Dijkstra, "A note on two problems in connexion with graphs" (1959). Costs are
(duration_ms, distance_cm) integer pairs compared lexicographically, like the hierarchy's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from hexcity.routing.domain.contraction import INF
from hexcity.routing.domain.heap import new_heap, pop_min, push_or_update

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
ForwardGraph = tuple[I64, I64, I64, I64]  # CSR: first, to, weight_ms, dist_cm


def out_csr(n_nodes: int, tail: I32, head: I32, weight_ms: I32, dist_cm: I32) -> ForwardGraph:
    """Forward CSR (first, to, weight, dist) of an arc list."""
    order = np.argsort(tail, kind="stable")
    first = np.zeros(n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(tail, minlength=n_nodes), out=first[1:])
    return (
        first,
        head[order].astype(np.int64),
        weight_ms[order].astype(np.int64),
        dist_cm[order].astype(np.int64),
    )


def one_to_all(
    first: I64, to: I64, weight: I64, dist: I64, seed_nodes: I64, seed_w: I64, seed_d: I64, max_w: int = -1
) -> tuple[I64, I64]:
    """Lexicographic shortest (duration, distance) from the seeds to every node.

    ``max_w`` >= 0 stops the search past that duration (nodes beyond keep INF).
    Returns (duration_ms, distance_cm) arrays with INF for unreached nodes.
    """
    n = first.shape[0] - 1
    h_node, h_key, h_pos = new_heap(n)
    out_w = np.full(n, INF, np.int64)
    out_d = np.full(n, INF, np.int64)
    _dijkstra(first, to, weight, dist, seed_nodes, seed_w, seed_d, max_w, out_w, out_d, h_node, h_key, h_pos)
    return out_w, out_d


@njit(cache=True, nogil=True)
def _dijkstra(first, to, weight, dist, seed_nodes, seed_w, seed_d, max_w, out_w, out_d, h_node, h_key, h_pos):
    size = 0
    for i in range(seed_nodes.shape[0]):
        v = seed_nodes[i]
        if seed_w[i] < out_w[v] or (seed_w[i] == out_w[v] and seed_d[i] < out_d[v]):
            out_w[v] = seed_w[i]
            out_d[v] = seed_d[i]
            size = push_or_update(h_node, h_key, h_pos, size, v, seed_w[i])
    while size > 0:
        x, kx, size = pop_min(h_node, h_key, h_pos, size)
        if max_w >= 0 and kx > max_w:
            break
        dx = out_d[x]
        for i in range(first[x], first[x + 1]):
            y = to[i]
            nw = kx + weight[i]
            nd = dx + dist[i]
            if nw < out_w[y] or (nw == out_w[y] and nd < out_d[y]):
                out_w[y] = nw
                out_d[y] = nd
                size = push_or_update(h_node, h_key, h_pos, size, y, nw)
