from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.apps import APP_MIME_TYPE

from hexcity.assistant import AssistantService, Viewer
from hexcity.assistant.domain.components import default_registry
from hexcity.assistant.mcp_server import McpSession, build_mcp_server
from hexcity.assistant.ports import RefundResult

RIDER_SCOPES = frozenset({"orders:read", "orders:write", "payments:read", "payments:write", "trips:read"})


class FakeActions:
    def __init__(self) -> None:
        self.refunds: list[tuple[str, str, str]] = []

    async def quote_ride(
        self, rider_id: str, pickup: tuple[float, float], dropoff: tuple[float, float], product: str
    ) -> dict[str, int | float | str]:
        return {
            "quote_id": "Q-1",
            "product": product,
            "base_fare_cents": 1200,
            "surge_multiplier": 1.5,
            "total_cents": 1800,
            "platform_fee_cents": 270,
            "valid_for_s": 60,
        }

    async def refundable_cents(self, customer_id: str, order_id: str) -> int:
        return 2500

    async def request_refund(
        self,
        customer_id: str,
        order_id: str,
        reason: str,
        *,
        amount_cents: int = 0,
        idempotency_key: str | None = None,
    ) -> RefundResult:
        self.refunds.append((customer_id, order_id, reason))
        return RefundResult(
            f"RR-{len(self.refunds)}", order_id, "order:" + order_id, 2500, "EUR", "succeeded"
        )


async def _call(server: Any, name: str, arguments: dict[str, Any]) -> Any:
    async with Client(server) as client:
        return await client.call_tool(name, arguments)


def call(server: Any, name: str, arguments: dict[str, Any]) -> Any:
    return anyio.run(_call, server, name, arguments)


def server_for(
    service: AssistantService,
    subject: str = "alice",
    scopes: frozenset[str] = RIDER_SCOPES,
    actions: FakeActions | None = None,
) -> Any:
    return build_mcp_server(
        service, McpSession(Viewer(subject, "customer"), scopes), actions or FakeActions()
    )


def test_tool_list_and_schemas(service: AssistantService) -> None:
    async def listing() -> Any:
        async with Client(server_for(service)) as client:
            return await client.list_tools()

    tools = {tool.name: tool for tool in anyio.run(listing).tools}
    assert sorted(tools) == [
        "answer",
        "explain_charge",
        "get_order_status",
        "list_components",
        "quote_ride",
        "request_refund",
        "search_help",
    ]
    assert tools["request_refund"].annotations.destructive_hint is True
    assert tools["answer"].output_schema["properties"]["citations"]["type"] == "array"
    assert set(tools["get_order_status"].output_schema["required"]) == {"order_id", "status", "shipments"}


def test_answer_has_citations_and_an_order_card(service: AssistantService) -> None:
    result = call(server_for(service), "answer", {"question": "where is my order and why was it split?"})
    assert not result.is_error
    data = result.structured_content
    assert [c["doc_id"] for c in data["citations"]] == ["split-shipments", "split-shipments"]
    assert data["ui"]["component"] == "order-status-card@1.0.0"
    assert data["ui"]["props"]["order_id"] == "ORD-1042"
    assert data["ui"]["props"]["shipments"] == [
        "SHP-1: shipped, from Heidelberg Nord, ETA 2026-11-26T14:00",
        "SHP-2: processing, from Heidelberg Sued",
    ]


def test_order_status_is_owner_only(service: AssistantService) -> None:
    own = call(server_for(service), "get_order_status", {"order_id": "ORD-1042"})
    assert own.structured_content["status"] == "shipped"
    other = call(server_for(service), "get_order_status", {"order_id": "ORD-2000"})
    assert other.is_error and "no order 'ORD-2000' on your account" in other.content[0].text
    no_scope = call(
        server_for(service, scopes=frozenset({"trips:read"})), "get_order_status", {"order_id": "ORD-1042"}
    )
    assert no_scope.is_error and "missing permission orders:read" in no_scope.content[0].text


def test_refund_needs_confirmation(service: AssistantService) -> None:
    actions = FakeActions()
    server = server_for(service, actions=actions)

    async def flow() -> tuple[Any, Any, Any]:
        async with Client(server) as client:
            first = await client.call_tool(
                "request_refund", {"order_id": "ORD-1042", "reason": "item broken"}
            )
            token = first.structured_content["confirmation_token"]
            unconfirmed = await client.call_tool(
                "request_refund",
                {"order_id": "ORD-1042", "reason": "item broken", "confirmation_token": token},
            )
            done = await client.call_tool(
                "request_refund",
                {
                    "order_id": "ORD-1042",
                    "reason": "item broken",
                    "confirmation_token": token,
                    "confirm": "CONFIRM",
                },
            )
            return first, unconfirmed, done

    first, unconfirmed, done = anyio.run(flow)
    assert first.structured_content["state"] == "pending_confirmation"
    assert unconfirmed.is_error
    assert done.structured_content == {
        "state": "submitted",
        "order_id": "ORD-1042",
        "summary": "Refund request for order ORD-1042 (shipped): item broken (refunded 25.00 EUR)",
        "confirmation_token": None,
        "refund_request_id": "RR-1",
    }
    assert actions.refunds == [("alice", "ORD-1042", "item broken")]
    forged = call(
        server,
        "request_refund",
        {"order_id": "ORD-1042", "reason": "x", "confirmation_token": "f" * 32, "confirm": "CONFIRM"},
    )
    assert forged.is_error and actions.refunds == [("alice", "ORD-1042", "item broken")]


