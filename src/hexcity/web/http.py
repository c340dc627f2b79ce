"""The dashboard's HTTP surface: page, vendored assets, roads GeoJSON, live SSE feed, demo token.

=================================  =============================================================
endpoint                           contract
=================================  =============================================================
``GET /dashboard``                 the page (public HTML; it calls the API with a bearer token)
``GET /web/static/{file}``         the page's assets, shipped in the package (public; no CDN)
``GET /web/v1/demo/token``         DEMO ONLY, loopback callers only: ``{"token", "expires_in_s"}``
                                   (404 when the server is not a demo, 403 from another host)
``GET /web/v1/demo/customer-token`` DEMO ONLY, loopback callers only: ``{"token", "subject",
                                   "expires_in_s"}`` of the demo customer (a rider) for the chat
``GET /web/v1/roads.geojson``      ``?profile=car``: the routing network's chains (``routing:read``)
``GET /web/v1/live``               SSE (``trips:read``): ``snapshot`` then one ``tick`` per second
``GET /web/v1/panels``             the panels and their state (``trips:read``)
=================================  =============================================================

The SSE stream is read by the page with ``fetch`` (so the token travels in the ``Authorization``
header, never in a URL). At most ``FeedLimits.max_subscribers`` streams: above, 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from hexcity.infra.auth import ROUTING_READ, Forbidden, Principal, require
from hexcity.infra.http import json_response
from hexcity.kernel import NotFound, Unavailable
from hexcity.routing import RoutingService
from hexcity.web.live import LiveFeed
from hexcity.web.roads import RoadsCache

__all__ = [
    "DEMO_CUSTOMER_TOKEN_PATH",
    "DEMO_TOKEN_PATH",
    "build_web_router",
    "static_files",
    "web_public_paths",
]

DASHBOARD_PATH = "/dashboard"
STATIC_PREFIX = "/web/static/"
DEMO_TOKEN_PATH = "/web/v1/demo/token"
DEMO_CUSTOMER_TOKEN_PATH = "/web/v1/demo/customer-token"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
TRIPS_READ = "trips:read"
DEMO_TOKEN_TTL_S = 3600
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def _static_root() -> Traversable:
    return resources.files("hexcity.web") / "static"


def static_files() -> dict[str, Traversable]:
    """Every shipped asset by its URL path below ``/web/static/`` (e.g. ``vendor/maplibre-gl/...``)."""
    out: dict[str, Traversable] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.rsplit(".", 1)[-1] in {"js", "css", "txt", "svg", "png"}:
                out[f"{prefix}{child.name}"] = child

    walk(_static_root(), "")
    return out


def web_public_paths() -> list[str]:
    """Paths that need no credentials: the page, its assets and the demo token endpoint.

    Add them to ``AuthSettings.public_paths`` (exact matches) when the dashboard is served.
    """
    return [
        DASHBOARD_PATH,
        DEMO_TOKEN_PATH,
        DEMO_CUSTOMER_TOKEN_PATH,
        *(STATIC_PREFIX + name for name in sorted(static_files())),
    ]


def build_web_router(
    routing: RoutingService,
    feed: LiveFeed,
    *,
    demo_token: Callable[[], str] | None = None,
    demo_customer: tuple[str, Callable[[], str]] | None = None,
) -> APIRouter:
    """The dashboard routes. ``demo_token`` (demo mode only) mints the page's API token;
    ``demo_customer`` (demo mode only) is ``(subject, mint)`` of the rider the support chat speaks for."""
    router = APIRouter(tags=["dashboard"])
    assets = {name: (node.read_bytes(), _media_type(name)) for name, node in static_files().items()}
    page = (_static_root() / "dashboard.html").read_bytes()
    roads = RoadsCache()
    live_reader = Depends(require(TRIPS_READ))
    road_reader = Depends(require(ROUTING_READ))

    @router.get(DASHBOARD_PATH, include_in_schema=False)
    async def dashboard() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    @router.get(STATIC_PREFIX + "{name:path}", include_in_schema=False)
    async def static(name: str) -> Response:
        asset = assets.get(name)
        if asset is None:
            raise NotFound(f"no asset {name}")
        return Response(asset[0], media_type=asset[1], headers={"Cache-Control": "public, max-age=3600"})

    @router.get(DEMO_TOKEN_PATH)
    async def token(request: Request) -> Response:
        if demo_token is None:
            raise NotFound("demo tokens exist only in demo mode")
        _loopback_only(request)
        return json_response({"token": demo_token(), "expires_in_s": DEMO_TOKEN_TTL_S})

    @router.get(DEMO_CUSTOMER_TOKEN_PATH)
    async def customer_token(request: Request) -> Response:
        if demo_customer is None:
            raise NotFound("demo customer tokens exist only in demo mode")
        _loopback_only(request)
        subject, mint = demo_customer
        return json_response({"token": mint(), "subject": subject, "expires_in_s": DEMO_TOKEN_TTL_S})

    @router.get("/web/v1/roads.geojson")
    async def roads_geojson(
        profile: Annotated[str, Query(min_length=1, max_length=16)] = "car",
        principal: Principal = road_reader,
    ) -> Response:
        del principal
        engine = routing.get(profile)  # UnknownProfile 400 / NotReady 503
        network = engine.engine.network
        body = await asyncio.to_thread(roads.get, engine.profile, engine.graph_version, network)
        headers = {"Cache-Control": "private, max-age=600"}
        return Response(body, media_type="application/geo+json", headers=headers)

    @router.get("/web/v1/panels")
    async def panels(principal: Principal = live_reader) -> Response:
        del principal
        return json_response(feed.panels.snapshot())

    @router.get("/web/v1/live")
    async def live(principal: Principal = live_reader) -> Response:
        del principal
        if feed.closed:
            raise Unavailable("the live feed is shutting down")
        if feed.subscriber_count >= feed.limits.max_subscribers:
            raise Unavailable(f"at most {feed.limits.max_subscribers} live streams")
        return StreamingResponse(
            _sse(feed),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


async def _sse(feed: LiveFeed) -> AsyncIterator[bytes]:
    try:
        async for frame in feed.frames():
            yield b"event: " + str(frame["type"]).encode() + b"\ndata: " + orjson.dumps(frame) + b"\n\n"
    except OverflowError:
        yield b'event: error\ndata: {"code":"Unavailable","message":"too many live streams"}\n\n'


def _loopback_only(request: Request) -> None:
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        raise Forbidden("demo tokens are given to loopback callers only")


def _media_type(name: str) -> str:
    suffix = "." + name.rsplit(".", 1)[-1]
    return _MEDIA_TYPES.get(suffix, "application/octet-stream")
