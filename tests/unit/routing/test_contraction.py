"""Contraction hierarchies are exact: every query equals a plain Dijkstra on the same graph."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hexcity.routing.domain.ch_query import (
    Workspace,
    build_query_graph,
    clear_route,
    path_arcs,
    search_route,
    search_table,
)
from hexcity.routing.domain.contraction import INF, contract
from hexcity.routing.domain.dijkstra import one_to_all, out_csr


@st.composite
def graphs(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(min_value=1, max_value=30))
    m = draw(st.integers(min_value=0, max_value=4 * n))
    arcs = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.integers(1, 9), st.integers(0, 9)),
            min_size=m,
            max_size=m,
        )
    )
    arcs = [a for a in arcs if a[0] != a[1]]
    cols = np.array(arcs, dtype=np.int64).reshape(-1, 4)
    return (
        n,
        cols[:, 0].astype(np.int32),
        cols[:, 1].astype(np.int32),
        cols[:, 2].astype(np.int32),
        cols[:, 3].astype(np.int32),
    )


def _route(q, ws, s: int, t: int) -> tuple[int, int, int, int, int]:  # type: ignore[no-untyped-def]
    one = np.array([0], dtype=np.int64)
    return search_route(q, ws, np.array([s]), one, one, np.array([t]), one, one)


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_route_and_table_equal_dijkstra_on_random_graphs(g) -> None:  # type: ignore[no-untyped-def]
    n, tail, head, weight, dist = g
    h = contract(n, tail, head, weight, dist)
    q = build_query_graph(h, n, tail.size)
    ws = Workspace(n)
    first, to, w64, d64 = out_csr(n, tail, head, weight, dist)
    zero = np.zeros(n, dtype=np.int64)
    every = np.arange(n, dtype=np.int64)
    csr = np.arange(n + 1, dtype=np.int64)
    res_w = np.full((n, n), INF, dtype=np.int64)
    res_d = np.full((n, n), INF, dtype=np.int64)
    search_table(q, ws, (csr, every, zero, zero), (csr, every, zero, zero), res_w, res_d)
    for s in range(n):
        exp_w, exp_d = one_to_all(first, to, w64, d64, np.array([s]), np.array([0]), np.array([0]))
        np.testing.assert_array_equal(res_w[s], exp_w)
        np.testing.assert_array_equal(res_d[s], exp_d)
        for t in range(n):
            bw, bd, meet, ntf, ntb = _route(q, ws, s, t)
            assert (bw, bd) == (exp_w[t], exp_d[t])
            if meet >= 0:
                arcs, a, b = path_arcs(q, ws, meet)
                assert (a, b) == (s, t)
                assert int(weight[arcs].sum()) == bw and int(dist[arcs].sum()) == bd
                assert (head[arcs[:-1]] == tail[arcs[1:]]).all()
            clear_route(ws, ntf, ntb)
    # the workspace is clean again after every query
    assert (ws.dist_f == INF).all() and (ws.dist_b == INF).all() and (ws.hf_pos == -1).all()


def test_one_way_pair_is_directed() -> None:
    # 0 -> 1 costs 5; 1 -> 0 must go around through 2 (7 + 3)
    tail = np.array([0, 1, 2], dtype=np.int32)
    head = np.array([1, 2, 0], dtype=np.int32)
    weight = np.array([5, 7, 3], dtype=np.int32)
    dist = np.array([50, 70, 30], dtype=np.int32)
    q = build_query_graph(contract(3, tail, head, weight, dist), 3, 3)
    ws = Workspace(3)
    assert _route(q, ws, 0, 1)[:2] == (5, 50)
    ws2 = Workspace(3)
    assert _route(q, ws2, 1, 0)[:2] == (10, 100)


def test_ties_on_duration_are_broken_by_distance() -> None:
    # two paths 0->3 of duration 4: via 1 (distance 10) and via 2 (distance 6)
    tail = np.array([0, 1, 0, 2], dtype=np.int32)
    head = np.array([1, 3, 2, 3], dtype=np.int32)
    weight = np.array([2, 2, 2, 2], dtype=np.int32)
    dist = np.array([5, 5, 3, 3], dtype=np.int32)
    q = build_query_graph(contract(4, tail, head, weight, dist), 4, 4)
    assert _route(q, Workspace(4), 0, 3)[:2] == (4, 6)


def test_rejects_zero_weights() -> None:
    import pytest

    with pytest.raises(ValueError, match=">= 1"):
        contract(
            2,
            np.array([0], np.int32),
            np.array([1], np.int32),
            np.array([0], np.int32),
            np.array([1], np.int32),
        )