def test_components_follow_permissions(service: AssistantService) -> None:
    full = call(server_for(service), "list_components", {})
    assert {tool["name"] for tool in full.structured_content["result"]} == {
        "render_order_status_card",
        "render_fare_breakdown",
        "render_refund_form",
    }
    limited = call(server_for(service, scopes=frozenset({"trips:read"})), "list_components", {})
    assert [tool["name"] for tool in limited.structured_content["result"]] == ["render_fare_breakdown"]


def test_quote_card_and_articles(service: AssistantService) -> None:
    quote = call(
        server_for(service),
        "quote_ride",
        {
            "pickup_lat": 49.4,
            "pickup_lng": 8.69,
            "dropoff_lat": 49.41,
            "dropoff_lng": 8.7,
            "product": "comfort",
        },
    )
    assert quote.structured_content["card"]["component"] == "fare-breakdown@1.0.0"
    assert quote.structured_content["text"] == "Your comfort ride costs 18.00 (surge 1.5x)."

    async def read(uri: str) -> Any:
        async with Client(server_for(service)) as client:
            return await client.read_resource(uri)

    article = anyio.run(read, "kb://articles/refunds")
    assert article.contents[0].text.startswith("# Refunds for orders and rides")
    with pytest.raises(BaseException) as caught:  # the client surfaces the server's -32602 error
        anyio.run(read, "kb://articles/refund-abuse-policy")
    assert "-32602, 'kb://articles/refund-abuse-policy'" in repr(caught.value)


def test_every_component_is_an_mcp_app_named_by_tools_and_results(service: AssistantService) -> None:
    async def flow() -> tuple[Any, Any, Any, Any]:
        async with Client(server_for(service)) as client:
            resources = await client.list_resources()
            app = await client.read_resource("ui://hexcity/refund-form/1.0.0")
            tools = await client.list_tools()
            status = await client.call_tool("get_order_status", {"order_id": "ORD-1042"})
            return resources, app, tools, status

    resources, app, tools, status = anyio.run(flow)
    apps = {str(r.uri): r.mime_type for r in resources.resources if str(r.uri).startswith("ui://")}
    assert apps == {
        "ui://hexcity/fare-breakdown/1.0.0": APP_MIME_TYPE,
        "ui://hexcity/order-status-card/1.0.0": APP_MIME_TYPE,
        "ui://hexcity/refund-form/1.0.0": APP_MIME_TYPE,
    }
    [content] = app.contents
    html = content.text
    assert content.mime_type == "text/html;profile=mcp-app"
    # the registry's JSON schema is the app's contract, embedded as inert JSON
    spec = json.loads(html.split('<script type="application/json" id="spec">')[1].split("</script>")[0])
    assert spec["key"] == "refund-form@1.0.0"
    assert spec["schema"] == default_registry().get("refund-form").json_schema()
    # strict CSP: the one inline script is allowed by its hash, nothing else (no network, no eval)
    script = html.split("<script>")[1].split("</script>")[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html and "connect-src 'none'" in html
    assert "unsafe-eval" not in html and "innerHTML" not in script
    definitions = {tool.name: tool.meta or {} for tool in tools.tools}
    assert definitions["get_order_status"]["ui"] == {"resourceUri": "ui://hexcity/order-status-card/1.0.0"}
    assert definitions["request_refund"]["ui/resourceUri"] == "ui://hexcity/refund-form/1.0.0"
    assert "ui" not in definitions["search_help"]
    assert status.meta["ui/resourceUri"] == "ui://hexcity/order-status-card/1.0.0"
    assert status.structured_content["card"]["component"] == "order-status-card@1.0.0"
    assert json.loads(status.content[0].text) == status.structured_content  # the text fallback


def test_list_components_names_each_app_resource(service: AssistantService) -> None:
    listed = call(server_for(service), "list_components", {}).structured_content["result"]
    assert {tool["name"]: tool["resourceUri"] for tool in listed} == {
        "render_fare_breakdown": "ui://hexcity/fare-breakdown/1.0.0",
        "render_order_status_card": "ui://hexcity/order-status-card/1.0.0",
        "render_refund_form": "ui://hexcity/refund-form/1.0.0",
    }


def test_a_resolver_session_serves_each_call_as_its_current_caller(service: AssistantService) -> None:
    callers = [McpSession(Viewer("alice", "customer"), RIDER_SCOPES)]
    server = build_mcp_server(service, lambda: callers[-1], FakeActions())

    async def flow() -> tuple[Any, Any]:
        async with Client(server) as client:
            alice = await client.call_tool("get_order_status", {"order_id": "ORD-1042"})
            callers.append(McpSession(Viewer("bob", "customer"), RIDER_SCOPES))
            bob = await client.call_tool("get_order_status", {"order_id": "ORD-1042"})
            return alice, bob

    alice, bob = anyio.run(flow)
    assert not alice.is_error and bob.is_error and "RecordNotFound" in bob.content[0].text
