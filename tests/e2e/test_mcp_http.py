"""The assistant's MCP server over streamable HTTP, in the real app (``hexcity.api.create_app``: the
platform's auth middleware) served by uvicorn on a free port, driven by the SDK's own client
(``mcp.client.streamable_http``). Every request needs a bearer JWT (401 before any tool runs);
tools run as that caller with its scopes; refunds and quotes are real (SQLite stores, Andorra graph);
each component is an MCP App (``ui://hexcity/<name>/<version>``, ``text/html;profile=mcp-app``)
named in tool definitions and results."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from hexcity.api import create_app
from hexcity.assistant.http import build_assistant_router
from hexcity.infra.auth import AuthSettings, Role, TokenService, generate_api_key
from hexcity.platform import ModuleRuntime
from hexcity.routing import Limits, RoutingService
from tests.e2e.conftest import serve_in_thread
from tests.unit.assistant.conftest import build_service
from tests.unit.assistant.test_support_actions import (
    DROPOFF,
    ORDER_AMOUNT,
    PICKUP,
    RealPlatform,
    _refund_rows,
    build_real_platform,
    paid_order,
)

SERVICE_KEY, SERVICE_ENTRY = generate_api_key("mcp-e2e-svc", {"routing:read"})
AUTH = AuthSettings(
    jwt_issuer="mcp-e2e",
    jwt_audience="mcp-e2e-api",
    jwt_secret="mcp-e2e-" + "s" * 48,
    api_keys=[SERVICE_ENTRY],
)
TOKENS = TokenService.from_settings(AUTH)
APP_MIME = "text/html;profile=mcp-app"

pytestmark = pytest.mark.slow  # builds the Andorra car graph (once per session)


@dataclass
class Served:
    url: str
    platform: RealPlatform


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, graph_dir: Callable[[str, str], Path]
) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("mcp-http")
    platform = build_real_platform(work / "platform.db", graph_dir("andorra", "car"))
    paid_order(platform, "alice", "ORD-1042")
    paid_order(platform, "bob", "ORD-2000")
    router = build_assistant_router(build_service(), actions=platform.actions)

    @asynccontextmanager
    async def lifespan() -> Any:
        yield

    app = create_app(RoutingService(Limits()), AUTH, None, [ModuleRuntime("assistant", [router], lifespan)])
    with serve_in_thread(app, "mcp-e2e-uvicorn") as base:
        yield Served(f"{base}/assistant/v1/mcp", platform)
        platform.engine.dispose()


def token(subject: str, role: Role = Role.RIDER, scopes: set[str] | None = None) -> str:
    return TOKENS.issue(subject, role, scopes=scopes, ttl_s=600)


def session(
    url: str, bearer: str | None, work: Callable[[Client], Any], statuses: list[int] | None = None
) -> Any:
    """Runs ``work(client)`` in one SDK client session over streamable HTTP; ``statuses`` collects
    the HTTP status of every response the client saw."""

    async def seen(response: httpx2.Response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    async def go() -> Any:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30, event_hooks={"response": [seen]}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            return await work(client)

    return anyio.run(go)


def test_no_or_bad_token_is_401_before_any_tool_runs(served: Served) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search_help"}}
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic YTpi"}):
        raw = httpx.post(served.url, json=call, headers={**headers, "Accept": "application/json"}, timeout=10)
        assert raw.status_code == 401, raw.text
        assert raw.json()["code"] == "Unauthenticated"
        assert raw.headers["www-authenticate"].startswith('Bearer realm="hexcity"')
    service = httpx.post(served.url, json=call, headers={"X-API-Key": SERVICE_KEY}, timeout=10)
    assert (service.status_code, service.json()["code"]) == (403, "Forbidden")  # not a person

    async def tools(client: Client) -> Any:
        return await client.list_tools()

    for bearer, status in (
        (None, 401),
        ("x.y.z", 401),
        (TOKENS.issue("alice", Role.RIDER, ttl_s=1, now=time.time() - 3600), 401),  # expired
        (TOKENS.issue("svc", Role.SERVICE, ttl_s=600), 401),  # services use API keys, not JWTs
    ):
        statuses: list[int] = []
        with pytest.raises(BaseException) as refused:  # the SDK client surfaces the refusal
            session(served.url, bearer, tools, statuses)
        assert "Server returned an error response" in repr(refused.value)
        assert statuses and set(statuses) == {status}, (bearer, statuses)


def test_tools_run_as_the_token_s_caller_only(served: Served) -> None:
    async def work(client: Client) -> tuple[Any, Any, Any]:
        own = await client.call_tool("get_order_status", {"order_id": "ORD-1042"})
        other = await client.call_tool("get_order_status", {"order_id": "ORD-2000"})
        listed = await client.list_tools()
        return own, other, listed

    own, other, listed = session(served.url, token("alice"), work)
    assert not own.is_error and own.structured_content["status"] == "shipped"
    uri = "ui://hexcity/order-status-card/1.0.0"
    assert (own.meta["ui/resourceUri"], own.meta["ui"]) == (uri, {"resourceUri": uri})
    assert other.is_error and "RecordNotFound" in other.content[0].text
    assert other.structured_content is None and "delivered" not in str(other) and "SHP-9" not in str(other)
    tools = {t.name: t for t in listed.tools}
    assert tools["get_order_status"].meta["ui"] == {"resourceUri": uri}
    assert tools["quote_ride"].meta["ui/resourceUri"] == "ui://hexcity/fare-breakdown/1.0.0"

    bob = session(
        served.url, token("bob"), lambda c: c.call_tool("get_order_status", {"order_id": "ORD-2000"})
    )
    assert not bob.is_error and bob.structured_content["status"] == "delivered"
    no_scope = session(
        served.url,
        token("alice", scopes={"trips:read"}),
        lambda c: c.call_tool("get_order_status", {"order_id": "ORD-1042"}),
    )
    assert no_scope.is_error and "missing permission orders:read" in no_scope.content[0].text


def test_refund_over_http_needs_its_scope_and_confirmation_and_is_real(served: Served) -> None:
    args = {"order_id": "ORD-1042", "reason": "item damaged"}
    limited = session(
        served.url,
        token("alice", scopes={"orders:read", "trips:read"}),
        lambda c: c.call_tool("request_refund", args),
    )
    assert limited.is_error and "missing permission payments:write" in limited.content[0].text

    first = session(served.url, token("alice"), lambda c: c.call_tool("request_refund", args))
    step = first.structured_content
    assert step["state"] == "pending_confirmation" and _refund_rows(served.platform, "order:ORD-1042") == []
    # a new HTTP request (stateless transport), a new token of the same caller: the step survives
    confirm = {**args, "confirmation_token": step["confirmation_token"], "confirm": "CONFIRM"}
    stolen = session(served.url, token("bob"), lambda c: c.call_tool("request_refund", confirm))
    assert stolen.is_error and "RecordNotFound" in stolen.content[0].text
    done = session(served.url, token("alice"), lambda c: c.call_tool("request_refund", confirm))
    assert not done.is_error, done.content
    refund_id = done.structured_content["refund_request_id"]
    [refund] = _refund_rows(served.platform, "order:ORD-1042")
    assert (refund.id, refund.amount_minor) == (refund_id, ORDER_AMOUNT)
    replay = session(served.url, token("alice"), lambda c: c.call_tool("request_refund", confirm))
    assert replay.is_error  # the confirmation is spent
    assert len(_refund_rows(served.platform, "order:ORD-1042")) == 1


def test_quote_and_mcp_app_resources(served: Served) -> None:
    async def work(client: Client) -> tuple[Any, Any, Any]:
        quote = await client.call_tool(
            "quote_ride",
            {
                "pickup_lat": PICKUP[0],
                "pickup_lng": PICKUP[1],
                "dropoff_lat": DROPOFF[0],
                "dropoff_lng": DROPOFF[1],
                "product": "xl",
            },
        )
        resources = await client.list_resources()
        app = await client.read_resource("ui://hexcity/fare-breakdown/1.0.0")
        return quote, resources, app

    quote, resources, app = session(served.url, token("alice"), work)
    card = quote.structured_content["card"]
    assert card["component"] == "fare-breakdown@1.0.0" and card["props"]["product"] == "xl"
    assert card["props"]["total_cents"] >= 1200  # the xl minimum at least, from a real route
    assert quote.meta["ui/resourceUri"] == "ui://hexcity/fare-breakdown/1.0.0"
    apps = {str(r.uri): r for r in resources.resources if str(r.uri).startswith("ui://")}
    assert set(apps) == {
        "ui://hexcity/fare-breakdown/1.0.0",
        "ui://hexcity/order-status-card/1.0.0",
        "ui://hexcity/refund-form/1.0.0",
    }
    assert {r.mime_type for r in apps.values()} == {APP_MIME}
    [content] = app.contents
    assert content.mime_type == APP_MIME
    assert "Content-Security-Policy" in content.text and "default-src 'none'" in content.text
    assert '"key": "fare-breakdown@1.0.0"' in content.text
