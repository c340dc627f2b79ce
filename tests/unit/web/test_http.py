"""The dashboard routes: public page and assets, demo token on loopback only, roads, live SSE."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import orjson
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hexcity.infra.auth import AuthSettings, Role, TokenService, install_auth
from hexcity.infra.auth.settings import DEFAULT_PUBLIC_PATHS
from hexcity.infra.bus import InProcessBus
from hexcity.infra.http import json_response
from hexcity.kernel import HexcityError, InvalidInput
from hexcity.routing import RoutingService
from hexcity.web import (
    DEMO_TOKEN_PATH,
    FeedLimits,
    LiveFeed,
    build_web_router,
    static_files,
    web_public_paths,
)

SECRET = "unit-web-secret-" + "x" * 32


class FakeNetwork:
    geom_offset = np.array([0, 2], dtype=np.int64)
    geom_lat = np.array([42.5, 42.51])
    geom_lon = np.array([1.52, 1.53])
    chain_name = np.array([0], dtype=np.int32)
    names = ("Carrer Major",)


class FakeEngine:
    profile = "car"
    graph_version = "v1"

    class engine:  # noqa: N801 - mirrors RoutingEngine.engine.network
        network = FakeNetwork()


class FakeRouting:
    def get(self, profile: str) -> FakeEngine:
        if profile != "car":
            raise InvalidInput(f"unknown profile {profile}")
        return FakeEngine()


def make_app(demo_token: Callable[[], str] | None) -> tuple[FastAPI, LiveFeed, TokenService]:
    auth = AuthSettings(
        jwt_secret=SECRET, demo_mode=True, public_paths=[*DEFAULT_PUBLIC_PATHS, *web_public_paths()]
    )
    feed = LiveFeed(InProcessBus(), FeedLimits(tick_s=0.05, max_subscribers=1))
    app = FastAPI()
    app.include_router(build_web_router(cast(RoutingService, FakeRouting()), feed, demo_token=demo_token))

    @app.exception_handler(HexcityError)
    async def error(_: Any, exc: HexcityError) -> Any:
        return json_response({"code": exc.code, "message": exc.message}, exc.status)

    install_auth(app, auth)
    return app, feed, TokenService.from_settings(auth)


def bearer(tokens: TokenService, scopes: set[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue('dashboard', Role.ADMIN, scopes=scopes, demo=True)}"}


def test_page_and_assets_are_public_and_the_page_is_labelled() -> None:
    app, _, _ = make_app(None)
    client = TestClient(app)
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    html = page.text
    for label in ('aria-label="City map"', 'for="route-from"', 'for="route-to"', 'id="events"', 'lang="en"'):
        assert label in html
    js = client.get("/web/static/vendor/maplibre-gl/maplibre-gl.js")
    assert js.status_code == 200 and js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert client.get("/web/static/vendor/maplibre-gl/LICENSE.txt").status_code == 200
    assert client.get("/web/static/nothing.js").status_code == 401  # not a shipped asset: not public
    assert set(static_files()) >= {"dashboard.js", "dashboard.css", "vendor/maplibre-gl/maplibre-gl.css"}


def test_demo_token_only_in_demo_mode_and_only_for_loopback() -> None:
    app, _, _ = make_app(lambda: "tok")
    assert TestClient(app, client=("127.0.0.1", 5000)).get(DEMO_TOKEN_PATH).json() == {
        "token": "tok",
        "expires_in_s": 3600,
    }
    remote = TestClient(app, client=("10.0.0.7", 5000)).get(DEMO_TOKEN_PATH)
    assert remote.status_code == 403
    not_demo, _, _ = make_app(None)
    assert TestClient(not_demo, client=("127.0.0.1", 5000)).get(DEMO_TOKEN_PATH).status_code == 404


def test_roads_need_routing_read_and_return_the_network() -> None:
    app, _, tokens = make_app(None)
    client = TestClient(app)
    assert client.get("/web/v1/roads.geojson").status_code == 401
    assert client.get("/web/v1/roads.geojson", headers=bearer(tokens, {"trips:read"})).status_code == 403
    r = client.get("/web/v1/roads.geojson?profile=car", headers=bearer(tokens, {"routing:read"}))
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    body = orjson.loads(r.content)
    assert body["bbox"] == [1.52, 42.5, 1.53, 42.51]
    assert [f["properties"]["name"] for f in body["features"]] == ["Carrer Major"]
    bad = client.get("/web/v1/roads.geojson?profile=boat", headers=bearer(tokens, {"routing:read"}))
    assert (bad.status_code, bad.json()["code"]) == (400, "InvalidInput")


def test_live_stream_starts_with_a_snapshot_and_is_authenticated() -> None:
    app, feed, tokens = make_app(None)
    client = TestClient(app)
    assert client.get("/web/v1/live").status_code == 401
    with client.stream("GET", "/web/v1/live", headers=bearer(tokens, {"trips:read"})) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines) == "event: snapshot"
        data = orjson.loads(next(lines).removeprefix("data: "))
        assert data["type"] == "snapshot"
        assert data["panels"]["fulfillment"]["state"] == "not_running"
        feed.close()


def test_live_refuses_while_shutting_down() -> None:
    app, feed, tokens = make_app(None)
    feed.close()
    r = TestClient(app).get("/web/v1/live", headers=bearer(tokens, {"trips:read"}))
    assert r.status_code == 503 and r.json()["code"] == "Unavailable"
