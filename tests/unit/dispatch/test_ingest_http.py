"""HTTP batch, OsmAnd/Traccar and WebSocket intake, with real auth (install_auth, JWT + API keys)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from starlette.websockets import WebSocketDisconnect

from hexcity.dispatch.adapters.index_memory import InMemoryDriverIndex
from hexcity.dispatch.domain.pings import PingPipeline
from hexcity.dispatch.http_ingest import build_ingest_router
from hexcity.dispatch.ingest import IngestService
from hexcity.dispatch.settings import IngestSettings
from hexcity.infra.auth import (
    LOCATIONS_WRITE,
    AuthSettings,
    Role,
    TokenService,
    generate_api_key,
    install_auth,
)

LAT, LNG = 49.4094, 8.6937
T0 = 1_700_000_000.0


@dataclass
class Edge:
    client: TestClient
    service: IngestService
    index: InMemoryDriverIndex
    tokens: TokenService
    service_key: str
    weak_key: str

    def driver(self, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue(subject, Role.DRIVER, ttl_s=600)}"}

    def rider(self, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue(subject, Role.RIDER, ttl_s=600)}"}

    def svc(self) -> dict[str, str]:
        return {"X-API-Key": self.service_key}


@pytest.fixture
def edge() -> Iterator[Edge]:
    key, entry = generate_api_key("svc", {LOCATIONS_WRITE})
    weak_key, weak_entry = generate_api_key("weak", {"routing:read"})
    auth = AuthSettings(
        jwt_issuer="hexcity-test",
        jwt_audience="hexcity-test-api",
        jwt_secret=secrets.token_urlsafe(48),
        api_keys=[entry, weak_entry],
    )
    index = InMemoryDriverIndex()
    service = IngestService(
        PingPipeline(),
        index,
        settings=IngestSettings(partitions=2, max_batch=5, max_body_bytes=4096, expire_interval_s=3600),
        registry=CollectorRegistry(),
        clock=lambda: T0,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with service:
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(build_ingest_router(service))
    install_auth(app, auth)
    with TestClient(app) as client:
        yield Edge(client, service, index, TokenService.from_settings(auth), key, weak_key)


def jping(driver: str | None, seq: int, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "seq": seq,
        "timestamp": T0 + seq,
        "lat": LAT + seq * 1e-4,
        "lon": LNG,
        "accuracy": 5,
    }
    if driver is not None:
        body["driver_id"] = driver
    body.update(over)
    return body


# -- POST /dispatch/v1/pings ----------------------------------------------------------------------------


def test_batch_gives_one_result_per_ping(edge: Edge) -> None:
    pings = [jping("d1", i) for i in range(4)] + [jping("d1", 9, lat="north")]
    r = edge.client.post("/dispatch/v1/pings", json={"pings": pings}, headers=edge.driver("d1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 3
    assert [x["result"] for x in body["results"]] == ["accepted"] * 3 + ["rate_limited", "invalid"]
    assert body["results"][4]["code"] == "InvalidPing" and "lat" in body["results"][4]["message"]
    assert edge.service.counts["accepted"] == 3
    assert edge.service.counts["rate_limited"] == 1
    assert edge.service.counts["invalid"] == 1
    state = edge.service.driver_state("d1")
    assert state is not None and state.status == "online"


def test_a_driver_may_only_report_itself(edge: Edge) -> None:
    pings = [jping("d1", 0), jping("d2", 0)]
    r = edge.client.post("/dispatch/v1/pings", json={"pings": pings}, headers=edge.driver("d1"))
    assert r.status_code == 403 and r.json()["code"] == "Forbidden"
    assert edge.service.counts["accepted"] == 0  # nothing of a forged batch is taken
    r = edge.client.post("/dispatch/v1/pings", json={"pings": pings}, headers=edge.svc())
    assert r.status_code == 200 and r.json()["accepted"] == 2  # a service reports for any driver


def test_batch_auth_and_limits(edge: Edge) -> None:
    url = "/dispatch/v1/pings"
    body = {"pings": [jping("d1", 0)]}
    assert edge.client.post(url, json=body).status_code == 401
    r = edge.client.post(url, json=body, headers=edge.rider("r1"))
    assert r.status_code == 403 and r.json()["code"] == "Forbidden"  # no locations:write
    assert edge.client.post(url, json=body, headers={"X-API-Key": edge.weak_key}).status_code == 403
    six = {"pings": [jping(f"d{i}", 0) for i in range(6)]}
    r = edge.client.post(url, json=six, headers=edge.svc())
    assert r.status_code == 413 and r.json()["code"] == "BatchTooLarge"
    r = edge.client.post(url, content=b"{nope", headers=edge.svc())
    assert r.status_code == 400 and r.json()["code"] == "InvalidJson"
    bad_batches: list[Any] = [{"pings": []}, {"ping": [1]}, [jping("d1", 0)]]
    for bad in bad_batches:
        r = edge.client.post(url, json=bad, headers=edge.svc())
        assert r.status_code == 400 and r.json()["code"] == "InvalidBatch"
    r = edge.client.post(url, content=b" " * 5000, headers=edge.svc())
    assert r.status_code == 413 and r.json()["code"] == "PayloadTooLarge"
    assert edge.service.counts["accepted"] == 0
    assert edge.service.counts["invalid"] == 4  # the unparseable bodies


# -- OsmAnd / Traccar -------------------------------------------------------------------------------------


def osmand(driver: str, seq: int, **over: Any) -> dict[str, str]:
    q = {"id": driver, "lat": str(LAT + seq * 1e-4), "lon": str(LNG), "timestamp": str(int(T0) + seq)}
    q.update({k: str(v) for k, v in over.items()})
    return q


def test_osmand_protocol(edge: Edge) -> None:
    c, h = edge.client, edge.driver("t1")
    url = "/dispatch/v1/osmand"
    r = c.get(url, params=osmand("t1", 0, speed=10, bearing=90, accuracy=8), headers=h)
    assert (r.status_code, r.content) == (200, b"")
    r = c.get(url, params=osmand("t1", 0), headers=h)  # resent: duplicate, still 200 (stop resending)
    assert (r.status_code, r.content) == (200, b"")
    r = c.post(
        url,
        content=f"lat={LAT + 2e-4}&lon={LNG}&timestamp={int(T0) + 2}",
        params={"id": "t1"},
        headers=h | {"content-type": "application/x-www-form-urlencoded"},
    )
    assert (r.status_code, r.content) == (200, b"")
    r = c.get(url, params=osmand("t1", 3), headers=h)  # 4th at one receipt time: rate limited
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert c.get(url, params=osmand("t2", 0), headers=h).status_code == 403  # not t1's device
    for bad in (osmand("t1", 4, lat="x"), {"id": "t1", "lat": "1"}, osmand("t3", 0, lat=95)):
        r = c.get(url, params=bad, headers=edge.svc())
        assert r.status_code == 400, bad
    assert c.get(url, params=osmand("t1", 5)).status_code == 401
    counts = edge.service.counts
    assert counts["accepted"] == 2 and counts["duplicate"] == 1 and counts["rate_limited"] == 1
    assert counts["invalid"] == 2 and counts["invalid_geo"] == 1
    state = edge.service.driver_state("t1")
    assert state is not None and state.last_seen_s == T0


def test_traccar_client_json_body(edge: Edge) -> None:
    url = "/dispatch/v1/osmand"
    report = {
        "device_id": "j1",
        "location": {
            "timestamp": "2023-11-14T22:13:20.000Z",  # = T0
            "coords": {"latitude": LAT, "longitude": LNG, "accuracy": 7.5, "speed": 5.0, "heading": -1},
            "is_moving": True,
            "battery": {"level": 0.5},
        },
    }
    r = edge.client.post(url, json=report, headers=edge.driver("j1"))
    assert (r.status_code, r.content) == (200, b"")
    state = edge.service.driver_state("j1")
    assert state is not None and (state.lat, state.lng) == (LAT, LNG)
    later = {
        "device_id": "j1",
        "location": {"timestamp": T0 + 1, "coords": {"latitude": LAT, "longitude": LNG}},
    }
    assert edge.client.post(url, json=later, headers=edge.driver("j1")).status_code == 200
    assert (
        edge.client.post(url, json=report | {"device_id": "j2"}, headers=edge.driver("j1")).status_code == 403
    )
    bad_reports: list[Any] = [
        {"device_id": "j1"},  # no location
        {"device_id": "j1", "location": {"timestamp": T0, "coords": {"latitude": "49", "longitude": LNG}}},
        {"device_id": True, "location": {"timestamp": T0, "coords": {"latitude": LAT, "longitude": LNG}}},
        [1, 2],
    ]
    for bad in bad_reports:
        r = edge.client.post(url, json=bad, headers=edge.svc())
        assert r.status_code == 400 and r.json()["code"] == "InvalidPing", bad
    r = edge.client.post(url, content=b"{oops", headers=edge.svc() | {"content-type": "application/json"})
    assert r.status_code == 400
    assert edge.service.counts["accepted"] == 2 and edge.service.counts["invalid"] == 5


# -- WebSocket ----------------------------------------------------------------------------------------------


def test_websocket_acks_and_error_frames(edge: Edge) -> None:
    with edge.client.websocket_connect("/dispatch/v1/drivers/ws", headers=edge.driver("w1")) as ws:
        ws.send_json(jping(None, 0))  # driver_id defaults to the authenticated driver
        assert ws.receive_json() == {"seq": 0, "r": "accepted"}
        ws.send_text("{garbage")
        assert ws.receive_json()["error"] == "InvalidJson"
        ws.send_json(jping("w2", 1))
        assert ws.receive_json() == {
            "error": "Forbidden",
            "message": "not allowed to access this driver",
            "seq": 1,
        }
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_json()["error"] == "InvalidFrame"
        ws.send_json(jping(None, 2, accuracy=-1))
        assert ws.receive_json()["error"] == "InvalidPing"
        ws.send_text("x" * 20_000)
        assert ws.receive_json()["error"] == "InvalidFrame"
        ws.send_json(jping("w1", 0))
        assert ws.receive_json() == {"seq": 0, "r": "duplicate"}
        ws.send_json(jping("w1", 3))  # the connection survived every bad frame
        assert ws.receive_json() == {"seq": 3, "r": "accepted"}
    assert edge.service.counts["invalid"] == 4
    assert edge.service.counts["accepted"] == 2


def test_websocket_needs_credentials_and_scope(edge: Edge) -> None:
    with pytest.raises(WebSocketDisconnect) as exc, edge.client.websocket_connect("/dispatch/v1/drivers/ws"):
        pass
    assert exc.value.code == 1008
    with (
        pytest.raises(WebSocketDisconnect) as exc,
        edge.client.websocket_connect("/dispatch/v1/drivers/ws", headers=edge.rider("r1")),
    ):
        pass
    assert exc.value.code == 1008
    with edge.client.websocket_connect("/dispatch/v1/drivers/ws", headers=edge.svc()) as ws:
        ws.send_json(jping(None, 0))  # a service must name the driver
        assert ws.receive_json()["error"] == "InvalidPing"
        ws.send_json(jping("any", 0))
        assert ws.receive_json() == {"seq": 0, "r": "accepted"}


def test_router_settings_override_the_service_limits() -> None:
    service = IngestService(
        PingPipeline(), InMemoryDriverIndex(), settings=IngestSettings(), registry=CollectorRegistry()
    )
    app = FastAPI()
    app.include_router(build_ingest_router(service, IngestSettings(max_batch=1)))
    install_auth(app, AuthSettings(enabled=False))
    with TestClient(app) as client:
        r = client.post("/dispatch/v1/pings", json={"pings": [jping("a", 0), jping("b", 0)]})
        assert r.status_code == 413 and r.json()["code"] == "BatchTooLarge"
        r = client.post("/dispatch/v1/pings", json={"pings": [jping("a", 0)]})  # not started: dropped
        assert r.json() == {"accepted": 0, "results": [{"result": "dropped"}]}
