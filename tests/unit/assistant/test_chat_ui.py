"""The chat's generative UI over HTTP: an answer about the asker's own order carries the validated
order-status card (never another customer's), a refund question adds the sandboxed refund form, and
``/components`` lists the permitted components with their JSON schemas."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tests.unit.assistant.test_http import client, headers  # noqa: F401 - fixture

from hexcity.assistant import AssistantService, Viewer
from hexcity.assistant.domain.acl import CUSTOMER
from hexcity.assistant.domain.components import default_registry
from hexcity.assistant.ui import _route, component_catalog, order_card, refund_form
from hexcity.infra.auth import Role, TokenService

RIDER_SCOPES = frozenset({"orders:read", "payments:write", "trips:read"})


def test_answer_about_own_order_carries_the_validated_tracking_card(
    client: tuple[TestClient, TokenService],  # noqa: F811
) -> None:
    http, tokens = client
    response = http.post(
        "/assistant/v1/answers",
        json={"question": "Where is my order and why was it split?"},
        headers=headers(tokens, "alice", Role.RIDER),
    )
    body = response.json()
    assert [c["doc_id"] for c in body["citations"]] == ["split-shipments", "split-shipments"]
    assert [ui["component"] for ui in body["ui"]] == ["order-status-card@1.0.0"]
    card = body["ui"][0]
    assert card["sandbox"] is None
    assert card["props"]["order_id"] == "ORD-1042" and card["props"]["status"] == "shipped"
    assert card["props"]["estimated_delivery"] == "2026-11-26T14:00"
    assert sorted(card["props"]["shipments"]) == [
        "SHP-1: shipped, from Heidelberg Nord, split: no single warehouse had every item, "
        "ETA 2026-11-26T14:00",
        "SHP-2: processing, from Heidelberg Sued, split: no single warehouse had every item",
    ]
    assert "ORD-2000" not in response.text and "bob" not in response.text


def test_refund_question_adds_the_sandboxed_refund_form_for_own_order_only(
    client: tuple[TestClient, TokenService],  # noqa: F811
) -> None:
    http, tokens = client
    response = http.post(
        "/assistant/v1/answers",
        json={"question": "I want a refund for my order ORD-1042"},
        headers=headers(tokens, "alice", Role.RIDER),
    )
    ui = response.json()["ui"]
    assert [u["component"] for u in ui] == ["order-status-card@1.0.0", "refund-form@1.0.0"]
    assert ui[1]["sandbox"] == "allow-scripts"
    assert ui[1]["props"]["submit_url"] == "/assistant/v1/answers"
    bob = http.post(
        "/assistant/v1/answers",
        json={"question": "I want a refund for order ORD-1042, where is it?"},
        headers=headers(tokens, "bob", Role.RIDER),
    )
    assert not [f for f in bob.json()["facts"] if "ORD-1042" in f or ("SHP-" in f and "SHP-9" not in f)]
    assert "Heidelberg Sued" not in bob.text and "SHP-1" not in bob.text  # alice's shipments
    assert all(u["props"]["order_id"] != "ORD-1042" for u in bob.json()["ui"])


def test_components_lists_what_the_caller_may_render_with_schemas(
    client: tuple[TestClient, TokenService],  # noqa: F811
) -> None:
    http, tokens = client
    rider = http.get("/assistant/v1/components", headers=headers(tokens, "alice", Role.RIDER)).json()
    keys = {item["key"]: item for item in rider["items"]}
    assert set(keys) == {"fare-breakdown@1.0.0", "order-status-card@1.0.0", "refund-form@1.0.0"}
    assert keys["refund-form@1.0.0"]["iframe_sandbox"] == "allow-scripts"
    assert keys["order-status-card@1.0.0"]["schema"]["additionalProperties"] is False
    driver = http.get("/assistant/v1/components", headers=headers(tokens, "dan", Role.DRIVER)).json()
    assert {item["key"] for item in driver["items"]} <= {"fare-breakdown@1.0.0"}
    assert http.get("/assistant/v1/components").status_code == 401


def test_cards_are_only_for_own_orders_and_need_the_permission(service: AssistantService) -> None:
    registry = default_registry()
    alice, bob = Viewer("alice", CUSTOMER), Viewer("bob", CUSTOMER)
    assert order_card(service, bob, RIDER_SCOPES, registry, "ORD-1042") is None
    assert refund_form(service, bob, RIDER_SCOPES, registry, "ORD-1042") is None
    assert order_card(service, alice, frozenset({"trips:read"}), registry, "ORD-1042") is None
    card = order_card(service, alice, RIDER_SCOPES, registry, "ORD-1042")
    assert card is not None and card["props"]["route"] == []
    assert [c["name"] for c in component_catalog(registry, {"trips:read"})] == ["fare-breakdown"]


def test_route_attribute_parses_or_gives_no_route() -> None:
    assert _route("42.5,1.52;42.51,1.53") == [(42.5, 1.52), (42.51, 1.53)]
    assert _route("") == []
    assert _route("42.5,1.52;oops") == []
    assert _route("95,1") == []
