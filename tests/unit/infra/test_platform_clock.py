"""Virtual time on the platform: periodic jobs, quiesce (outbox, bus, quiescers), the admin API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session

from hexcity.api import create_app
from hexcity.infra.auth import AuthSettings, Role, mint_demo_token
from hexcity.infra.bus import Delivery
from hexcity.infra.bus.memory import InProcessBus
from hexcity.infra.outbox import add_to_outbox
from hexcity.infra.sql import make_engine, writer
from hexcity.kernel import HexcityError, ManualClock, SystemClock
from hexcity.kernel.events import Event
from hexcity.platform import (
    ClockNotManual,
    ClockQuiesceTimeout,
    Platform,
    PlatformSettings,
    default_idempotency,
)
from hexcity.routing import Limits, RoutingService

pytestmark = pytest.mark.anyio

START = 1767600000.0
AUTH = AuthSettings(jwt_secret="platform-clock-test-" + "s" * 40, demo_mode=True)
ADMIN = {"Authorization": f"Bearer {mint_demo_token(AUTH, Role.ADMIN, 'ops')}"}
RIDER = {"Authorization": f"Bearer {mint_demo_token(AUTH, Role.RIDER, 'r1')}"}


def platform(mode: str = "manual", db: Path | None = None) -> Platform:
    settings = PlatformSettings(clock=mode, bus_url="memory://", outbox_poll_interval_s=0.05)
    return Platform(
        bus=InProcessBus(),
        idempotency=default_idempotency(settings),
        settings=settings,
        registry=CollectorRegistry(),
        engine=None if db is None else make_engine(f"sqlite:///{db}"),
    )


def test_settings_choose_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PlatformSettings().clock == "system"
    assert PlatformSettings().clock_start_s == START  # 2026-01-05T08:00:00Z
    monkeypatch.setenv("HEXCITY_CLOCK", "manual")
    monkeypatch.setenv("HEXCITY_CLOCK_START_S", "1000")
    p = platform(PlatformSettings().clock, None)
    assert p.virtual and p.settings.clock_start_s == 1000.0
    manual = Platform(
        InProcessBus(), default_idempotency(PlatformSettings()), PlatformSettings(), CollectorRegistry()
    )
    assert isinstance(manual.clock, ManualClock) and manual.clock.now() == 1000.0
    system = platform("system")
    assert isinstance(system.clock, SystemClock) and not system.virtual
    monkeypatch.setenv("HEXCITY_CLOCK", "lunar")
    with pytest.raises(ValueError):
        PlatformSettings()


async def test_a_2s_job_runs_5_times_over_10s_in_steps() -> None:
    p = platform()
    seen: list[float] = []

    async def job() -> None:
        seen.append(p.clock.now())

    p.every("two", 2.0, job)
    result = await p.advance(10, max_step_s=1.0)
    assert seen == [START + 2, START + 4, START + 6, START + 8, START + 10]
    assert result == {"now": START + 10, "steps": 10, "jobs_run": 5, "job_errors": 0}
    # a step longer than the interval still stops at every due time
    result = await p.advance(10, max_step_s=60)
    assert seen[5:] == [START + 12, START + 14, START + 16, START + 18, START + 20]
    assert (result["steps"], result["jobs_run"]) == (5, 5)
    assert (await p.advance(1.5))["jobs_run"] == 0  # 21.5: not due yet
    assert (await p.advance(0.5))["jobs_run"] == 1  # 22: due


async def test_due_jobs_run_in_registration_order_and_failures_are_counted() -> None:
    p = platform()
    order: list[tuple[str, float]] = []

    def recorder(name: str) -> Any:
        async def run() -> None:
            order.append((name, p.clock.now() - START))
            if name == "boom":
                raise RuntimeError("job failed")

        return run

    p.every("c", 1.0, recorder("c"))
    p.every("a", 2.0, recorder("a"))
    p.every("boom", 3.0, recorder("boom"))
    p.every("b", 0.5, recorder("b"))
    with pytest.raises(ValueError, match="already registered"):
        p.every("a", 1.0, recorder("a"))
    with pytest.raises(ValueError, match="> 0"):
        p.every("zero", 0, recorder("zero"))
    result = await p.advance(3.0, max_step_s=10)
    assert order == [
        ("b", 0.5),
        ("c", 1.0), ("b", 1.0),
        ("b", 1.5),
        ("c", 2.0), ("a", 2.0), ("b", 2.0),
        ("b", 2.5),
        ("c", 3.0), ("boom", 3.0), ("b", 3.0),
    ]  # fmt: skip
    assert result == {"now": START + 3, "steps": 6, "jobs_run": 11, "job_errors": 1}


async def test_quiesce_runs_quiescers_until_a_round_does_nothing() -> None:
    p = platform()
    backlog = [3]
    calls: list[int] = []

    async def drain() -> int:
        did = min(backlog[0], 1)  # one item per call
        backlog[0] -= did
        calls.append(did)
        return did

    p.add_quiescer("queue", drain)
    with pytest.raises(ValueError, match="already registered"):
        p.add_quiescer("queue", drain)
    result = await p.advance(0)  # zero seconds: only quiesce
    assert result == {"now": START, "steps": 0, "jobs_run": 0, "job_errors": 0}
    assert calls == [1, 1, 1, 0] and backlog == [0]


async def test_quiesce_is_bounded() -> None:
    p = platform()
    rounds = [0]

    async def never_quiet() -> int:
        rounds[0] += 1
        return 1

    p.add_quiescer("busy", never_quiet)
    with pytest.raises(ClockQuiesceTimeout) as err:
        await p.advance(1)
    assert (err.value.code, err.value.status, rounds[0]) == ("ClockQuiesceTimeout", 503, 1000)
    assert isinstance(err.value, HexcityError)


async def test_advance_drains_the_outbox_onto_the_bus_and_its_consumers(tmp_path: Path) -> None:
    p = platform(db=tmp_path / "o.db")
    handled: list[str] = []
    async with p:
        assert p.relay is not None and p._relay_task is None  # no wall-clock relay in virtual mode

        async def consumer(delivery: Delivery) -> None:
            await asyncio.sleep(0.01)  # a handler that takes real time is still waited for
            handled.append(delivery.event.event_id)
            if delivery.event.key == "first":  # handlers may publish more work: waited for too
                await p.bus.publish(Event(topic="t.more", key="k", payload={}, event_id="e2"))

        async def second(delivery: Delivery) -> None:
            handled.append(delivery.event.event_id)

        await p.bus.subscribe("t.events", "g", consumer)
        await p.bus.subscribe("t.more", "g2", second)
        assert p.engine is not None
        with Session(writer(p.engine)) as session, session.begin():
            add_to_outbox(session, Event(topic="t.events", key="first", payload={"n": 1}, event_id="e1"))
        await asyncio.sleep(0.2)  # four poll intervals of real time: nothing relays it
        assert handled == []
        result = await p.advance(1)
        assert handled == ["e1", "e2"]
        assert result["now"] == START + 1
        assert p.relay.stats.published_total == 1


async def test_system_mode_cannot_advance() -> None:
    p = platform("system")
    with pytest.raises(ClockNotManual) as err:
        await p.advance(1)
    assert (err.value.code, err.value.status) == ("ClockNotManual", 409)


async def test_concurrent_advances_are_serialized() -> None:
    p = platform()
    spans: list[tuple[str, float]] = []

    async def slow_job() -> None:
        spans.append(("start", p.clock.now()))
        await asyncio.sleep(0.01)
        spans.append(("end", p.clock.now()))

    p.every("slow", 1.0, slow_job)
    first, second = await asyncio.gather(p.advance(2), p.advance(2))
    assert [s[0] for s in spans] == ["start", "end"] * 4  # never interleaved
    assert sorted([first["now"], second["now"]]) == [START + 2, START + 4]


@pytest.fixture
def manual() -> Iterator[TestClient]:
    with TestClient(create_app(RoutingService(Limits()), AUTH, platform())) as client:
        yield client


def test_clock_over_http(manual: TestClient) -> None:
    r = manual.get("/admin/v1/clock", headers=ADMIN)
    assert (r.status_code, r.json()) == (200, {"mode": "manual", "now": START})
    r = manual.post("/admin/v1/clock/advance", json={"seconds": 90, "max_step_s": 30}, headers=ADMIN)
    assert (r.status_code, r.json()) == (200, {"now": START + 90, "steps": 3, "jobs_run": 0, "job_errors": 0})
    assert manual.get("/admin/v1/clock", headers=ADMIN).json()["now"] == START + 90


def test_system_clock_over_http() -> None:
    with TestClient(create_app(RoutingService(Limits()), AUTH, platform("system"))) as system:
        r = system.get("/admin/v1/clock", headers=ADMIN)
        assert (r.status_code, r.json()["mode"]) == (200, "system")
        assert abs(r.json()["now"] - time.time()) < 60
        r = system.post("/admin/v1/clock/advance", json={"seconds": 1}, headers=ADMIN)
        assert (r.status_code, r.json()["code"]) == (409, "ClockNotManual")


def test_clock_http_rejects_bad_input_and_non_admins(manual: TestClient) -> None:
    bad: list[dict[str, Any]] = [
        {"seconds": 0},
        {"seconds": -1},
        {"seconds": 5000},
        {"seconds": 1, "max_step_s": 0},
        {"seconds": 1, "max_step_s": 61},
        {"seconds": "soon"},
        {},
        {"seconds": 1, "speed": 2},
    ]
    for body in bad:
        r = manual.post("/admin/v1/clock/advance", json=body, headers=ADMIN)
        assert (r.status_code, r.json()["code"]) == (400, "InvalidQuery"), body
    assert manual.get("/admin/v1/clock", headers=ADMIN).json()["now"] == START  # nothing moved
    for path, method in (("/admin/v1/clock", "GET"), ("/admin/v1/clock/advance", "POST")):
        r = manual.request(method, path, json={"seconds": 1}, headers=RIDER)
        assert (r.status_code, r.json()["code"]) == (403, "Forbidden"), path
        assert manual.request(method, path, json={"seconds": 1}).status_code == 401


async def test_the_bus_drain_skips_stopped_groups_and_times_out_on_a_stuck_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = platform()
    bus = p.bus
    assert isinstance(bus, InProcessBus)

    async def ignore(delivery: Delivery) -> None:
        del delivery

    gone = await bus.subscribe("t.old", "left", ignore)
    await gone.stop()
    await bus.publish(Event(topic="t.old", key="k", payload={}, event_id="x1"))
    await bus.publish(Event(topic="t.unread", key="k", payload={}, event_id="x2"))  # no group at all
    assert bus.pending() == 0  # nobody left to handle them: nothing to wait for
    assert (await p.advance(1))["now"] == START + 1

    release = asyncio.Event()

    async def stuck(delivery: Delivery) -> None:
        del delivery
        await release.wait()

    await bus.subscribe("t.stuck", "g", stuck)
    await bus.publish(Event(topic="t.stuck", key="k", payload={}, event_id="x3"))
    assert bus.pending() == 1
    monkeypatch.setattr("hexcity.platform.BUS_DRAIN_TIMEOUT_S", 0.1)
    with pytest.raises(ClockQuiesceTimeout, match="bus did not become idle"):
        await p.advance(1)
    release.set()
    assert await bus.drain(5.0) == 1
    assert bus.pending() == 0
    await bus.close()
