"""IngestService: partitioned bounded intake into the driver index (dispatch.md §2.3)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hexcity.dispatch.adapters.index_memory import InMemoryDriverIndex
from hexcity.dispatch.domain.index import IndexParams, InvalidIndexInput, NearbyDriver
from hexcity.dispatch.domain.pings import Ping, PingOutcome, PingPipeline
from hexcity.dispatch.ingest import (
    COUNTED,
    DROPPED,
    ERROR,
    INVALID,
    LOCATION_TOPIC,
    DriverState,
    IngestCapacityError,
    IngestService,
    RoutingSnapper,
    fnv1a_32,
    partition_of,
)
from hexcity.dispatch.settings import IngestSettings
from hexcity.infra.bus import Delivery, InProcessBus
from hexcity.kernel import LatLng, haversine_m
from hexcity.routing import NoSegment, RoutingEngine

LAT, LNG = 49.4094, 8.6937  # Heidelberg
T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ping(
    driver: str, i: int, *, status: str = "online", lat: float | None = None, dlat: float = 1e-4
) -> Ping:
    """The i-th ping of a driver moving north 11 m per second."""
    return Ping(
        driver_id=driver,
        seq=i,
        timestamp_s=T0 + i,
        lat=(LAT + i * dlat) if lat is None else lat,
        lng=LNG,
        accuracy_m=5.0,
        status=status,
    )


def make(
    *,
    index: Any = None,
    pipeline: PingPipeline | None = None,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    **settings: Any,
) -> tuple[IngestService, Any, Clock, CollectorRegistry]:
    clock = clock or Clock()
    registry = registry or CollectorRegistry()
    index = index if index is not None else InMemoryDriverIndex()
    base: dict[str, Any] = {"partitions": 2, "queue_size": 100, "expire_interval_s": 3600.0}
    base.update(settings)
    service = IngestService(
        PingPipeline() if pipeline is None else pipeline,
        index,
        settings=IngestSettings(**base),
        registry=registry,
        clock=clock,
        **({"snapper": settings.pop("snapper")} if "snapper" in settings else {}),
    )
    return service, index, clock, registry


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


def sample(registry: CollectorRegistry, verdict: str) -> float:
    value = registry.get_sample_value("dispatch_pings_total", {"verdict": verdict})
    return 0.0 if value is None else value


async def near(index: Any, statuses: Collection[str] = frozenset({"online"})) -> list[NearbyDriver]:
    result: list[NearbyDriver] = await index.nearby(LAT, LNG, 3000.0, limit=100, statuses=statuses)
    return result


# -- partitioning -------------------------------------------------------------------------------------


def test_fnv1a_32_reference_vectors() -> None:
    # FNV-1a 32-bit test vectors (draft-eastlake-fnv, Fowler/Noll/Vo reference code)
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


def test_partition_is_stable_and_spread() -> None:
    assert partition_of("foobar", 7) == 0xBF9CF968 % 7
    ids = [f"driver-{i}" for i in range(4000)]
    first = [partition_of(d, 4) for d in ids]
    assert first == [partition_of(d, 4) for d in ids]  # same answer every time (no PYTHONHASHSEED)
    sizes = [first.count(p) for p in range(4)]
    assert min(sizes) > 850 and max(sizes) < 1150  # ~1000 each


def test_a_driver_always_lands_in_the_same_queue() -> None:
    async def scenario() -> None:
        service, _, _, _ = make(partitions=8, queue_size=1000)
        async with service:
            for i in range(20):
                assert service.submit(ping("d42", i))
            depths = service.queue_depths()
            assert depths[partition_of("d42", 8)] == 20
            assert sum(depths) == 20

    run(scenario)


# -- flow, counters ------------------------------------------------------------------------------------


def test_accepted_ping_reaches_the_index_and_counters_are_exact() -> None:
    async def scenario() -> None:
        service, index, clock, registry = make(partitions=1)
        async with service:
            results = []
            clock.now = T0
            results.append(await service.ingest(ping("a", 0)))  # accepted
            clock.now = T0 + 1
            results.append(await service.ingest(ping("a", 0)))  # same seq: duplicate
            clock.now = T0 + 2
            results.append(await service.ingest(ping("a", 2)))  # accepted
            clock.now = T0 + 3
            results.append(await service.ingest(ping("a", 1)))  # older: out_of_order
            clock.now = T0 + 4
            results.append(await service.ingest(ping("a", 3, lat=LAT + 1.0)))  # 111 km in 1 s: teleport
            clock.now = T0 + 5
            results.append(await service.ingest(ping("a", 4, lat=95.0)))  # invalid_geo
            clock.now = T0 + 100  # fresh GCRA budget: burst 3, then rate limited
            for i in range(10, 14):
                results.append(await service.ingest(ping("a", i)))
            service.count_invalid(2)
            assert results == [
                "accepted",
                "duplicate",
                "accepted",
                "out_of_order",
                "teleport",
                "invalid_geo",
                "accepted",
                "accepted",
                "accepted",
                "rate_limited",
            ]
            expected = dict.fromkeys(COUNTED, 0) | {
                "accepted": 5,
                "duplicate": 1,
                "out_of_order": 1,
                "teleport": 1,
                "invalid_geo": 1,
                "rate_limited": 1,
                "invalid": 2,
            }
            assert service.counts == expected
            for name, n in expected.items():
                assert sample(registry, name) == n, name
            assert registry.get_sample_value("dispatch_ingest_latency_seconds_count") == 5
            found = await near(index)
            assert [d.driver_id for d in found] == ["a"]
            assert found[0].seen_at_s == T0 + 100  # receipt clock, not the device's timestamp
            state = service.driver_state("a")
            assert state == DriverState("online", T0 + 100, found[0].lat, found[0].lng)
            p99 = service.latency_quantile_s(0.99)
            assert p99 is not None and 0 <= p99 < 1.0
            assert service.within_latency_target()
            service.latencies_s.extend([0.5] * 100)  # a recent p99 of 500 ms misses the 200 ms target
            assert not service.within_latency_target()
            assert service.latency_quantile_s(0.0) == min(service.latencies_s)

    run(scenario)


def test_counters_of_two_services_on_one_registry_add_up() -> None:
    async def scenario() -> None:
        registry = CollectorRegistry()
        one, *_ = make(registry=registry)
        two, *_ = make(registry=registry)  # no duplicate-registration error
        one.count_invalid()
        two.count_invalid(3)
        assert sample(registry, "invalid") == 4
        assert one.counts["invalid"] == 1 and two.counts["invalid"] == 3

    run(scenario)


def test_bad_driver_ids_are_invalid_and_a_stopped_service_drops() -> None:
    async def scenario() -> None:
        service, _, _, registry = make()
        assert not service.submit(ping("a", 0))  # not started
        async with service:
            assert not service.submit(ping("x" * 129, 0))
            assert await service.ingest(ping("", 0)) == INVALID
        assert await service.ingest(ping("a", 1)) == DROPPED
        assert service.counts["dropped"] == 2 and service.counts["invalid"] == 2
        assert sample(registry, "dropped") == 2

    run(scenario)


# -- bounded queues ------------------------------------------------------------------------------------


def test_full_queue_rejects_instead_of_growing() -> None:
    async def scenario() -> None:
        service, index, _clock, registry = make(partitions=1, queue_size=10)
        async with service:
            # no await between submits: the worker cannot run, so the queue fills at 10
            accepted = [service.submit(ping(f"d{i}", 0)) for i in range(100)]
            assert accepted == [True] * 10 + [False] * 90
            assert service.queue_depths() == [10]
            await service.join()
            assert await index.count() == 10
        assert service.counts["dropped"] == 90 and sample(registry, "dropped") == 90
        assert service.counts["accepted"] == 10

    run(scenario)


def test_memory_stays_flat_under_10x_overload() -> None:
    async def scenario() -> None:
        cap = 200
        service, index, clock, _ = make(partitions=2, queue_size=cap // 2)
        drivers = [f"driver-{i}" for i in range(500)]

        async def overload(round_: int) -> None:
            clock.now = T0 + 10 * round_
            for k in range(10 * cap):  # 10x what the queues hold, without yielding
                service.submit(ping(drivers[k % len(drivers)], round_ * 10_000 + k, dlat=0.0))
            assert sum(service.queue_depths()) <= cap
            await service.join()

        async with service:
            await overload(0)
            await overload(1)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for round_ in range(2, 12):
                await overload(round_)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
        dropped = service.counts["dropped"]
        assert dropped == 12 * (10 * cap - cap)  # every ping beyond the queues was refused
        # 10 rounds x 1,800 refused pings would be > 1 MB if they were kept anywhere
        assert after - before < 200_000, after - before
        assert await index.count() <= len(drivers)

    run(scenario)


# -- driver state: busy, offline, expiry ----------------------------------------------------------------


def test_busy_override_keeps_the_driver_out_of_matching() -> None:
    async def scenario() -> None:
        service, index, clock, _ = make()
        async with service:
            assert await service.ingest(ping("d1", 0)) == "accepted"
            assert [d.driver_id for d in await near(index)] == ["d1"]
            await service.mark_busy("d1")
            assert service.is_busy("d1")
            assert await near(index) == []
            assert [d.driver_id for d in await near(index, {"busy"})] == ["d1"]
            clock.now += 5
            assert await service.ingest(ping("d1", 5)) == "accepted"  # pings keep moving the driver
            busy = await near(index, {"busy"})
            assert [d.driver_id for d in busy] == ["d1"] and busy[0].seen_at_s == T0 + 5
            assert busy[0].lat > LAT + 4e-4  # moved north (smoothed)
            assert await near(index) == []
            state = service.driver_state("d1")
            assert state is not None and state.status == "busy"
            await service.mark_available("d1")
            assert [d.driver_id for d in await near(index)] == ["d1"]
            state = service.driver_state("d1")
            assert state is not None and state.status == "online"
            await service.mark_busy("ghost")  # unknown driver: remembered, nothing indexed
            assert await index.count() == 1
            clock.now += 5
            assert await service.ingest(ping("ghost", 0)) == "accepted"
            assert [d.driver_id for d in await near(index, {"busy"})] == ["ghost"]
            with pytest.raises(InvalidIndexInput):
                await service.mark_busy("")

    run(scenario)


def test_busy_marks_are_bounded() -> None:
    async def scenario() -> None:
        service, *_ = make(max_tracked_drivers=2)
        await service.mark_busy("a")
        await service.mark_busy("b")
        await service.mark_busy("a")  # already marked: fine
        with pytest.raises(IngestCapacityError):
            await service.mark_busy("c")
        await service.mark_available("a")
        await service.mark_busy("c")

    run(scenario)


def test_offline_ping_removes_the_driver() -> None:
    async def scenario() -> None:
        service, index, clock, _ = make()
        async with service:
            assert await service.ingest(ping("d1", 0)) == "accepted"
            assert await index.count() == 1
            clock.now += 2
            assert await service.ingest(ping("d1", 2, status="offline")) == "accepted"
            assert await index.count() == 0
            state = service.driver_state("d1")
            assert state is not None and state.status == "offline" and state.last_seen_s == T0 + 2
            clock.now += 2
            assert await service.ingest(ping("d1", 4)) == "accepted"  # back online
            assert [d.driver_id for d in await near(index)] == ["d1"]

    run(scenario)


def test_stale_drivers_expire_from_index_and_state() -> None:
    async def scenario() -> None:
        service, index, clock, _ = make(index=InMemoryDriverIndex(IndexParams(stale_after_s=12.0)))
        async with service:
            assert await service.ingest(ping("old", 0)) == "accepted"
            clock.now += 10
            assert await service.ingest(ping("new", 10)) == "accepted"
            clock.now += 2.5  # old: 12.5 s, new: 2.5 s
            assert await service.expire_now() == 1
            assert service.driver_state("old") is None
            assert service.driver_state("new") is not None
            assert [d.driver_id for d in await near(index)] == ["new"]

    run(scenario)


def test_state_map_is_bounded() -> None:
    async def scenario() -> None:
        service, *_ = make(max_tracked_drivers=3, partitions=1)
        async with service:
            for i in range(5):
                service.submit(ping(f"d{i}", 0))
            await service.join()
        assert [service.driver_state(f"d{i}") is not None for i in range(5)] == [
            False,
            False,
            True,
            True,
            True,
        ]

    run(scenario)


def test_expiry_loop_runs_periodically() -> None:
    async def scenario() -> None:
        service, index, clock, _ = make(expire_interval_s=0.05)
        async with service:
            assert await service.ingest(ping("d1", 0)) == "accepted"
            clock.now += 60
            for _ in range(100):
                await asyncio.sleep(0.02)
                if await index.count() == 0:
                    break
            assert await index.count() == 0
            assert service.stats["expired"] == 1

    run(scenario)


# -- faults --------------------------------------------------------------------------------------------


class ExplodingPipeline(PingPipeline):
    def process(self, ping: Ping, received_s: float | None = None) -> PingOutcome:
        if ping.driver_id == "boom":
            raise RuntimeError("pipeline bug")
        return super().process(ping, received_s)


class FlakyIndex(InMemoryDriverIndex):
    async def upsert(self, driver_id: str, lat: float, lng: float, status: str, seen_at_s: float) -> None:
        if driver_id == "cursed":
            raise ConnectionError("index down for this one")
        await super().upsert(driver_id, lat, lng, status, seen_at_s)

    async def expire(self, now_s: float) -> int:
        raise ConnectionError("expire down")


@pytest.mark.parametrize("concurrency", [1, 8])
def test_a_bad_ping_never_kills_a_worker(concurrency: int) -> None:
    async def scenario() -> None:
        service, index, _, registry = make(
            partitions=1,
            pipeline=ExplodingPipeline(),
            index=FlakyIndex(),
            index_write_concurrency=concurrency,
        )
        async with service:
            assert await service.ingest(ping("boom", 0)) == ERROR
            assert await service.ingest(ping("cursed", 0)) == ERROR
            for i in range(3):  # in one batch: two errors around a good ping
                service.submit(ping("boom", i + 1))
                service.submit(ping("fine", i))
                service.submit(ping("cursed", i + 1))
            await service.join()
            assert await service.ingest(ping("late", 0)) == "accepted"
            assert await service.expire_now() == 0  # failure logged and counted, not raised
            assert service.stats["expire_errors"] == 1
        # boom: 4 pipeline failures; cursed: 1 failed write, then seq 1 and 2 accepted (seq 3 is
        # the 4th ping at one receipt time: rate limited) and coalesced into one failed write
        assert service.counts[ERROR] == 4 + 1 + 2
        assert service.counts["rate_limited"] == 1
        assert sample(registry, ERROR) == 7
        assert sorted(d.driver_id for d in await near(index)) == ["fine", "late"]

    run(scenario)


# -- snapping --------------------------------------------------------------------------------------------


class FixedSnapper:
    def __init__(self) -> None:
        self.calls = 0

    def snap(self, lat: float, lng: float) -> tuple[float, float] | None:
        self.calls += 1
        if lat > LAT + 0.5:
            return None
        if lng > LNG + 0.5:
            raise RuntimeError("snapper bug")
        return LAT, LNG + 0.001


def test_positions_are_snapped_and_snap_failures_keep_the_fix() -> None:
    async def scenario() -> None:
        snapper = FixedSnapper()
        service, _index, _clock, _ = make(snapper=snapper)
        async with service:
            assert await service.ingest(ping("a", 0)) == "accepted"
            far_north = Ping("b", 0, T0, LAT + 1.0, LNG, 5.0)
            far_east = Ping("c", 0, T0, LAT, LNG + 1.0, 5.0)
            assert await service.ingest(far_north) == "accepted"
            assert await service.ingest(far_east) == "accepted"
        assert service.driver_state("a") == DriverState("online", T0, LAT, LNG + 0.001)
        assert service.driver_state("b") == DriverState("online", T0, LAT + 1.0, LNG)  # no road: raw fix
        assert service.driver_state("c") == DriverState("online", T0, LAT, LNG + 1.0)  # bug: raw fix
        assert service.stats["snap_errors"] == 1 and snapper.calls == 3

    run(scenario)


class FakeEngine:
    def __init__(self) -> None:
        self.radii: list[float | None] = []

    def snap(self, point: LatLng, radius_m: float | None = None) -> Any:
        self.radii.append(radius_m)
        if point.lat > 50:
            raise NoSegment("No road within 50 m")
        if point.lat < 0:
            raise ValueError("other failure")

        class Snapped:
            location = LatLng(point.lat + 0.0001, point.lng)

        return Snapped()


def test_routing_snapper_maps_no_segment_to_none() -> None:
    engine = FakeEngine()
    snapper = RoutingSnapper(engine, max_distance_m=30)
    assert snapper.snap(49.0, 8.0) == (49.0001, 8.0)
    assert snapper.snap(51.0, 8.0) is None
    with pytest.raises(ValueError, match="other failure"):
        snapper.snap(-1.0, 8.0)
    assert engine.radii == [30.0, 30.0, 30.0]
    with pytest.raises(ValueError):
        RoutingSnapper(engine, max_distance_m=0)


# -- bus events ----------------------------------------------------------------------------------------------


def test_location_updates_are_sampled_per_driver() -> None:
    async def scenario() -> None:
        bus = InProcessBus()
        clock = Clock()
        registry = CollectorRegistry()
        service = IngestService(
            PingPipeline(),
            InMemoryDriverIndex(),
            settings=IngestSettings(partitions=2, publish_every_s=4.0, expire_interval_s=3600),
            bus=bus,
            registry=registry,
            clock=clock,
        )
        got: list[dict[str, Any]] = []

        async def handler(delivery: Delivery) -> None:
            assert delivery.event.topic == LOCATION_TOPIC
            assert delivery.event.key == delivery.event.payload["driver_id"]
            got.append(delivery.event.payload)

        sub = await bus.subscribe(LOCATION_TOPIC, "test", handler)
        async with service:
            for t in (0, 1, 2, 3, 4, 5):  # events at 0 and 4 (every 4 s)
                clock.now = T0 + t
                assert await service.ingest(ping("a", t)) == "accepted"
                clock.now = T0 + t
                assert await service.ingest(ping("b", t)) == "accepted"
            await service.mark_busy("a")  # a status change is published at once
            clock.now = T0 + 6
            assert await service.ingest(ping("a", 6)) == "accepted"  # busy already: sampled out
            clock.now = T0 + 7
            assert await service.ingest(ping("a", 7, status="offline")) == "accepted"  # change again
            clock.now = T0 + 5 + 12  # b's last ping was at T0 + 5: stale now
            await service.expire_now()
        for _ in range(100):
            if len(got) >= 7:
                break
            await asyncio.sleep(0.01)
        await sub.stop()
        await bus.close()
        seen = [(p["driver_id"], p["seq"], p["status"]) for p in got]
        assert sorted(seen) == sorted(
            [
                ("a", 0, "online"),
                ("b", 0, "online"),
                ("a", 4, "online"),
                ("b", 4, "online"),
                ("a", 5, "busy"),
                ("a", 7, "offline"),
                ("b", 5, "offline"),  # expired: its pings stopped
            ]
        )
        assert [p["driver_id"] for p in got if p["expired"]] == ["b"]
        assert registry.get_sample_value("dispatch_location_events_total", {"result": "published"}) == 7

    run(scenario)


class StuckBus:
    async def publish(self, event: Any) -> None:
        await asyncio.sleep(3600)

    async def subscribe(self, *args: Any, **kw: Any) -> Any:  # pragma: no cover - unused
        raise NotImplementedError

    async def close(self) -> None:
        return None


def test_a_stuck_bus_never_stalls_intake() -> None:
    async def scenario() -> None:
        registry = CollectorRegistry()
        service = IngestService(
            PingPipeline(),
            InMemoryDriverIndex(),
            settings=IngestSettings(
                partitions=1,
                publish_queue_size=2,
                publish_timeout_s=0.05,
                drain_timeout_s=0.2,
                expire_interval_s=3600,
            ),
            bus=StuckBus(),
            registry=registry,
            clock=Clock(),
        )
        async with service:
            results = [await service.ingest(ping(f"d{i}", 0)) for i in range(10)]
            assert results == ["accepted"] * 10
            await asyncio.sleep(0.12)  # the first publish times out
        events = {
            r: registry.get_sample_value("dispatch_location_events_total", {"result": r})
            for r in ("published", "dropped", "failed")
        }
        assert events["published"] == 0
        assert events["dropped"] is not None and events["dropped"] >= 7  # queue of 2 (+1 in flight)
        assert events["failed"] is not None and events["failed"] >= 1

    run(scenario)


# -- shutdown ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 8])
def test_stop_drains_queued_pings(concurrency: int) -> None:
    async def scenario() -> None:
        service, index, _, _ = make(partitions=2, queue_size=1000, index_write_concurrency=concurrency)
        async with service:
            for i in range(500):
                assert service.submit(ping(f"d{i}", 0))
        assert service.queue_depths() == [0, 0]
        assert service.counts["accepted"] == 500
        assert await index.count() == 500
        assert not service.running

    run(scenario)


def test_routing_snapper_on_a_real_road_network(graph_dir: Callable[[str, str], Any]) -> None:
    engine = RoutingEngine.open(graph_dir("andorra", "car"))
    net = engine.engine.network
    node = LatLng(float(net.node_lat[0]), float(net.node_lon[0]))
    off_road = LatLng(node.lat + 0.0002, node.lng)  # 22 m north of a graph node
    expected = engine.snap(off_road, 50.0).location
    snapper = RoutingSnapper(engine, max_distance_m=50.0)
    snapped = snapper.snap(off_road.lat, off_road.lng)
    assert snapped == (expected.lat, expected.lng)
    assert haversine_m(off_road, LatLng(*snapped)) <= haversine_m(off_road, node) + 1e-6
    assert snapper.snap(42.0, 1.0) is None  # far outside the map: NoSegment -> keep the raw fix

    async def scenario() -> None:
        service, _, _, _ = make(snapper=snapper)
        async with service:
            raw = Ping("cab", 0, T0, off_road.lat, off_road.lng, 5.0)
            assert await service.ingest(raw) == "accepted"
        assert service.driver_state("cab") == DriverState("online", T0, expected.lat, expected.lng)

    run(scenario)


class BatchIndex(InMemoryDriverIndex):
    """An index with the optional batched write: per-row outcomes, or a failed round trip."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.down = False

    async def upsert_many(self, rows: Any) -> list[BaseException | None]:
        if self.down:
            raise ConnectionError("round trip failed")
        self.batches.append(len(rows))
        outcomes: list[BaseException | None] = []
        for driver_id, lat, lng, status, seen_at_s in rows:
            if driver_id.startswith("cursed"):
                outcomes.append(ConnectionError("this row failed"))
                continue
            await self.upsert(driver_id, lat, lng, status, seen_at_s)
            outcomes.append(None)
        return outcomes


