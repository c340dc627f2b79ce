"""Dispatch under the platform's manual clock, wired by the real bootstrap, driven over HTTP.

The matching, offer-timer, surge and expiry loops do not run: the platform's ``advance`` runs
them as jobs on virtual time, and every ping is applied before time moves on. So the outcome of a
scenario depends only on its inputs: two runs give the same offers (drivers, ETAs, times).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from tests.unit.dispatch.test_dispatch_service import PICKUP as NEAR
from tests.unit.dispatch.test_dispatch_service import StraightRouter, build, put_driver, request_trip

from hexcity.api import create_app
from hexcity.bootstrap import build_dispatch
from hexcity.dispatch import IngestService, IngestSettings, InMemoryDriverIndex, Ping, PingPipeline
from hexcity.dispatch.adapters.trip_store_sql import SqlTripStore
from hexcity.dispatch.service import DispatchService, DispatchSettings
from hexcity.infra.auth import AuthSettings, Role, mint_demo_token
from hexcity.infra.bus.memory import InProcessBus
from hexcity.infra.sql import make_engine
from hexcity.platform import Platform, PlatformSettings, default_idempotency
from hexcity.routing import Limits, RoutingEngine, RoutingService

START = 1767600000.0
AUTH = AuthSettings(jwt_secret="dispatch-manual-clock-" + "s" * 40, demo_mode=True)
PICKUP = {"lat": 42.5063, "lng": 1.5218}  # Andorra la Vella
DROPOFF = {"lat": 42.5097, "lng": 1.5386}  # Escaldes-Engordany
DRIVERS = {"d1": (42.5070, 1.5225), "d2": (42.5095, 1.5260)}  # d1 is nearer the pickup


def headers(role: Role, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_demo_token(AUTH, role, subject)}"}


ADMIN, RIDER = headers(Role.ADMIN, "ops"), headers(Role.RIDER, "r1")
D1, D2 = headers(Role.DRIVER, "d1"), headers(Role.DRIVER, "d2")


@pytest.fixture(scope="module")
def routing(graph_dir: Callable[[str, str], Path]) -> RoutingService:
    service = RoutingService(Limits())
    service.add(RoutingEngine.open(graph_dir("andorra", "car")))
    return service


def app_for(routing: RoutingService, db: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    for name in ("INDEX_URL", "REQUIRE_REGISTERED_DRIVERS", "WINDOW_S", "TIMER_TICK_S", "OFFER_TTL_S"):
        monkeypatch.delenv(f"HEXCITY_DISPATCH_{name}", raising=False)
    monkeypatch.setenv("HEXCITY_DISPATCH_INGEST_MQTT_ENABLED", "false")
    settings = PlatformSettings(clock="manual", bus_url="memory://", database_url=f"sqlite:///{db}")
    platform = Platform(
        bus=InProcessBus(),
        idempotency=default_idempotency(settings),
        settings=settings,
        registry=CollectorRegistry(),
        engine=make_engine(settings.database_url),
    )
    module, _ = build_dispatch(routing, platform)
    return TestClient(create_app(routing, AUTH, platform, [module]))


class Scenario:
    """Two drivers online, one rider's trip; advances and pings over HTTP."""

    def __init__(self, c: TestClient) -> None:
        self.c = c
        self.seq = 0

    def now(self) -> float:
        r = self.c.get("/admin/v1/clock", headers=ADMIN)
        assert r.status_code == 200, r.text
        return float(r.json()["now"])

    def ping_all(self) -> None:
        self.seq += 1
        now = self.now()
        for driver_id, (lat, lng) in DRIVERS.items():
            ping = {"driver_id": driver_id, "seq": self.seq, "timestamp": now, "lat": lat, "lon": lng}
            r = self.c.post(
                "/dispatch/v1/pings",
                json={"pings": [{**ping, "accuracy": 5.0}]},
                headers=headers(Role.DRIVER, driver_id),
            )
            assert (r.status_code, r.json()["accepted"]) == (200, 1), r.text

    def advance(self, seconds: float) -> dict[str, Any]:
        r = self.c.post("/admin/v1/clock/advance", json={"seconds": seconds}, headers=ADMIN)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def offers(self, driver_id: str, as_: dict[str, str]) -> list[dict[str, Any]]:
        r = self.c.get(f"/dispatch/v1/drivers/{driver_id}/offers", headers=as_)
        assert r.status_code == 200, r.text
        assert r.json()["driver_id"] == driver_id
        return list(r.json()["offers"])

    def start(self) -> str:
        for driver_id in DRIVERS:
            r = self.c.post("/dispatch/v1/drivers", json={"driver_id": driver_id}, headers=ADMIN)
            assert r.status_code == 201, r.text
        self.ping_all()
        q = self.c.post("/dispatch/v1/quotes", json={"pickup": PICKUP, "dropoff": DROPOFF}, headers=RIDER)
        assert q.status_code == 201, q.text
        assert q.json()["expires_at_s"] == START + 60  # the quote lock runs on the manual clock
        t = self.c.post("/dispatch/v1/trips", json={"quote_id": q.json()["quote_id"]}, headers=RIDER)
        assert (t.status_code, t.json()["requested_at_s"]) == (201, START), t.text
        return str(t.json()["trip_id"])


