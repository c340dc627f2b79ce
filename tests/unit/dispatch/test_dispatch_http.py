"""The dispatch HTTP API through the real app (auth middleware, error mapping) with tokens per role."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from tests.unit.dispatch.test_dispatch_service import DROPOFF, PICKUP, StraightRouter

from hexcity.api import create_app
from hexcity.dispatch import InMemoryDriverIndex
from hexcity.dispatch.adapters.trip_store_sql import SqlTripStore
from hexcity.dispatch.http import build_dispatch_router
from hexcity.dispatch.service import DispatchService, DispatchSettings
from hexcity.infra.auth import AuthSettings, Role, mint_demo_token
from hexcity.infra.sql import make_engine
from hexcity.platform import ModuleRuntime
from hexcity.routing import Limits, RoutingService

AUTH = AuthSettings(jwt_secret="dispatch-http-test-" + "s" * 40, demo_mode=True)


def token(role: Role, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_demo_token(AUTH, role, subject)}"}


RIDER, OTHER_RIDER, DRIVER, OTHER_DRIVER, ADMIN = (
    token(Role.RIDER, "r1"),
    token(Role.RIDER, "r2"),
    token(Role.DRIVER, "d1"),
    token(Role.DRIVER, "d2"),
    token(Role.ADMIN, "ops"),
)
QUOTE = {
    "pickup": {"lat": PICKUP.lat, "lng": PICKUP.lng},
    "dropoff": {"lat": DROPOFF.lat, "lng": DROPOFF.lng},
    "product": "standard",
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, DispatchService, InMemoryDriverIndex]]:
    index = InMemoryDriverIndex()
    service = DispatchService(
        SqlTripStore(make_engine(f"sqlite:///{tmp_path / 'd.db'}")),
        index,
        StraightRouter(),
        settings=DispatchSettings(window_min_s=60, window_max_s=60),  # windows run when the test says
        registry=CollectorRegistry(),
    )

    @asynccontextmanager
    async def lifespan() -> Any:
        async with service:
            yield

    module = ModuleRuntime("dispatch", [build_dispatch_router(service, index)], lifespan)
    app = create_app(RoutingService(Limits()), AUTH, None, [module])
    with TestClient(app) as c:
        yield c, service, index


def run_window(c: TestClient, service: DispatchService, index: InMemoryDriverIndex) -> list[Any]:
    async def go() -> list[Any]:
        await index.upsert("d1", PICKUP.lat + 0.001, PICKUP.lng, "online", 1e12)
        return await service.run_window()

    return c.portal.call(go)  # type: ignore[union-attr]


def test_ride_through_the_api(client: tuple[TestClient, DispatchService, InMemoryDriverIndex]) -> None:
    c, service, index = client
    q = c.post("/dispatch/v1/quotes", json=QUOTE, headers=RIDER)
    assert q.status_code == 201, q.text
    assert q.json()["fare"]["multiplier"] == "1.00"
    t = c.post("/dispatch/v1/trips", json={"quote_id": q.json()["quote_id"]}, headers=RIDER)
    assert t.status_code == 201 and t.json()["status"] == "requested"
    trip_id = t.json()["trip_id"]
    assert c.get(f"/dispatch/v1/trips/{trip_id}", headers=OTHER_RIDER).json()["code"] == "Forbidden"
    assert c.get(f"/dispatch/v1/trips/{trip_id}", headers=DRIVER).status_code == 403  # not assigned yet
    [offer] = run_window(c, service, index)
    offer_id = offer.offer_id
    assert (
        c.post(f"/dispatch/v1/offers/{offer_id}/accept", headers=OTHER_DRIVER).json()["code"]
        == "OfferNotFound"
    )
    assert (
        c.post(f"/dispatch/v1/offers/{offer_id}/accept", headers=RIDER).status_code == 403
    )  # no offers:write
    a = c.post(f"/dispatch/v1/offers/{offer_id}/accept", headers=DRIVER)
    assert (a.status_code, a.json()["status"], a.json()["driver_id"]) == (200, "matched", "d1")
    again = c.post(f"/dispatch/v1/offers/{offer_id}/accept", headers=DRIVER)
    assert (again.status_code, again.json()["code"]) == (409, "OfferUnavailable")
    bad = c.post(f"/dispatch/v1/trips/{trip_id}/status", json={"status": "completed"}, headers=DRIVER)
    assert (bad.status_code, bad.json()["code"]) == (409, "IllegalTransition")
    for status in ("driver_arriving", "in_trip", "completed"):
        r = c.post(f"/dispatch/v1/trips/{trip_id}/status", json={"status": status}, headers=DRIVER)
        assert (r.status_code, r.json()["status"]) == (200, status)
    assert c.get(f"/dispatch/v1/trips/{trip_id}", headers=RIDER).json()["version"] == 6


def test_bad_input_gets_stable_codes(client: tuple[TestClient, DispatchService, InMemoryDriverIndex]) -> None:
    c, _, _ = client
    cases: list[tuple[str, dict[str, Any], dict[str, str], int, str]] = [
        ("/dispatch/v1/quotes", {**QUOTE, "product": "rocket"}, RIDER, 400, "UnknownProduct"),
        ("/dispatch/v1/quotes", {**QUOTE, "pickup": {"lat": 95, "lng": 0}}, RIDER, 400, "InvalidQuery"),
        ("/dispatch/v1/quotes", {**QUOTE, "tip": 5}, RIDER, 400, "InvalidQuery"),
        ("/dispatch/v1/quotes", {**QUOTE, "rider_id": "r2"}, RIDER, 403, "Forbidden"),
        ("/dispatch/v1/quotes", QUOTE, ADMIN, 400, "InvalidInput"),  # an admin must name the rider
        ("/dispatch/v1/quotes", QUOTE, DRIVER, 403, "Forbidden"),
        ("/dispatch/v1/trips", {"quote_id": "q_nope"}, RIDER, 404, "QuoteNotFound"),
        ("/dispatch/v1/trips/t_nope/cancel", {}, RIDER, 404, "TripNotFound"),
        ("/dispatch/v1/offers/o_nope/accept", {}, DRIVER, 404, "OfferNotFound"),
    ]
    for path, body, headers, status, code in cases:
        r = c.post(path, json=body, headers=headers)
        assert (path, r.status_code, r.json()["code"]) == (path, status, code), r.text
    assert c.post("/dispatch/v1/quotes", json=QUOTE).status_code == 401


def test_rider_cancels_and_admin_sees_surge(
    client: tuple[TestClient, DispatchService, InMemoryDriverIndex],
) -> None:
    c, _, _ = client
    q = c.post("/dispatch/v1/quotes", json={**QUOTE, "rider_id": "r9"}, headers=ADMIN).json()
    t = c.post("/dispatch/v1/trips", json={"quote_id": q["quote_id"], "rider_id": "r9"}, headers=ADMIN).json()
    r = c.post(f"/dispatch/v1/trips/{t['trip_id']}/cancel", json={"reason": "too slow"}, headers=ADMIN)
    assert (r.json()["status"], r.json()["cancel_reason"]) == ("cancelled", "too slow")
    s = c.get("/dispatch/v1/surge", params={"lat": PICKUP.lat, "lng": PICKUP.lng}, headers=RIDER).json()
    assert (s["multiplier"], s["demand"], s["frozen"]) == (1.0, 1, False)
    assert (
        c.get("/dispatch/v1/drivers/nearby", params={"lat": 49.4, "lng": 8.7}, headers=RIDER).status_code
        == 403
    )


def test_admins_register_drivers(client: tuple[TestClient, DispatchService, InMemoryDriverIndex]) -> None:
    c, service, _ = client
    body = {"driver_id": "d7", "products": ["standard", "xl"]}
    first = c.post("/dispatch/v1/drivers", json=body, headers=ADMIN)
    assert (first.status_code, first.json()) == (
        201,
        {"driver_id": "d7", "products": ["standard", "xl"], "created": True},
    )
    again = c.post("/dispatch/v1/drivers", json=body, headers=ADMIN)
    assert (again.status_code, again.json()["created"]) == (200, False)
    assert service.is_registered("d7") and not service.is_registered("d8")
    assert c.post("/dispatch/v1/drivers", json=body, headers=DRIVER).status_code == 403
    bad = c.post("/dispatch/v1/drivers", json={"driver_id": "d9", "products": ["rocket"]}, headers=ADMIN)
    assert (bad.status_code, bad.json()["code"]) == (400, "UnknownProduct")
