"""HTTP metrics by route template, /metrics, runtime gauges, request ids, and the middleware's cost."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hexcity.infra import configure_logging, get_logger
from hexcity.infra.admin import install_observability
from hexcity.infra.metrics import (
    EventLoopLagMonitor,
    MetricsMiddleware,
    http_metrics,
    metrics_endpoint,
    register_runtime_metrics,
)
from hexcity.infra.request_id import RequestIdMiddleware, valid_request_id

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what the project pins
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROUTE = "/route/v1/{profile}/{coordinates:path}"


async def _route(request: Request) -> Response:
    get_logger("test").info("routed", profile=request.path_params["profile"])
    return JSONResponse({"code": "Ok"})


async def _busy(_: Request) -> Response:
    return JSONResponse({"code": "Overloaded"}, 429, headers={"Retry-After": "1"})


async def _bad(_: Request) -> Response:
    return JSONResponse({"code": "InvalidQuery"}, 400)


async def _boom(_: Request) -> Response:
    raise RuntimeError("boom")


def _app(registry: CollectorRegistry, monitor: EventLoopLagMonitor | None = None) -> Starlette:
    app = Starlette(
        routes=[
            Route(ROUTE, _route),
            Route("/busy", _busy),
            Route("/bad", _bad),
            Route("/boom", _boom),
            metrics_endpoint(registry),
        ]
    )
    app.add_middleware(MetricsMiddleware, registry=registry, lag_monitor=monitor)
    app.add_middleware(RequestIdMiddleware)
    return app


def _count(registry: CollectorRegistry, route: str, status: str, method: str = "GET") -> float | None:
    return registry.get_sample_value(
        "http_requests_total", {"method": method, "route": route, "status": status}
    )


def test_counts_by_route_template_never_raw_url() -> None:
    registry = CollectorRegistry()
    client = TestClient(_app(registry), raise_server_exceptions=False)
    for coords in ("8.6,49.4;8.7,49.41", "8.6,49.4;8.8,49.5", "1,2;3,4"):
        assert client.get(f"/route/v1/car/{coords}").status_code == 200
    assert client.get("/route/v1/bike/1,2;3,4").status_code == 200
    assert client.get("/no/such/path").status_code == 404
    assert client.post("/busy").status_code == 405
    assert client.get("/busy").status_code == 429
    assert client.get("/bad").status_code == 400
    assert client.get("/boom").status_code == 500

    assert _count(registry, ROUTE, "200") == 4
    assert _count(registry, "<unmatched>", "404") == 1
    assert _count(registry, "/busy", "405", method="POST") == 1
    assert _count(registry, "/busy", "429") == 1
    assert _count(registry, "/boom", "500") == 1
    labels = {"method": "GET", "route": ROUTE}
    assert registry.get_sample_value("http_request_duration_seconds_count", labels) == 4
    assert registry.get_sample_value("http_request_duration_seconds_sum", labels) > 0
    rejected = {
        reason: registry.get_sample_value("http_requests_rejected_total", {"reason": reason})
        for reason in ("not_found", "method_not_allowed", "overloaded", "invalid_request")
    }
    assert rejected == {"not_found": 1, "method_not_allowed": 1, "overloaded": 1, "invalid_request": 1}
    assert registry.get_sample_value("http_requests_in_flight") == 0

    text = client.get("/metrics").text
    assert f'route="{ROUTE}"' in text
    assert "8.6,49.4" not in text and "/no/such/path" not in text


def test_metrics_endpoint_exposition_format() -> None:
    registry = CollectorRegistry()
    client = TestClient(_app(registry))
    client.get("/route/v1/car/1,2;3,4")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE http_requests_total counter" in response.text
    assert "# TYPE http_request_duration_seconds histogram" in response.text


def test_unknown_methods_are_bucketed() -> None:
    registry = CollectorRegistry()
    client = TestClient(_app(registry))
    client.request("PROPFIND", "/busy")
    assert _count(registry, "/busy", "405", method="OTHER") == 1


def test_http_metrics_are_one_family_per_registry() -> None:
    registry = CollectorRegistry()
    assert http_metrics(registry) is http_metrics(registry)


def test_runtime_metrics_registered_once() -> None:
    registry = CollectorRegistry()
    register_runtime_metrics(registry)
    register_runtime_metrics(registry)  # idempotent
    rss = registry.get_sample_value("process_resident_memory_bytes")
    assert rss is not None and rss > 10 * 2**20
    assert registry.get_sample_value("process_memory_limit_bytes") is not None


def test_event_loop_lag_monitor_sees_a_blocked_loop() -> None:
    registry = CollectorRegistry()
    monitor = EventLoopLagMonitor(registry, interval_s=0.05)

    async def scenario() -> None:
        monitor.start()
        monitor.start()  # idempotent
        await asyncio.sleep(0.02)
        time.sleep(0.2)  # block the loop
        await asyncio.sleep(0.1)
        assert monitor.running
        await monitor.stop()
        assert not monitor.running

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert registry.get_sample_value("event_loop_lag_seconds_count") >= 1
    assert registry.get_sample_value("event_loop_lag_seconds_sum") >= 0.1


def test_lifespan_starts_and_stops_the_lag_monitor() -> None:
    registry = CollectorRegistry()
    monitor = EventLoopLagMonitor(registry, interval_s=0.05)
    with TestClient(_app(registry, monitor)) as client:
        client.get("/busy")
        assert monitor.running
    assert not monitor.running


def test_lag_interval_is_bounded() -> None:
    with pytest.raises(ValueError):
        EventLoopLagMonitor(CollectorRegistry(), interval_s=0)


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        (b"abc-123_X.y", True),
        (b"a" * 128, True),
        (b"a" * 129, False),
        (b"", False),
        (b"has space", False),
        (b"inject\nline", False),
        ("ünï".encode(), False),
    ],
)
def test_request_id_validation(raw: bytes, ok: bool) -> None:
    assert valid_request_id(raw) is ok


@pytest.fixture
def json_logs() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO", json=True)
    try:
        yield
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = saved[0], saved[1]


@pytest.mark.usefixtures("json_logs")
def test_request_id_echoed_replaced_and_logged(capsys: pytest.CaptureFixture[str]) -> None:
    client = TestClient(_app(CollectorRegistry()))
    response = client.get("/route/v1/car/1,2;3,4", headers={"X-Request-ID": "req-42.a_b"})
    assert response.headers["x-request-id"] == "req-42.a_b"
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    routed = [line for line in lines if line.get("event") == "routed"]
    assert routed and routed[-1]["request_id"] == "req-42.a_b"

    bad = client.get("/busy", headers={"X-Request-ID": "x" * 129})
    fresh = bad.headers["x-request-id"]
    assert len(fresh) == 32 and fresh != "x" * 129
    made = client.get("/busy").headers["x-request-id"]
    assert len(made) == 32 and made != fresh
    # the id is unbound after the request
    get_logger("test").info("after")
    after = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert "request_id" not in after[-1]


def test_install_observability_on_a_fastapi_app() -> None:
    registry = CollectorRegistry()
    app = FastAPI()

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.router.routes[:0] = [Route(ROUTE, _route)]  # a plain Starlette route, as api.py does
    install_observability(app, registry)
    with TestClient(app) as client:
        assert client.get("/route/v1/car/1,2;3,4").status_code == 200
        assert client.get("/health/live").headers["x-request-id"]
        client.get("/items/1")
        client.get("/items/2")
        assert client.get("/items/notanint").status_code == 422
        text = client.get("/metrics").text
    assert _count(registry, "/items/{item_id}", "200") == 2
    assert _count(registry, ROUTE, "200") == 1
    assert registry.get_sample_value("http_requests_rejected_total", {"reason": "validation"}) == 1
    assert 'route="/items/{item_id}"' in text
    assert "event_loop_lag_seconds" in text and "process_resident_memory_bytes" in text


def _overhead_per_request_us(n: int = 20_000) -> tuple[float, float]:
    """Mean cost of a bare ASGI call, with and without both middlewares, in microseconds."""

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    class _Route:
        path = ROUTE

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = _Route  # what the router does on a match
        await endpoint(scope, receive, send)

    wrapped = RequestIdMiddleware(MetricsMiddleware(app, CollectorRegistry()))

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(_: Any) -> None:
        return None

    def scope() -> dict[str, Any]:
        return {"type": "http", "method": "GET", "path": "/route/v1/car/1,2;3,4", "headers": []}

    async def run(target: Any) -> float:
        for _ in range(1000):  # warm up the label cache
            await target(scope(), receive, send)
        start = time.perf_counter()
        for _ in range(n):
            await target(scope(), receive, send)
        return (time.perf_counter() - start) / n * 1e6

    async def both() -> tuple[float, float]:
        return await run(app), await run(wrapped)

    return asyncio.run(both())


def test_middleware_overhead_is_well_under_50_microseconds() -> None:
    bare, wrapped = min((_overhead_per_request_us() for _ in range(3)), key=lambda r: r[1] - r[0])
    assert wrapped - bare < 50, f"overhead {wrapped - bare:.1f} µs"
