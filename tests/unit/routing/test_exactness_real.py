"""On the real Andorra and Heidelberg graphs, CH answers equal plain Dijkstra (scipy) exactly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from hexcity.routing import RoutingEngine
from hexcity.routing.domain.ch_query import Workspace, clear_route, search_route, search_table
from hexcity.routing.domain.contraction import INF
from hexcity.routing.domain.dijkstra import one_to_all, out_csr

pytestmark = pytest.mark.slow

CASES = [(e, p) for e in ("andorra", "heidelberg") for p in ("car", "bike", "foot")]
N_SOURCES = 100
N_TARGETS = 100  # 100 x 100 = 10,000 pairs per graph


@pytest.mark.parametrize(("extract", "profile"), CASES)
def test_ch_equals_dijkstra_on_10000_pairs(
    graph_dir: Callable[[str, str], Path], extract: str, profile: str
) -> None:
    engine = RoutingEngine.open(graph_dir(extract, profile))
    net, q = engine.engine.network, engine.engine.query
    n = net.n_nodes
    rng = np.random.default_rng(7)
    sources = rng.choice(n, N_SOURCES, replace=False).astype(np.int64)
    targets = rng.choice(n, N_TARGETS, replace=False).astype(np.int64)

    # oracle 1: scipy's Dijkstra on durations (independent of our code); parallel arcs keep the minimum
    tails, heads, weights = np.asarray(net.arc_tail), np.asarray(net.arc_head), np.asarray(net.arc_weight_ms)
    best: dict[tuple[int, int], int] = {}
    for t, h, w in zip(tails.tolist(), heads.tolist(), weights.tolist(), strict=True):
        if best.get((t, h), 1 << 62) > w:
            best[(t, h)] = w
    keys = np.array(list(best.keys()), dtype=np.int64)
    matrix = csr_matrix(
        (np.array(list(best.values()), dtype=np.float64), (keys[:, 0], keys[:, 1])), shape=(n, n)
    )
    expected_w = dijkstra(matrix, directed=True, indices=sources)[:, targets]

    # the hierarchy, many-to-many
    zero_s = np.zeros(N_SOURCES, np.int64)
    zero_t = np.zeros(N_TARGETS, np.int64)
    res_w = np.full((N_SOURCES, N_TARGETS), INF, np.int64)
    res_d = np.full((N_SOURCES, N_TARGETS), INF, np.int64)
    ws = Workspace(n)
    sources_csr = (np.arange(N_SOURCES + 1), sources, zero_s, zero_s)
    targets_csr = (np.arange(N_TARGETS + 1), targets, zero_t, zero_t)
    search_table(q, ws, sources_csr, targets_csr, res_w, res_d)
    got_w = np.where(res_w >= INF, np.inf, res_w.astype(np.float64))
    np.testing.assert_array_equal(got_w, expected_w)
    # the graph is one strongly connected component: every pair is reachable
    assert np.isfinite(expected_w).all()

    # oracle 2: lexicographic (duration, distance) Dijkstra for distances
    first, to, w64, d64 = out_csr(n, net.arc_tail, net.arc_head, net.arc_weight_ms, net.arc_dist_cm)
    for i in range(0, N_SOURCES, 10):
        exp_w, exp_d = one_to_all(first, to, w64, d64, sources[i : i + 1], zero_s[:1], zero_s[:1])
        np.testing.assert_array_equal(res_w[i], exp_w[targets])
        np.testing.assert_array_equal(res_d[i], exp_d[targets])

    # point-to-point queries agree with the table
    one = np.zeros(1, np.int64)
    for i in range(0, N_SOURCES, 5):
        for j in range(0, N_TARGETS, 10):
            bw, bd, _meet, ntf, ntb = search_route(
                q, ws, sources[i : i + 1], one, one, targets[j : j + 1], one, one
            )
            clear_route(ws, ntf, ntb)
            assert (bw, bd) == (res_w[i, j], res_d[i, j])
