"""Queries on coordinates (snapping + phantom nodes) on the real Andorra graphs."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import LineString, Point

from hexcity.kernel import LatLng, haversine_m
from hexcity.routing import NoSegment, RoutingEngine, TooBig
from hexcity.routing.domain.contraction import INF
from hexcity.routing.domain.dijkstra import one_to_all, out_csr
from hexcity.routing.domain.phantom import same_chain_cost
from hexcity.routing.errors import InvalidValue

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def car(graph_dir: Callable[[str, str], Path]) -> RoutingEngine:
    return RoutingEngine.open(graph_dir("andorra", "car"))


def random_points(engine: RoutingEngine, n: int, seed: int) -> list[LatLng]:
    """Points up to ~200 m off the road network, around random graph nodes."""
    net = engine.engine.network
    rng = np.random.default_rng(seed)
    idx = rng.choice(net.n_nodes, n, replace=False)
    jitter = rng.uniform(-0.002, 0.002, size=(n, 2))
    return [
        LatLng(float(net.node_lat[i] + dy), float(net.node_lon[i] + dx))
        for i, (dx, dy) in zip(idx, jitter, strict=True)
    ]


def test_snap_is_on_a_road_segment_not_just_a_node(car: RoutingEngine) -> None:
    net = car.engine.network
    lat, lon = np.radians(np.asarray(net.geom_lat)), np.radians(np.asarray(net.geom_lon))
    between_vertices = 0
    for p in random_points(car, 200, seed=1):
        snap = car.snap(p)
        lo, hi = int(net.geom_offset[snap.chain]), int(net.geom_offset[snap.chain + 1])
        line = LineString(np.column_stack([net.geom_lon[lo:hi], net.geom_lat[lo:hi]]))
        assert line.distance(Point(snap.location.lng, snap.location.lat)) < 1e-9
        # never farther than the closest road vertex (haversine to every vertex of the network)
        h = (
            np.sin((lat - np.radians(p.lat)) / 2) ** 2
            + np.cos(lat) * np.cos(np.radians(p.lat)) * np.sin((lon - np.radians(p.lng)) / 2) ** 2
        )
        closest_vertex_m = float(2 * 6_371_008.8 * np.arcsin(np.sqrt(h.min())))
        assert snap.distance_m <= closest_vertex_m + 0.05
        if 0.01 < snap.fraction < 0.99:
            between_vertices += 1
    assert between_vertices > 50  # most snaps land between vertices, on the segment itself


def test_nearest_k_is_sorted_and_distinct(car: RoutingEngine) -> None:
    snaps = car.nearest(LatLng(42.5063, 1.5211), number=5)
    assert len(snaps) == 5
    assert [s.distance_m for s in snaps] == sorted(s.distance_m for s in snaps)
    assert len({s.chain for s in snaps}) == 5
    assert snaps[0] == car.snap(LatLng(42.5063, 1.5211))


def test_routes_on_coordinates_equal_dijkstra_from_the_phantoms(car: RoutingEngine) -> None:
    engine = car.engine
    net = engine.network
    first, to, w, d = out_csr(net.n_nodes, net.arc_tail, net.arc_head, net.arc_weight_ms, net.arc_dist_cm)
    points = random_points(car, 40, seed=2)
    snaps = [car.snap(p) for p in points]
    phantoms = [engine.phantom(s) for s in snaps]
    table = engine.table(snaps, snaps)
    for i, src in enumerate(phantoms):
        seeds = np.array(src.source_seeds(), dtype=np.int64)
        dist_w, dist_d = one_to_all(first, to, w, d, seeds[:, 0], seeds[:, 1], seeds[:, 2])
        for j, dst in enumerate(phantoms):
            best = (int(INF), int(INF))
            for node, tw, td in dst.target_seeds():
                if dist_w[node] < INF:
                    best = min(best, (int(dist_w[node]) + tw, int(dist_d[node]) + td))
            direct = same_chain_cost(src, dst)
            if direct is not None:
                best = min(best, direct)
            assert table.durations_s[i, j] == best[0] / 1000.0
            assert table.distances_m[i, j] == best[1] / 100.0
            if j % 8 == 0:
                route = car.route([points[i], points[j]])
                assert (route.duration_s, route.distance_m) == (best[0] / 1000.0, best[1] / 100.0)


def test_route_geometry_starts_and_ends_at_the_snapped_points(car: RoutingEngine) -> None:
    a, b = LatLng(42.5063, 1.5211), LatLng(42.5345, 1.5806)
    route = car.route([a, b])
    assert tuple(route.geometry[0]) == route.waypoints[0].location
    assert tuple(route.geometry[-1]) == route.waypoints[1].location
    points = [LatLng(float(lat), float(lng)) for lat, lng in route.geometry]
    length_m = sum(haversine_m(p, q) for p, q in itertools.pairwise(points))
    assert length_m == pytest.approx(route.distance_m, rel=0.01)
    assert car.route([a, b], geometry=False).geometry.shape == (0, 2)


def test_limits_and_bad_points_do_no_work(car: RoutingEngine) -> None:
    with pytest.raises(NoSegment):
        car.snap(LatLng(0.0, 0.0))
    with pytest.raises(InvalidValue):
        car.route([LatLng(float("nan"), 1.5), LatLng(42.5, 1.5)])
    with pytest.raises(InvalidValue):
        car.route([LatLng(42.5, 1.5)])
    with pytest.raises(InvalidValue):
        car.table([])
    small = RoutingEngine(car._p, car.limits.__class__(max_table_size=2))
    with pytest.raises(TooBig):
        small.table([LatLng(42.5063, 1.5211)] * 3)


def test_bulk_seeds_equal_per_point_phantom_seeds(car: RoutingEngine) -> None:
    from hexcity.routing.domain.phantom import bulk_seeds, seeds_csr

    engine = car.engine
    snaps = [car.snap(p) for p in random_points(car, 300, seed=3)]
    for as_source in (True, False):
        bulk = bulk_seeds(engine.network, engine.chain_arcs, snaps, as_source=as_source)
        single = seeds_csr([engine.phantom(s) for s in snaps], as_source=as_source)
        for got, expected in zip(bulk, single, strict=True):
            np.testing.assert_array_equal(got, expected)


def test_nearest_k_equals_brute_force_over_every_segment(car: RoutingEngine) -> None:
    index = car.engine.snap_index
    net = car.engine.network
    starts = index._seg_start
    chains = index._seg_chain
    xs, ys = index._x, index._y
    for p in random_points(car, 25, seed=4):
        px, py = p.lng * index._kx, p.lat * index._ky
        ax, ay = xs[starts], ys[starts]
        dx, dy = xs[starts + 1] - ax, ys[starts + 1] - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0, 1)
        dist = np.hypot(ax + t * dx - px, ay + t * dy - py)
        per_chain = np.full(net.n_chains, np.inf)
        np.minimum.at(per_chain, chains, dist)
        expected = np.argsort(per_chain, kind="stable")[:5].tolist()  # ties: lower chain id first
        got = [s.chain for s in car.nearest(p, number=5)]
        assert sorted(got) == sorted(expected)


def test_busy_workspaces_answer_overloaded_not_a_hang(graph_dir: Callable[[str, str], Path]) -> None:
    from hexcity.routing.errors import Overloaded

    engine = RoutingEngine.open(graph_dir("andorra", "car"), workers=1, queue_timeout_s=0.2)
    points = [LatLng(42.5063, 1.5211), LatLng(42.5116, 1.5394)]
    # the only workspace is taken by another query
    with engine.engine._workspace(), pytest.raises(Overloaded) as info:
        engine.table(points)
    assert (info.value.code, info.value.status) == ("Overloaded", 429)
    assert engine.table(points).durations_s.shape == (2, 2)  # free again: served
