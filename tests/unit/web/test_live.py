"""The live feed: folding bus events, per-second coalescing, bounded buffers, SSE subscribers."""

from __future__ import annotations

import asyncio
from typing import Any

import h3
import pytest

from hexcity.infra.bus import InProcessBus
from hexcity.kernel.events import Event
from hexcity.web import FeedLimits, LiveFeed, PanelRegistry


class FakeClock:
    def __init__(self, now_s: float = 1000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def loc(driver_id: str, lat: float, lng: float, status: str = "online", event_id: str | None = None) -> Event:
    payload = {"driver_id": driver_id, "lat": lat, "lng": lng, "status": status}
    if event_id is None:
        return Event("driver.location.updates", driver_id, payload)
    return Event("driver.location.updates", driver_id, payload, event_id=event_id)


def trip(trip_id: str, status: str, version: int, lat: float = 42.5, lng: float = 1.52) -> Event:
    payload: dict[str, Any] = {
        "trip_id": trip_id,
        "status": status,
        "version": version,
        "driver_id": None if status == "requested" else "d1",
        "pickup": {"lat": lat, "lng": lng},
        "dropoff": {"lat": 42.51, "lng": 1.53},
    }
    return Event("ride.status", trip_id, payload, event_id=f"{trip_id}:v{version}", occurred_at_s=999.0)


def feed(**limits: Any) -> tuple[LiveFeed, FakeClock]:
    clock = FakeClock()
    return LiveFeed(InProcessBus(), FeedLimits(**limits), clock=clock), clock


def test_many_positions_within_a_tick_coalesce_into_the_latest() -> None:
    f, _ = feed()
    for i in range(5):
        f.ingest(loc("d1", 42.5 + i * 0.001, 1.52))
    f.ingest(loc("d2", 42.6, 1.6, "busy"))
    frame = f.tick()
    assert frame["drivers"] == [["d1", 42.504, 1.52, "online"], ["d2", 42.6, 1.6, "busy"]]
    assert frame["gone"] == []
    assert f.tick()["drivers"] == []  # nothing changed since


def test_logout_removes_the_driver_and_is_reported_once() -> None:
    f, _ = feed()
    f.ingest(loc("d1", 42.5, 1.52))
    f.tick()
    f.ingest(loc("d1", 42.5, 1.52, "offline"))
    frame = f.tick()
    assert (frame["drivers"], frame["gone"]) == ([], ["d1"])
    assert [e["text"] for e in frame["events"]] == ["driver d1 logged out"]
    assert "d1" not in f.drivers


def test_stale_drivers_expire() -> None:
    f, clock = feed(driver_stale_s=30.0)
    f.ingest(loc("d1", 42.5, 1.52))
    clock.now_s += 10
    f.ingest(loc("d2", 42.5, 1.53))
    f.tick()
    clock.now_s += 25  # d1 last seen 35 s ago, d2 25 s ago
    frame = f.tick()
    assert frame["gone"] == ["d1"]
    assert list(f.drivers) == ["d2"]


def test_duplicate_deliveries_are_folded_once() -> None:
    f, _ = feed()
    f.ingest(trip("t1", "requested", 1))
    f.ingest(trip("t1", "requested", 1))  # at-least-once redelivery, same event id
    assert f.kpi_point()["trips_requested"] == 1
    assert f.events_seen == 1


def test_trip_lifecycle_counts_and_ignores_late_versions() -> None:
    f, _ = feed()
    f.ingest(trip("t1", "requested", 1))
    f.ingest(trip("t1", "driver_arriving", 3))
    f.ingest(trip("t1", "matched", 2))  # late: older than what we have
    assert f.trips["t1"]["status"] == "driver_arriving"
    first = f.tick()
    assert [t["trip_id"] for t in first["trips"]] == ["t1"]
    f.ingest(trip("t1", "completed", 5))
    frame = f.tick()
    assert (frame["trips"], frame["ended"]) == ([], ["t1"])
    k = frame["kpi"]
    assert (k["trips_requested"], k["trips_completed"], k["trips_active"]) == (1, 1, 0)


def test_cells_count_available_supply_and_waiting_demand_with_h3_boundaries() -> None:
    f, _ = feed()
    f.ingest(loc("d1", 42.5, 1.52))
    f.ingest(loc("d2", 42.5001, 1.5201))
    f.ingest(loc("d3", 42.5, 1.52, "busy"))  # busy drivers are not supply
    f.ingest(trip("t1", "requested", 1, 42.5, 1.52))
    cell = h3.latlng_to_cell(42.5, 1.52, 7)
    [row] = f.cells()
    assert (row["cell"], row["supply"], row["demand"]) == (cell, 2, 1)
    expected = [[round(lng, 6), round(lat, 6)] for lat, lng in h3.cell_to_boundary(cell)]
    assert row["boundary"] == [*expected, expected[0]]


def test_buffers_are_bounded() -> None:
    f, _ = feed(max_drivers=3, max_events=4, max_kpi_points=2, max_events_per_tick=2, max_trips=2)
    for i in range(5):
        f.ingest(loc(f"d{i}", 42.5, 1.52))
        f.ingest(trip(f"t{i}", "requested", 1))
    assert list(f.drivers) == ["d2", "d3", "d4"]
    assert list(f.trips) == ["t3", "t4"]
    assert len(f.events) == 4
    frame = f.tick()
    assert len(frame["events"]) == 2
    assert frame["gone"] == ["d0", "d1"]
    f.tick()
    f.tick()
    assert len(f.kpis) == 2


def test_panels_not_registered_show_not_running() -> None:
    panels = PanelRegistry()
    panels.register("dispatch", "Dispatch", lambda: {"drivers": 3})
    snap = panels.snapshot()
    assert snap["dispatch"] == {"title": "Dispatch", "state": "running", "data": {"drivers": 3}}
    assert snap["fulfillment"]["state"] == "not_running" and snap["fulfillment"]["data"] is None
    assert [name for name in snap] == ["dispatch", "fulfillment", "commerce", "payments"]


def test_a_failing_panel_source_shows_an_error_state() -> None:
    panels = PanelRegistry()

    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    panels.register("payments", "Payments", broken)
    assert panels.snapshot()["payments"] == {
        "title": "Payments",
        "state": "error",
        "data": {"error": "RuntimeError"},
    }
    with pytest.raises(ValueError, match="1-32 letters"):
        panels.register("bad name!", "x", dict)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="tick_s"):
        FeedLimits(tick_s=0)
    with pytest.raises(ValueError, match="max_drivers"):
        FeedLimits(max_drivers=0)