def run(routing: RoutingService, db: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The scenario of the brief; returns the offers made, in order."""
    made: list[tuple[Any, ...]] = []
    with app_for(routing, db, monkeypatch) as c:
        s = Scenario(c)
        assert s.now() == START
        trip_id = s.start()
        assert s.offers("d1", D1) == []  # nothing happens until the clock moves
        result = s.advance(3)
        assert (result["now"], result["steps"]) == (START + 3, 12)  # 0.25 s offer-timer steps
        [first] = s.offers("d1", D1)
        assert (first["trip_id"], first["status"]) == (trip_id, "pending")
        assert (first["created_at_s"], first["expires_at_s"]) == (START + 2, START + 17)  # window at 2 s
        assert s.offers("d2", D2) == []
        assert s.offers("d1", ADMIN) == [first]  # admins read any driver's offers
        assert c.get(f"/dispatch/v1/offers/{first['offer_id']}", headers=D1).json() == first  # same shape
        made.append((first["driver_id"], first["pickup_eta_s"], first["created_at_s"]))
        for _ in range(4):  # 16 s without answering; the drivers keep pinging (index TTL 12 s)
            s.ping_all()
            s.advance(4)
        assert s.now() == START + 19
        assert s.offers("d1", D1) == []  # expired at 17 s
        assert c.get(f"/dispatch/v1/offers/{first['offer_id']}", headers=D1).json()["status"] == "expired"
        [second] = s.offers("d2", D2)  # re-offered to the other driver at the next window (18 s)
        assert (second["trip_id"], second["status"]) == (trip_id, "pending")
        assert (second["created_at_s"], second["expires_at_s"]) == (START + 18, START + 33)
        trip = c.get(f"/dispatch/v1/trips/{trip_id}", headers=RIDER).json()
        assert (trip["status"], trip["offer_id"], trip["attempts"]) == ("requested", second["offer_id"], 2)
        assert first["pickup_eta_s"] < second["pickup_eta_s"]  # d1 was offered first: nearer
        made.append((second["driver_id"], second["pickup_eta_s"], second["created_at_s"]))
        accepted = c.post(f"/dispatch/v1/offers/{second['offer_id']}/accept", headers=D2)
        assert (accepted.status_code, accepted.json()["status"]) == (200, "matched")
        assert s.offers("d2", D2) == []  # answered: no longer listed
    return made


def test_offers_follow_the_manual_clock_and_repeat_exactly(
    routing: RoutingService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run(routing, tmp_path / "a.db", monkeypatch)
    assert [(driver, created) for driver, _, created in first] == [("d1", START + 2), ("d2", START + 18)]
    second = run(routing, tmp_path / "b.db", monkeypatch)
    assert second == first  # same drivers, same ETAs, same times


def test_a_driver_reads_only_its_own_offers(
    routing: RoutingService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app_for(routing, tmp_path / "c.db", monkeypatch) as c:
        r = c.get("/dispatch/v1/drivers/d1/offers", headers=D2)
        assert (r.status_code, r.json()["code"]) == (403, "Forbidden")
        r = c.get("/dispatch/v1/drivers/d1/offers", headers=RIDER)  # no offers:read
        assert (r.status_code, r.json()["code"]) == (403, "Forbidden")
        assert c.get("/dispatch/v1/drivers/d1/offers").status_code == 401
        r = c.get("/dispatch/v1/drivers/d1/offers", headers=ADMIN)
        assert (r.status_code, r.json()) == (200, {"driver_id": "d1", "offers": []})


@pytest.mark.anyio
async def test_ties_go_to_the_oldest_request_not_to_the_random_trip_id(tmp_path: Path) -> None:
    """Two riders at the same pickup, one driver: the first to request gets it, every time (the
    solver's tie-break used to follow the random trip ids)."""
    for attempt in range(8):
        service, index, _ = build(tmp_path / str(attempt))
        async with service:
            await put_driver(index, "only", 49.4110, 8.6900)
            first = await request_trip(service, "r1")
            await request_trip(service, "r2")
            [offer] = await service.run_window()
            assert (offer.trip_id, offer.driver_id) == (first, "only"), attempt


@pytest.mark.anyio
async def test_without_loops_nothing_runs_until_called(tmp_path: Path) -> None:
    now = [START]
    index = InMemoryDriverIndex()
    service = DispatchService(
        SqlTripStore(make_engine(f"sqlite:///{tmp_path / 'd.db'}")),
        index,
        StraightRouter(),
        settings=DispatchSettings(offer_ttl_s=15),
        registry=CollectorRegistry(),
        clock=lambda: now[0],
        loops=False,
    )
    ingest = IngestService(
        PingPipeline(clock=lambda: now[0]),
        index,
        settings=IngestSettings(partitions=2, publish_locations=False),
        registry=CollectorRegistry(),
        clock=lambda: now[0],
        expiry_loop=False,
    )
    async with ingest, service:
        assert service._tasks == [] and len(ingest._tasks) == 2  # the two partition workers only
        for seq in range(3):
            ping = Ping("d1", seq, START + seq, NEAR.lat + 0.001, NEAR.lng, 5.0, status="online")
            assert ingest.submit(ping, received_s=START + 2 * seq)
        assert await ingest.drain() == 3  # every queued ping applied to the index
        assert await ingest.drain() == 0
        assert [d.driver_id for d in await index.nearby(NEAR.lat, NEAR.lng, 1000)] == ["d1"]
        trip_id = await request_trip(service, "r1")
        await asyncio.sleep(0.05)  # real time passes: no loop matches or expires anything
        assert service.waiting == 1
        [offer] = await service.run_window()
        assert (offer.trip_id, offer.created_at_s, offer.expires_at_s) == (trip_id, START, START + 15)
        assert [o.offer_id for o in await service.pending_offers("d1")] == [offer.offer_id]
        now[0] = START + 14.9
        assert await service.tick_offers() == 0  # first tick sweeps: nothing due yet
        now[0] = START + 15
        assert await service.pending_offers("d1") == []  # expired by the clock, before the sweep
        assert await service.tick_offers() == 1  # the offer's timer is due
        assert (await service.get_offer(offer.offer_id)).status == "expired"
        assert await service.tick_offers() == 0
        now[0] = START + 4 + 12  # the index keeps a driver 12 s after its last ping (at 4 s)
        assert await ingest.expire_now() == 1
        assert await index.count() == 0
