from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from hexcity.assistant import AssistantService, Viewer
from hexcity.assistant.mcp_server import McpSession, build_mcp_server

RIDER_SCOPES = frozenset({"orders:read", "orders:write", "payments:read", "payments:write", "trips:read"})


class FakeActions:
    def __init__(self) -> None:
        self.refunds: list[tuple[str, str, str]] = []

    def quote_ride(
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

    def request_refund(self, customer_id: str, order_id: str, reason: str) -> str:
        self.refunds.append((customer_id, order_id, reason))
        return f"RR-{len(self.refunds)}"


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
        "summary": "Refund request for order ORD-1042 (shipped): item broken",
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
