"""Ride-hailing end to end on the real Andorra map, real Mosquitto and real Redis.

A ``hexcity serve`` process runs dispatch with the Redis driver index and the MQTT intake.
Simulated drivers (hexcity.simulator: MQTT pings, push WebSocket offers, HTTP answers) and riders
(HTTP quotes and requests) complete trips; then the database, Redis and /metrics are checked.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from hexcity.dispatch.adapters.trip_store_sql import SqlTripStore
from hexcity.infra.auth import AuthSettings, Role, mint_demo_token
from hexcity.infra.sql import make_engine
from hexcity.kernel import LatLng
from hexcity.payments import PaymentService, SqlLedger, driver_account, platform_revenue_account
from hexcity.simulator import BotConfig, DriverBot, SimClock, ride, spread
from tests.conftest import require_service
from tests.e2e.conftest import free_port, start_process, stop_process, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CENTER = LatLng(42.5078, 1.5211)  # Andorra la Vella
SECRET = "e2e-dispatch-secret-" + "x" * 32
N_DRIVERS = 12
N_RIDERS = 6
SPEED = 15.0


def _reachable(port: int) -> tuple[bool, str]:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True, ""
    except OSError as exc:
        return False, str(exc)


@pytest.fixture(scope="module")
def dispatch_server(
    graph_dir: Callable[[str, str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    for name, port in (("Redis", 6379), ("Mosquitto", 1883)):
        ok, detail = _reachable(port)
        require_service(name, ok, f"127.0.0.1:{port}: {detail}")
    work = tmp_path_factory.mktemp("dispatch-e2e")
    port = free_port()
    run = uuid.uuid4().hex[:8]
    db_url = f"sqlite:///{work / 'e2e.db'}"
    env = {
        **os.environ,
        "HEXCITY_DATABASE_URL": db_url,
        "HEXCITY_AUTH_JWT_SECRET": SECRET,
        "HEXCITY_AUTH_DEMO_MODE": "true",  # the test mints demo tokens per rider and driver
        "HEXCITY_DISPATCH_INDEX_URL": "redis://127.0.0.1:6379/0",
        "HEXCITY_DISPATCH_INDEX_PREFIX": f"e2e-{run}:",
        "HEXCITY_DISPATCH_INGEST_MQTT_ENABLED": "true",
        "HEXCITY_DISPATCH_INGEST_MQTT_URL": "mqtt://127.0.0.1:1883",
        "HEXCITY_DISPATCH_WINDOW_MIN_S": "0.5",
        "HEXCITY_DISPATCH_WINDOW_MAX_S": "1.0",
        "HEXCITY_DISPATCH_REQUIRE_REGISTERED_DRIVERS": "true",
    }
    cmd = [
        sys.executable,
        "-m",
        "hexcity.cli",
        "serve",
        "--port",
        str(port),
        "--graph",
        str(graph_dir("andorra", "car")),
    ]
    log_path = work / "serve.log"
    proc = start_process(cmd, env, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, log_path)
        yield {"base": base, "db_url": db_url, "run": run, "log": str(log_path)}
    finally:
        stop_process(proc)


def _token(role: Role, subject: str) -> str:
    settings = AuthSettings(jwt_secret=SECRET, demo_mode=True)
    return mint_demo_token(settings, role, subject)


async def _road_point(
    http: httpx.AsyncClient, radius_m: float, rng: random.Random, headers: dict[str, str]
) -> LatLng:
    """A random point near the centre, snapped to a road (the valley is narrow: points on the
    mountainside have no road within the snapping radius and are drawn again)."""
    for _ in range(50):
        p = spread(CENTER, radius_m, 1, rng)[0]
        r = await http.get(f"/nearest/v1/driving/{p.lng:.6f},{p.lat:.6f}", headers=headers)
        if r.status_code == 200:
            lng, lat = r.json()["waypoints"][0]["location"]
            return LatLng(lat, lng)
        assert r.json()["code"] == "NoSegment", r.text
    raise AssertionError("no road point found near the centre")


async def _scenario(base: str, run: str) -> tuple[list[DriverBot], list]:  # type: ignore[type-arg]
    rng = random.Random(7)
    clock = SimClock(SPEED)
    config = BotConfig(api_url=base)
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=15.0) as http:
        admin = {"Authorization": f"Bearer {_token(Role.ADMIN, 'ops')}"}
        starts = [await _road_point(http, 1500, rng, admin) for _ in range(N_DRIVERS)]
        bots = [
            DriverBot(
                f"d-{run}-{i}", _token(Role.DRIVER, f"d-{run}-{i}"), starts[i], config, http, clock, rng
            )
            for i in range(N_DRIVERS)
        ]
        for bot in bots:  # onboarding: only registered drivers' pings are taken
            r = await http.post("/dispatch/v1/drivers", json={"driver_id": bot.driver_id}, headers=admin)
            assert r.status_code == 201, r.text
        stranger = DriverBot(f"x-{run}", _token(Role.DRIVER, f"x-{run}"), starts[0], config, http, clock, rng)
        tasks = [asyncio.create_task(b.run(stop)) for b in [*bots, stranger]]
        # drivers are visible once their first pings went through MQTT → pipeline → Redis index
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = await http.get(
                "/dispatch/v1/drivers/nearby",
                params={"lat": CENTER.lat, "lng": CENTER.lng, "radius_m": 5000, "limit": 100},
                headers=admin,
            )
            if r.status_code == 200 and len(r.json()["drivers"]) == N_DRIVERS:
                break
            await asyncio.sleep(0.3)
        else:
            pytest.fail(f"drivers did not reach the index: {r.status_code} {r.text[:300]}")
        trips = []
        for i in range(N_RIDERS):
            rider = f"r-{run}-{i}"
            pickup = await _road_point(http, 1200, rng, admin)
            dropoff = await _road_point(http, 2500, rng, admin)
            trips.append(ride(http, rider, _token(Role.RIDER, rider), pickup, dropoff, timeout_s=150))
        results = await asyncio.gather(*trips)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return bots, results


def test_trips_complete_end_to_end(dispatch_server: dict[str, str]) -> None:
    bots, results = asyncio.run(_scenario(dispatch_server["base"], dispatch_server["run"]))
    problems = [(r.rider_id, r.status, r.error) for r in results if r.status != "completed"]
    assert problems == [], Path(dispatch_server["log"]).read_text()[-3000:]
    for r in results:
        assert r.statuses[-3:] == ["driver_arriving", "in_trip", "completed"] or r.statuses[-2:] == [
            "in_trip",
            "completed",
        ]
        assert r.fare_cents is not None and r.fare_cents >= 600  # the standard product's minimum
    assert len({r.driver_id for r in results}) == N_RIDERS  # one driver per rider, all distinct
    assert sum(b.stats.completed for b in bots) == N_RIDERS
    assert sum(b.stats.accepted for b in bots) == N_RIDERS
    assert all(b.stats.pings_sent >= 3 for b in bots)

    engine = make_engine(dispatch_server["db_url"])
    store = SqlTripStore(engine)
    assert store.check_invariants() == []
    assert store.trips_by_status() == {"completed": N_RIDERS}
    assert store.locked_drivers() == set()
    # every ride was paid through the ledger: fares to drivers' earnings, the books balance
    payments = PaymentService(SqlLedger(engine))
    earned = sum(payments.account(driver_account(r.driver_id or "", "EUR").id).balance_minor for r in results)
    fares = sum(r.fare_cents or 0 for r in results)
    assert earned == sum((r.fare_cents or 0) - (r.fare_cents or 0) * 1500 // 10_000 for r in results)
    assert payments.account(platform_revenue_account("EUR").id).balance_minor == fares - earned
    assert payments.ledger.total_balance()[0] == 0

    metrics = httpx.get(f"{dispatch_server['base']}/metrics", timeout=5.0).text
    accepted = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("dispatch_pings_total{") and 'verdict="accepted"' in line
    ]
    assert accepted and accepted[0] >= N_DRIVERS * 3
    unknown = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("dispatch_pings_total{") and 'verdict="unknown_driver"' in line
    ]
    assert unknown and unknown[0] >= 3  # the unregistered driver's pings, refused and counted