def test_batched_index_writes_use_upsert_many() -> None:
    async def scenario() -> None:
        index = BatchIndex()
        service, _, clock, registry = make(index=index, partitions=1)
        async with service:
            await service.mark_busy("d3")
            for i in range(10):  # one batch: 10 drivers, one of them cursed, one going offline
                service.submit(ping(f"d{i}", 0))
            service.submit(ping("cursed", 0))
            await service.join()
            assert index.batches == [11]
            assert await index.count() == 10
            assert [d.driver_id for d in await near(index, {"busy"})] == ["d3"]
            clock.now += 2
            service.submit(ping("d0", 2, status="offline"))
            service.submit(ping("d1", 2))
            service.submit(ping("d2", 2))
            await service.join()
            assert index.batches == [11, 2]  # the offline ping is a remove, not in the batch
            assert await index.count() == 9
            index.down = True
            clock.now += 2
            service.submit(ping("d1", 4))
            service.submit(ping("d2", 4))
            await service.join()
        assert service.counts[ERROR] == 1 + 2
        assert sample(registry, ERROR) == 3
        assert service.counts["accepted"] == 11 + 3 + 2
        assert registry.get_sample_value("dispatch_ingest_latency_seconds_count") == 10 + 3
        state = service.driver_state("d0")
        assert state is not None and state.status == "offline"

    run(scenario)


def test_pings_of_unregistered_drivers_are_refused_and_counted() -> None:
    async def scenario() -> None:
        service, index, _clock, registry = make()
        service.known_driver = {"d-known"}.__contains__
        async with service:
            assert service.submit(ping("d-known", 1))
            assert not service.submit(ping("d-stranger", 1))
            assert await service.ingest(ping("d-stranger", 2)) == "unknown_driver"
            await service.join()
        assert sample(registry, "unknown_driver") == 2
        assert sample(registry, "accepted") == 1
        assert [d.driver_id for d in await index.nearby(ping("x", 1).lat, ping("x", 1).lng, 500)] == [
            "d-known"
        ]

    run(scenario)
