"""Batched matching: exact optimum, brute-force oracle, forbidden edges, one-to-one, shard caps."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from hexcity.dispatch.domain.matching import (
    AdaptiveWindow,
    AdaptiveWindowParams,
    Driver,
    MatchParams,
    MatchStats,
    Rider,
    build_shards,
    greedy_match,
    match_batch,
    solve_assignment,
)
from hexcity.dispatch.errors import DispatchError
from hexcity.kernel import LatLng, haversine_m

# centre of the res-6 zone holding Heidelberg: points within ~1 km of it share that zone
CLAT, CLNG = h3.cell_to_latlng(h3.latlng_to_cell(49.41, 8.69, 6))
SPEED_MPS = 8.0


def haversine_eta(drivers: Sequence[LatLng], riders: Sequence[LatLng]) -> np.ndarray:
    return np.array(
        [[haversine_m(d, r) / SPEED_MPS for r in riders] for d in drivers], dtype=np.float64
    ).reshape(len(drivers), len(riders))


def vector_eta(drivers: Sequence[LatLng], riders: Sequence[LatLng]) -> np.ndarray:
    """The same haversine ETA, vectorised (for the larger property tests)."""
    d = np.radians(np.array(drivers, dtype=np.float64).reshape(-1, 2))
    r = np.radians(np.array(riders, dtype=np.float64).reshape(-1, 2))
    h = (
        np.sin((r[None, :, 0] - d[:, None, 0]) / 2) ** 2
        + np.cos(d[:, None, 0]) * np.cos(r[None, :, 0]) * np.sin((r[None, :, 1] - d[:, None, 1]) / 2) ** 2
    )
    out: np.ndarray = 2 * 6_371_008.8 * np.arcsin(np.minimum(1.0, np.sqrt(h))) / SPEED_MPS
    return out


def matrix_eta(riders: Sequence[Rider], drivers: Sequence[Driver], eta_rd: np.ndarray):  # type: ignore[no-untyped-def]
    """An ETA port that returns a fixed (rider, driver) matrix, looked up by position."""
    r_ix = {r.latlng: i for i, r in enumerate(riders)}
    d_ix = {d.latlng: j for j, d in enumerate(drivers)}

    def eta(ds: Sequence[LatLng], rs: Sequence[LatLng]) -> np.ndarray:
        out = np.empty((len(ds), len(rs)))
        for a, d in enumerate(ds):
            for b, r in enumerate(rs):
                out[a, b] = eta_rd[r_ix[r], d_ix[d]]
        return out

    return eta


def one_zone(n_riders: int, n_drivers: int) -> tuple[list[Rider], list[Driver]]:
    riders = [Rider(f"r{i}", CLAT + 0.0005 * i, CLNG) for i in range(n_riders)]
    drivers = [Driver(f"d{j}", CLAT, CLNG + 0.0005 * (j + 1)) for j in range(n_drivers)]
    assert len({r.zone for r in riders} | {d.zone for d in drivers}) == 1
    return riders, drivers


def random_fleet(
    rng: np.random.Generator, n_riders: int, n_drivers: int, span_deg: float = 0.08
) -> tuple[list[Rider], list[Driver]]:
    rl = rng.uniform(-span_deg, span_deg, size=(n_riders, 2))
    dl = rng.uniform(-span_deg, span_deg, size=(n_drivers, 2))
    riders = [Rider(f"r{i}", 49.41 + a, 8.69 + b) for i, (a, b) in enumerate(rl)]
    drivers = [
        Driver(f"d{j}", 49.41 + a, 8.69 + b, bearing_deg=float(rng.uniform(0, 360)))
        for j, (a, b) in enumerate(dl)
    ]
    return riders, drivers


NO_BEARING = MatchParams(w_bearing_s=0.0, max_pickup_eta_s=1000.0)


def test_hand_made_3x3_optimum_beats_greedy_exactly() -> None:
    riders, drivers = one_zone(3, 3)
    eta_rd = np.array([[100.0, 120.0, 500.0], [110.0, 600.0, 700.0], [900.0, 130.0, 140.0]])
    eta = matrix_eta(riders, drivers, eta_rd)
    best = match_batch(riders, drivers, eta, NO_BEARING)
    greedy = greedy_match(riders, drivers, eta, NO_BEARING)
    assert {(a.rider_id, a.driver_id) for a in best} == {("r0", "d1"), ("r1", "d0"), ("r2", "d2")}
    assert sum(a.eta_s for a in best) == 370.0
    assert [(a.rider_id, a.driver_id) for a in greedy] == [("r0", "d0"), ("r1", "d1"), ("r2", "d2")]
    assert sum(a.eta_s for a in greedy) == 840.0


def _brute_force(eta_rd: np.ndarray, max_eta: float) -> tuple[int, float]:
    """(max number of allowed pairs, min total ETA among those) over all injective maps."""
    n, m = eta_rd.shape
    allowed = np.isfinite(eta_rd) & (eta_rd <= max_eta)
    best = (0, 0.0)
    pairs_iter = (
        (list(zip(range(n), p, strict=True)) for p in itertools.permutations(range(m), n))
        if n <= m
        else (list(zip(p, range(m), strict=True)) for p in itertools.permutations(range(n), m))
    )
    for pairs in pairs_iter:
        ok = [(i, j) for i, j in pairs if allowed[i, j]]
        key = (len(ok), sum(float(eta_rd[i, j]) for i, j in ok))
        if key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
            best = key
    return best


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda n: st.integers(1, 7).flatmap(
            lambda m: st.lists(
                st.one_of(st.integers(0, 1000).map(float), st.just(math.nan), st.just(5000.0)),
                min_size=n * m,
                max_size=n * m,
            ).map(lambda v: np.array(v, dtype=np.float64).reshape(n, m))
        )
    )
)
def test_solver_equals_brute_force(eta_rd: np.ndarray) -> None:
    n, m = eta_rd.shape
    riders, drivers = one_zone(n, m)
    got = match_batch(riders, drivers, matrix_eta(riders, drivers, eta_rd), NO_BEARING)
    count, total = _brute_force(eta_rd, NO_BEARING.max_pickup_eta_s)
    assert len(got) == count
    assert sum(a.eta_s for a in got) == pytest.approx(total, abs=1e-9)
    assert all(math.isfinite(a.eta_s) and a.eta_s <= 1000.0 for a in got)


def test_solve_assignment_prefers_more_pairs_over_cheaper() -> None:
    cost = np.array([[1.0, 2.0], [1.0, 1e6]])
    allowed = np.array([[True, True], [True, False]])
    assert sorted(solve_assignment(cost, allowed)) == [(0, 1), (1, 0)]
    assert solve_assignment(cost, np.zeros((2, 2), dtype=bool)) == []


def test_forbidden_edges_never_assigned() -> None:
    riders, drivers = one_zone(3, 3)
    eta_rd = np.array([[math.nan, 700.0, 5.0], [1001.0, math.nan, 9.0], [math.nan, math.nan, 1.0]])
    got = match_batch(riders, drivers, matrix_eta(riders, drivers, eta_rd), NO_BEARING)
    # r1 and r2 only have d2 allowed, r0 has d1 and d2: optimum keeps 2 pairs
    assert {(a.rider_id, a.driver_id) for a in got} == {("r0", "d1"), ("r2", "d2")}
    rng = np.random.default_rng(7)
    riders, drivers = random_fleet(rng, 60, 90, span_deg=0.02)
    params = MatchParams(max_pickup_eta_s=300.0)
    for a in match_batch(riders, drivers, haversine_eta, params):
        assert a.eta_s <= 300.0


def test_one_to_one_on_200x400() -> None:
    rng = np.random.default_rng(42)
    riders, drivers = random_fleet(rng, 200, 400)
    stats = MatchStats()
    got = match_batch(riders, drivers, haversine_eta, MatchParams(), stats=stats)
    assert len({a.rider_id for a in got}) == len(got)
    assert len({a.driver_id for a in got}) == len(got)
    assert {a.rider_id for a in got} <= {r.id for r in riders}
    assert {a.driver_id for a in got} <= {d.id for d in drivers}
    assert len(got) >= 190  # 2 drivers per rider: nearly everyone is served
    assert stats.shards >= 2 and stats.max_shard_riders <= 50 and stats.max_shard_drivers <= 100


@pytest.mark.parametrize("rule", ["nearest_rider", "own_zone"])
def test_shard_caps_respected_and_driver_in_one_shard(rule: Literal["nearest_rider", "own_zone"]) -> None:
    rng = np.random.default_rng(3)
    riders, drivers = random_fleet(rng, 300, 700, span_deg=0.01)  # a few zones, crowded
    shards = build_shards(riders, drivers, MatchParams(lock_rule=rule))
    assert all(len(s.riders) <= 50 and len(s.drivers) <= 100 for s in shards)
    seen_riders = [r.id for s in shards for r in s.riders]
    seen_drivers = [d.id for s in shards for d in s.drivers]
    assert sorted(seen_riders) == sorted(r.id for r in riders)
    assert len(seen_drivers) == len(set(seen_drivers))
    assert all(r.zone == s.zone for s in shards for r in s.riders)
    for s in shards:
        ring = set(h3.grid_disk(s.zone, 1))
        assert all(d.zone in ring for d in s.drivers)
        assert all(len(c) <= 30 and all(0 <= j < len(s.drivers) for j in c) for c in s.candidates)
    # deterministic
    again = build_shards(riders, drivers, MatchParams(lock_rule=rule))
    assert [(s.zone, [r.id for r in s.riders], [d.id for d in s.drivers]) for s in again] == [
        (s.zone, [r.id for r in s.riders], [d.id for d in s.drivers]) for s in shards
    ]
    got = match_batch(
        riders, drivers, haversine_eta, MatchParams(max_riders_per_shard=20, max_drivers_per_shard=25)
    )
    assert len({a.driver_id for a in got}) == len(got)


def test_small_caps_split_one_zone() -> None:
    riders, drivers = one_zone(7, 9)
    shards = build_shards(riders, drivers, MatchParams(max_riders_per_shard=3, max_drivers_per_shard=2))
    assert [len(s.riders) for s in shards] == [3, 2, 2]
    assert all(len(s.drivers) <= 2 for s in shards)


def test_batch_never_worse_than_greedy_in_one_zone() -> None:
    rng = np.random.default_rng(11)
    for _ in range(5):
        lat = rng.uniform(-0.01, 0.01, size=(45, 2))
        riders = [Rider(f"r{i}", CLAT + a, CLNG + b) for i, (a, b) in enumerate(lat[:15])]
        drivers = [Driver(f"d{j}", CLAT + a, CLNG + b) for j, (a, b) in enumerate(lat[15:])]
        p = MatchParams(w_bearing_s=0.0)
        best = match_batch(riders, drivers, haversine_eta, p)
        greedy = greedy_match(riders, drivers, haversine_eta, p)
        assert len(best) >= len(greedy)
        if len(best) == len(greedy):
            assert sum(a.cost for a in best) <= sum(a.cost for a in greedy) + 1e-9


def test_bearing_mismatch_breaks_a_tie() -> None:
    rider = Rider("r", CLAT, CLNG)
    east = Driver("toward", CLAT, CLNG + 0.002, bearing_deg=270.0)  # east of rider, heading west
    west = Driver("away", CLAT, CLNG - 0.002, bearing_deg=270.0)  # west of rider, heading west
    got = match_batch([rider], [west, east], haversine_eta, MatchParams())
    assert [a.driver_id for a in got] == ["toward"]


def test_invalid_inputs_raise() -> None:
    riders, drivers = one_zone(2, 2)
    with pytest.raises(DispatchError):
        match_batch([riders[0], riders[0]], drivers, haversine_eta)
    with pytest.raises(DispatchError):
        match_batch(riders, drivers, lambda d, r: np.zeros((1, 1)))
    with pytest.raises(DispatchError):
        Rider("x", 91.0, 0.0)
    assert match_batch([], drivers, haversine_eta) == []


def test_adaptive_window_ewma_and_clamp() -> None:
    w = AdaptiveWindow()
    assert w.window_s() == 5.0
    w.observe(10, 1.0)
    assert w.rate_per_s == 10.0
    assert w.window_s() == 3.0
    w.observe(20, 1.0)
    assert w.rate_per_s == pytest.approx(0.2 * 20 + 0.8 * 10, abs=1e-12)  # 12 /s
    assert w.window_s() == pytest.approx(2.5, abs=1e-12)
    w.observe(1000, 1.0)
    assert w.window_s() == 2.0
    slow = AdaptiveWindow(AdaptiveWindowParams(k_target=30.0))
    slow.observe(1, 1.0)
    assert slow.window_s() == 5.0


def _full_optimum(cost_rd: np.ndarray) -> float:
    rows, cols = linear_sum_assignment(cost_rd)
    return float(cost_rd[rows, cols].sum())


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda n: st.integers(1, 20).flatmap(
            lambda m: st.lists(st.integers(0, 900).map(float), min_size=n * m, max_size=n * m).map(
                lambda v: np.array(v, dtype=np.float64).reshape(n, m)
            )
        )
    )
)
def test_one_shard_equals_scipy_optimum_and_never_above_greedy(eta_rd: np.ndarray) -> None:
    """Every edge allowed, one zone, one shard: the batch is the SciPy optimum of the same matrix."""
    n, m = eta_rd.shape
    riders, drivers = one_zone(n, m)
    eta = matrix_eta(riders, drivers, eta_rd)
    got = match_batch(riders, drivers, eta, NO_BEARING)
    greedy = greedy_match(riders, drivers, eta, NO_BEARING)
    assert len(got) == len(greedy) == min(n, m)
    assert sum(a.eta_s for a in got) == pytest.approx(_full_optimum(eta_rd), abs=1e-9)
    assert sum(a.eta_s for a in got) <= sum(a.eta_s for a in greedy) + 1e-9


def test_one_shard_with_bearing_equals_scipy_optimum_of_cost() -> None:
    """With the default cost (bearing term), the batch minimises that cost, not the ETA alone."""
    rng = np.random.default_rng(21)
    for _ in range(10):
        pts = rng.uniform(-0.008, 0.008, size=(30, 2))
        riders = [Rider(f"r{i}", CLAT + a, CLNG + b) for i, (a, b) in enumerate(pts[:10])]
        drivers = [
            Driver(f"d{j}", CLAT + a, CLNG + b, bearing_deg=float(rng.uniform(0, 360)))
            for j, (a, b) in enumerate(pts[10:])
        ]
        assert len({r.zone for r in riders} | {d.zone for d in drivers}) == 1
        params = MatchParams(max_pickup_eta_s=10_000.0)
        got = match_batch(riders, drivers, haversine_eta, params)
        greedy = greedy_match(riders, drivers, haversine_eta, params)
        eta_rd = haversine_eta([d.latlng for d in drivers], [r.latlng for r in riders]).T
        brg = np.array(
            [
                [
                    math.degrees(
                        math.atan2(
                            math.sin(math.radians(r.lng - d.lng)) * math.cos(math.radians(r.lat)),
                            math.cos(math.radians(d.lat)) * math.sin(math.radians(r.lat))
                            - math.sin(math.radians(d.lat))
                            * math.cos(math.radians(r.lat))
                            * math.cos(math.radians(r.lng - d.lng)),
                        )
                    )
                    for d in drivers
                ]
                for r in riders
            ]
        )
        heading = np.array([d.bearing_deg for d in drivers], dtype=np.float64)
        cost_rd = eta_rd + 60.0 * (1.0 - np.cos(np.radians(brg - heading[None, :]))) / 2.0
        assert len(got) == 10
        assert sum(a.cost for a in got) == pytest.approx(_full_optimum(cost_rd), abs=1e-6)
        assert sum(a.cost for a in got) <= sum(a.cost for a in greedy) + 1e-9


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 120),
    st.integers(1, 200),
    st.sampled_from([0.005, 0.03, 0.1]),
    st.sampled_from(["nearest_rider", "own_zone"]),
    st.integers(1, 30),
    st.integers(1, 40),
)
def test_no_driver_twice_across_shards(
    seed: int, n: int, m: int, span: float, rule: Literal["nearest_rider", "own_zone"], cap_r: int, cap_d: int
) -> None:
    rng = np.random.default_rng(seed)
    riders, drivers = random_fleet(rng, n, m, span_deg=span)
    params = MatchParams(lock_rule=rule, max_riders_per_shard=cap_r, max_drivers_per_shard=cap_d)
    shards = build_shards(riders, drivers, params)
    in_shards = [d.id for s in shards for d in s.drivers]
    assert len(in_shards) == len(set(in_shards))
    assert sorted(r.id for s in shards for r in s.riders) == sorted(r.id for r in riders)
    assert all(len(s.riders) <= cap_r and len(s.drivers) <= cap_d for s in shards)
    allowed_pairs = {
        (s.riders[i].id, s.drivers[j].id) for s in shards for i, c in enumerate(s.candidates) for j in c
    }
    got = match_batch(riders, drivers, vector_eta, params)
    assert len({a.driver_id for a in got}) == len(got)
    assert len({a.rider_id for a in got}) == len(got)
    assert all((a.rider_id, a.driver_id) in allowed_pairs and a.eta_s <= 600.0 for a in got)


def test_allowed_drivers_restricts_a_listed_rider_only() -> None:
    riders = [Rider("r1", 49.4100, 8.6900), Rider("r2", 49.4300, 8.6900)]
    drivers = [Driver("near", 49.4101, 8.6900), Driver("far", 49.4150, 8.6900), Driver("d3", 49.4301, 8.6900)]
    free = {(a.rider_id, a.driver_id) for a in match_batch(riders, drivers, haversine_eta)}
    assert free == {("r1", "near"), ("r2", "d3")}
    # r1 declined "near" earlier: it gets "far"; r2 is not listed, so it is not restricted
    held = match_batch(riders, drivers, haversine_eta, allowed_drivers={"r1": {"far", "d3"}})
    assert {(a.rider_id, a.driver_id) for a in held} == {("r1", "far"), ("r2", "d3")}
    assert match_batch(riders, drivers, haversine_eta, allowed_drivers={"r1": set(), "r2": set()}) == []