async def _collect(f: LiveFeed, n: int) -> list[dict[str, Any]]:
    out = []
    async for frame in f.frames():
        out.append(frame)
        if len(out) == n:
            break
    return out


def test_bus_events_reach_a_subscriber_as_snapshot_then_ticks() -> None:
    async def scenario() -> list[dict[str, Any]]:
        bus = InProcessBus()
        f = LiveFeed(bus, FeedLimits(tick_s=0.05))
        async with f:
            await bus.publish(loc("d1", 42.5, 1.52))
            for _ in range(100):
                if f.drivers:
                    break
                await asyncio.sleep(0.01)
            reader = asyncio.create_task(_collect(f, 4))
            await asyncio.sleep(0.01)
            await bus.publish(loc("d1", 42.6, 1.6))
            frames = await asyncio.wait_for(reader, 5)
        await bus.close()
        return frames

    snapshot, *ticks = asyncio.run(scenario())
    assert snapshot["type"] == "snapshot" and snapshot["drivers"] == [["d1", 42.5, 1.52, "online"]]
    assert [t["type"] for t in ticks] == ["tick"] * 3
    assert [t["drivers"] for t in ticks if t["drivers"]] == [[["d1", 42.6, 1.6, "online"]]]


def test_a_slow_subscriber_is_dropped_and_close_ends_streams() -> None:
    async def scenario() -> tuple[list[str], int, int]:
        f = LiveFeed(InProcessBus(), FeedLimits(subscriber_queue=2))
        stream = f.frames()
        first = await stream.__anext__()  # registered now
        assert f.subscriber_count == 1
        for _ in range(3):  # the third frame does not fit: dropped
            f.broadcast(f.tick())
        rest = [frame["type"] async for frame in stream]
        dropped_count = f.subscriber_count
        again = f.frames()
        await again.__anext__()
        f.close()
        tail = [frame async for frame in again]
        return [first["type"], *rest], dropped_count, len(tail)

    types, remaining, tail = asyncio.run(scenario())
    assert types == ["snapshot", "tick"]  # one tick kept, the oldest replaced by end-of-stream
    assert remaining == 0
    assert tail == 0


def test_too_many_subscribers_are_refused() -> None:
    async def scenario() -> None:
        f = LiveFeed(InProcessBus(), FeedLimits(max_subscribers=1))
        first = f.frames()
        await first.__anext__()
        with pytest.raises(OverflowError, match="at most 1"):
            await f.frames().__anext__()
        f.close()

    asyncio.run(scenario())
