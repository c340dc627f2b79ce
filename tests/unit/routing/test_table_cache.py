"""SemanticTableCache against a fake engine, a fake clock and an in-memory store."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Sequence

import h3
import numpy as np
import pytest

from hexcity.kernel import LatLng, haversine_m
from hexcity.routing.adapters.cache_stores import MemoryCellStore
from hexcity.routing.domain.cache_keys import CachedCell
from hexcity.routing.errors import InvalidOptions, InvalidValue, TooBig
from hexcity.routing.ports import CellStoreUnavailable
from hexcity.routing.table_cache import CacheFlightError, SemanticTableCache

# Points about 2 km apart around Heidelberg: never in equal or adjacent res-9 cells.
GRID = [LatLng(49.38 + 0.02 * r, 8.64 + 0.03 * c) for r in range(4) for c in range(4)]
ISLAND = LatLng(49.30, 8.40)  # the fake engine cannot reach it, nor leave it


class FakeClock:
    def __init__(self, now_s: float = 1_700_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


class FakeEngine:
    """Deterministic, directed: duration depends on which end is further north. Counts its work."""

    def __init__(self, clock: FakeClock | None = None, compute_s: float = 0.0, sleep_s: float = 0.0) -> None:
        self.calls = 0
        self.cells = 0
        self.offset_s = 0.0  # bump to tell refreshed values from cached ones
        self._clock = clock
        self._compute_s = compute_s
        self._sleep_s = sleep_s
        self._lock = threading.Lock()

    def __call__(
        self, sources: Sequence[LatLng], destinations: Sequence[LatLng]
    ) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            self.calls += 1
            self.cells += len(sources) * len(destinations)
        if self._sleep_s:
            time.sleep(self._sleep_s)
        if self._clock is not None:
            self._clock.now_s += self._compute_s
        durations = np.empty((len(sources), len(destinations)))
        distances = np.empty_like(durations)
        for i, s in enumerate(sources):
            for j, d in enumerate(destinations):
                durations[i, j], distances[i, j] = self.exact(s, d)
        return durations, distances

    def exact(self, s: LatLng, d: LatLng) -> tuple[float, float]:
        if (s == ISLAND) != (d == ISLAND):
            return math.nan, math.nan
        distance_m = haversine_m(s, d) * 1.3
        uphill_s = 60.0 if d.lat > s.lat else 0.0
        return distance_m / 10.0 + uphill_s + self.offset_s, distance_m


class SpyStore(MemoryCellStore):
    def __init__(self, max_entries: int, clock: FakeClock) -> None:
        super().__init__(max_entries, clock)
        self.get_calls = 0
        self.put_calls = 0

    def get_many(self, keys: Sequence[str]) -> list[CachedCell | None]:
        self.get_calls += 1
        return super().get_many(keys)

    def put_many(self, items: list[tuple[str, CachedCell]], ttl_s: float | None = None) -> None:
        self.put_calls += 1
        super().put_many(items, ttl_s)


class TinyU(random.Random):
    """An rng whose draw makes U = 1 - random() as small as possible: XFetch always wants to refresh."""

    def random(self) -> float:
        return 1.0 - 1e-12


class BigU(random.Random):
    """U = 1: XFetch never refreshes a live entry."""

    def random(self) -> float:
        return 0.0


def make(
    *,
    clock: FakeClock | None = None,
    engine: FakeEngine | None = None,
    store: SpyStore | None = None,
    graph_version: str = "v1",
    rng: random.Random | None = None,
    beta: float = 1.0,
) -> tuple[SemanticTableCache, FakeEngine, SpyStore, FakeClock]:
    clock = clock or FakeClock()
    engine = engine or FakeEngine()
    store = store or SpyStore(100_000, clock)
    cache = SemanticTableCache(engine, store, graph_version, "car", clock=clock, rng=rng or BigU(), beta=beta)
    return cache, engine, store, clock


def exact_matrix(engine: FakeEngine, sources: Sequence[LatLng], dests: Sequence[LatLng]) -> np.ndarray:
    return np.array([[engine.exact(s, d)[0] for d in dests] for s in sources])


def test_second_identical_request_is_all_hits_with_no_compute() -> None:
    cache, engine, _, _ = make()
    sources, dests = GRID[:8], GRID[8:]
    first = cache.table(sources, dests)
    assert (first.hits, first.misses, first.bypassed) == (0, 64, 0)
    assert engine.calls == 1
    np.testing.assert_array_equal(first.durations_s, exact_matrix(engine, sources, dests))

    second = cache.table(sources, dests)
    assert (second.hits, second.misses, second.bypassed, second.computed_cells) == (64, 0, 0, 0)
    assert engine.calls == 1
    np.testing.assert_array_equal(second.durations_s, first.durations_s)
    np.testing.assert_array_equal(second.distances_m, first.distances_m)
    assert cache.stats["hits"] == 64
    assert cache.stats["misses"] == 64
    assert cache.stats["engine_calls"] == 1
    assert cache.stats["requests"] == 2


def test_directed_pairs_get_different_values() -> None:
    cache, _, _, _ = make()
    south, north = GRID[0], GRID[15]
    result = cache.table([south, north], [south, north])
    assert result.durations_s[0, 0] == 0.0 and result.durations_s[1, 1] == 0.0  # diagonal bypasses
    assert result.durations_s[0, 1] == result.durations_s[1, 0] + 60.0
    warm = cache.table([south, north], [south, north])
    assert warm.durations_s[0, 1] == result.durations_s[0, 1]
    assert warm.durations_s[1, 0] == result.durations_s[1, 0]
    assert warm.hits == 2 and warm.bypassed == 2


def test_adjacent_cells_bypass_the_cache_and_are_exact() -> None:
    cache, engine, store, _ = make()
    origin = GRID[0]
    origin_cell = h3.latlng_to_cell(origin.lat, origin.lng, 9)
    neighbour = next(c for c in h3.grid_disk(origin_cell, 1) if c != origin_cell)
    near = LatLng(*h3.cell_to_latlng(neighbour))
    same_cell = LatLng(origin.lat + 0.0001, origin.lng)
    far = GRID[5]
    for _ in range(2):
        result = cache.table([origin], [near, same_cell, far])
        assert result.bypassed == 2
        np.testing.assert_array_equal(
            result.durations_s[0, :2], exact_matrix(engine, [origin], [near, same_cell])[0]
        )
    assert engine.calls == 2  # bypassed pairs are computed every time
    assert len(store) == 1  # only the far pair was cached
    assert cache.stats["bypassed"] == 4


def test_unroutable_pair_is_cached_negative_for_120_s_then_recomputed() -> None:
    cache, engine, _, clock = make()
    first = cache.table([GRID[0]], [ISLAND])
    assert math.isnan(first.durations_s[0, 0]) and math.isnan(first.distances_m[0, 0])
    assert engine.calls == 1

    clock.now_s += 119.0
    again = cache.table([GRID[0]], [ISLAND])
    assert math.isnan(again.durations_s[0, 0])
    assert (again.hits, again.negative_hits) == (1, 1)
    assert engine.calls == 1

    clock.now_s += 2.0  # 121 s after caching
    later = cache.table([GRID[0]], [ISLAND])
    assert (later.hits, later.misses) == (0, 1)
    assert engine.calls == 2
    assert cache.stats["negative_hits"] == 1


def test_positive_entries_live_for_ttl() -> None:
    cache, engine, _, clock = make()
    cache.table(GRID[:2], GRID[2:4])
    clock.now_s += 86_399.0
    assert cache.table(GRID[:2], GRID[2:4]).hits == 4
    clock.now_s += 2.0
    assert cache.table(GRID[:2], GRID[2:4]).misses == 4
    assert engine.calls == 2


def test_graph_version_bump_gives_zero_hits() -> None:
    clock = FakeClock()
    store = SpyStore(100_000, clock)
    old, _, _, _ = make(clock=clock, store=store, graph_version="v1")
    old.table(GRID[:4], GRID[4:])
    new, engine, _, _ = make(clock=clock, store=store, graph_version="v2")
    result = new.table(GRID[:4], GRID[4:])
    assert (result.hits, result.misses) == (0, 48)
    assert engine.calls == 1


def test_one_get_many_and_at_most_one_compute_per_request() -> None:
    cache, engine, store, _ = make()
    cache.table(GRID[:3], GRID[3:6])  # warm 9 pairs
    store.get_calls = store.put_calls = 0
    engine.calls = 0
    sources = [*GRID[:3], GRID[6], GRID[7], ISLAND]
    dests = [*GRID[3:6], GRID[8], GRID[6]]  # hits, misses, a bypassed diagonal, no-route pairs
    result = cache.table(sources, dests)
    assert store.get_calls == 1
    assert store.put_calls == 1
    assert engine.calls == 1
    assert result.hits == 9 and result.bypassed == 1
    assert result.hits + result.misses + result.bypassed == 30
    assert result.computed_cells <= 6 * 5
    expected = exact_matrix(engine, sources, dests)
    np.testing.assert_array_equal(result.durations_s, expected)

    store.get_calls = store.put_calls = engine.calls = 0
    warm = cache.table(sources, dests)
    assert (store.get_calls, store.put_calls, engine.calls) == (1, 0, 1)  # the diagonal still bypasses
    assert warm.computed_cells == 1


def test_points_sharing_cells_share_the_first_requesters_value() -> None:
    cache, engine, _, _ = make()
    origin, nudged = GRID[0], LatLng(GRID[0].lat + 0.0002, GRID[0].lng)
    assert h3.latlng_to_cell(*origin, 9) == h3.latlng_to_cell(*nudged, 9)
    cold = cache.table([origin, nudged], [GRID[10]])
    assert cold.durations_s[0, 0] == cold.durations_s[1, 0] == engine.exact(origin, GRID[10])[0]
    assert cold.computed_cells == 1  # one key, one computed cell
    warm = cache.table([nudged], [GRID[10]])
    assert warm.durations_s[0, 0] == engine.exact(origin, GRID[10])[0]


def test_heading_sector_separates_keys() -> None:
    cache, engine, _, _ = make()
    cache.table([GRID[0]], [GRID[9]], source_bearings_deg=[0.0])
    assert cache.table([GRID[0]], [GRID[9]], source_bearings_deg=[10.0]).hits == 1  # same octant
    assert cache.table([GRID[0]], [GRID[9]], source_bearings_deg=[180.0]).misses == 1
    assert cache.table([GRID[0]], [GRID[9]]).misses == 1  # static point
    assert engine.calls == 3


def test_xfetch_refreshes_near_expiry_but_serves_the_cached_value() -> None:
    clock = FakeClock()
    engine = FakeEngine(clock=clock, compute_s=1.0)  # δ = 1 s
    cache, _, store, _ = make(clock=clock, engine=engine, rng=TinyU())
    first = cache.table([GRID[0]], [GRID[9]])
    cached_value = first.durations_s[0, 0]

    clock.now_s += 10.0  # far from expiry: -1·ln(1e-12) = 27.6 s < remaining
    assert cache.table([GRID[0]], [GRID[9]]).xfetch_refreshes == 0
    assert engine.calls == 1

    clock.now_s += 86_400.0 - 10.0 - 1.0 - 20.0  # 19 s left (cached after the 1 s compute)
    engine.offset_s = 5.0  # the refreshed value differs
    refreshed = cache.table([GRID[0]], [GRID[9]])
    assert refreshed.xfetch_refreshes == 1
    assert refreshed.hits == 1
    assert engine.calls == 2
    assert refreshed.durations_s[0, 0] == cached_value  # served the cached value
    key = next(iter(store._entries))
    assert store.get_many([key])[0] == CachedCell(
        cached_value + 5.0, first.distances_m[0, 0], 1.0, clock.now_s, 86_400.0
    )
    assert cache.stats["xfetch_refreshes"] == 1

    later = cache.table([GRID[0]], [GRID[9]])  # new entry has a full TTL again: no refresh
    assert later.xfetch_refreshes == 0
    assert later.durations_s[0, 0] == cached_value + 5.0


def test_xfetch_off_with_beta_zero_and_with_u_one() -> None:
    for rng, beta in ((TinyU(), 0.0), (BigU(), 1.0)):
        clock = FakeClock()
        cache, engine, _, _ = make(clock=clock, engine=FakeEngine(clock, compute_s=1.0), rng=rng, beta=beta)
        cache.table([GRID[0]], [GRID[9]])
        clock.now_s += 86_400.0 - 2.0
        assert cache.table([GRID[0]], [GRID[9]]).xfetch_refreshes == 0
        assert engine.calls == 1


def test_lru_never_exceeds_max_entries_under_10000_distinct_keys() -> None:
    clock = FakeClock()
    store = MemoryCellStore(max_entries=500, clock=clock)
    cell = CachedCell(1.0, 1.0, 0.0, clock.now_s, 60.0)
    for start in range(0, 10_000, 100):
        store.put_many([(f"k{n}", cell) for n in range(start, start + 100)])
        assert len(store) <= 500
    assert len(store) == 500
    got = store.get_many(["k0", "k9499", "k9500", "k9999"])
    assert got == [None, None, cell, cell]


def test_lru_through_the_table_cache_stays_bounded() -> None:
    clock = FakeClock()
    store = SpyStore(max_entries=100, clock=clock)
    cache, _, _, _ = make(clock=clock, store=store)
    rng = random.Random(7)
    for _ in range(20):
        points = [LatLng(49.0 + rng.random(), 8.0 + rng.random()) for _ in range(25)]
        cache.table(points[:5], points[5:])
        assert len(store) <= 100


def test_lru_evicts_least_recently_used_and_expires() -> None:
    clock = FakeClock()
    store = MemoryCellStore(max_entries=2, clock=clock)
    cell = CachedCell(1.0, 1.0, 0.0, clock.now_s, 10.0)
    store.put_many([("a", cell), ("b", cell)])
    store.get_many(["a"])  # a becomes most recent
    store.put_many([("c", cell)])
    assert store.get_many(["a", "b", "c"]) == [cell, None, cell]
    clock.now_s += 10.0
    assert store.get_many(["a", "c"]) == [None, None]
    assert len(store) == 0
    with pytest.raises(ValueError):
        MemoryCellStore(max_entries=0)


def test_50_threads_on_one_cold_table_compute_once() -> None:
    engine = FakeEngine(sleep_s=0.05)
    cache, _, _, _ = make(engine=engine)
    barrier = threading.Barrier(50)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(cache.table(GRID[:4], GRID[4:12]).durations_s)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(results) == 50
    assert engine.calls == 1
    for durations in results:
        np.testing.assert_array_equal(durations, results[0])
    stats = cache.stats
    assert stats["hits"] + stats["misses"] == 50 * 32
    assert stats["engine_calls"] == 1
    assert stats["singleflight_coalesced"] > 0  # the others waited for the one computation


def test_waiters_fail_when_the_shared_computation_fails_and_the_flight_is_cleared() -> None:
    started = threading.Event()
    release = threading.Event()
    state = {"fail": True}
    good = FakeEngine()

    def engine(sources: Sequence[LatLng], dests: Sequence[LatLng]) -> tuple[np.ndarray, np.ndarray]:
        if state["fail"]:
            started.set()
            release.wait(5)
            raise RuntimeError("engine down")
        return good(sources, dests)

    cache = SemanticTableCache(engine, MemoryCellStore(100, FakeClock()), "v1", "car", clock=FakeClock())
    outcome: dict[str, BaseException] = {}

    def owner() -> None:
        try:
            cache.table([GRID[0]], [GRID[9]])
        except BaseException as exc:
            outcome["owner"] = exc

    def waiter() -> None:
        try:
            cache.table([GRID[0]], [GRID[9]])
        except BaseException as exc:
            outcome["waiter"] = exc

    t1 = threading.Thread(target=owner)
    t1.start()
    assert started.wait(5)
    t2 = threading.Thread(target=waiter)
    t2.start()
    time.sleep(0.05)
    release.set()
    t1.join(5)
    t2.join(5)
    assert isinstance(outcome["owner"], RuntimeError)
    assert isinstance(outcome["waiter"], CacheFlightError)
    state["fail"] = False
    assert cache.table([GRID[0]], [GRID[9]]).misses == 1  # nothing left in flight


def test_store_outage_reads_as_misses_and_still_answers() -> None:
    class DownStore:
        def get_many(self, keys: Sequence[str]) -> list[CachedCell | None]:
            raise CellStoreUnavailable("down")

        def put_many(self, items: list[tuple[str, CachedCell]], ttl_s: float | None = None) -> None:
            raise CellStoreUnavailable("down")

    engine = FakeEngine()
    cache = SemanticTableCache(engine, DownStore(), "v1", "car", clock=FakeClock())
    result = cache.table(GRID[:2], GRID[2:4])
    np.testing.assert_array_equal(result.durations_s, exact_matrix(engine, GRID[:2], GRID[2:4]))
    assert cache.stats["store_errors"] == 2


def test_empty_and_invalid_requests_do_no_work() -> None:
    cache, engine, store, _ = make()
    empty = cache.table([], GRID[:3])
    assert empty.durations_s.shape == (0, 3)
    with pytest.raises(InvalidValue):
        cache.table([LatLng(91.0, 0.0)], GRID[:1])
    with pytest.raises(InvalidOptions):
        cache.table(GRID[:2], GRID[2:3], source_bearings_deg=[0.0])
    with pytest.raises(InvalidValue):
        cache.table(GRID[:1], GRID[2:3], source_bearings_deg=[math.nan])
    small = SemanticTableCache(engine, store, "v1", "car", max_table_cells=4)
    with pytest.raises(TooBig):
        small.table(GRID[:3], GRID[3:5])
    assert (engine.calls, store.get_calls, store.put_calls) == (0, 0, 0)
    with pytest.raises(InvalidValue):
        SemanticTableCache(engine, store, "v:1", "car")
    with pytest.raises(InvalidValue):
        SemanticTableCache(engine, store, "v1", "car", resolution=16)
