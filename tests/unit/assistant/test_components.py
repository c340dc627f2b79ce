from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexcity.assistant.domain.components import ComponentSpec, OrderStatusCard, default_registry

CARD: dict[str, Any] = {
    "order_id": "ORD-1042",
    "status": "shipped",
    "items": [{"name": "Kettle", "quantity": 1, "price_cents": 2999}],
    "tracking_number": "TRK123",
    "estimated_delivery": "2026-11-26T14:00",
    "allowed_actions": ["track"],
    "aria_label": "Order ORD-1042 is shipped",
}
PAYLOADS = ["<script>alert(1)</script>", "javascript:alert(1)", "x onerror=alert(1)", "<svg onload=alert(1)>"]


def test_valid_card_renders_with_its_version() -> None:
    rendered = default_registry().render(
        "order-status-card", CARD, {"orders:read"}, "Order ORD-1042: shipped"
    )
    assert rendered.component == "order-status-card@1.0.0"
    assert rendered.props is not None and rendered.props["items"][0]["price_cents"] == 2999
    assert rendered.sandbox is None


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("path", [("order_id",), ("tracking_number",), ("aria_label",), ("items", 0, "name")])
def test_unsafe_props_render_only_the_fallback(payload: str, path: tuple[Any, ...]) -> None:
    props: Any = {**CARD, "items": [dict(CARD["items"][0])]}
    target = props
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = payload
    rendered = default_registry().render("order-status-card", props, {"orders:read"}, "fallback")
    assert (rendered.component, rendered.props, rendered.fallback_text) == (None, None, "fallback")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40), st.sampled_from(PAYLOADS))
def test_fuzzed_text_with_a_payload_is_always_rejected(prefix: str, payload: str) -> None:
    rendered = default_registry().render(
        "order-status-card", {**CARD, "aria_label": prefix + payload}, {"orders:read"}, "f"
    )
    assert rendered.component is None


def test_contract_limits() -> None:
    registry = default_registry()
    bad_props: list[dict[str, Any]] = [
        {"status": "lost"},
        {"items": [{"name": "x", "quantity": 0, "price_cents": 1}]},
        {"tracking_number": "x" * 51},
        {"estimated_delivery": "tomorrow"},
        {"allowed_actions": ["delete"]},
        {"unexpected": 1},
    ]
    for bad in bad_props:
        assert registry.render("order-status-card", {**CARD, **bad}, {"orders:read"}, "f").component is None


def test_refund_form_is_sandboxed_and_posts_internally() -> None:
    registry = default_registry()
    props = {
        "order_id": "ORD-1",
        "max_refund_cents": 500,
        "reasons": ["broken"],
        "submit_url": "/support/refunds",
        "aria_label": "Refund form",
    }
    perms = {"orders:read", "payments:write"}
    rendered = registry.render("refund-form", props, perms, "f")
    assert rendered.component == "refund-form@1.0.0"
    assert rendered.sandbox == "allow-scripts" and "allow-same-origin" not in rendered.sandbox
    for url in ["https://evil.example/steal", "//evil.example", "javascript:alert(1)"]:
        assert registry.render("refund-form", {**props, "submit_url": url}, perms, "f").component is None
    assert registry.render("refund-form", props, {"orders:read"}, "f").component is None


def test_registry_versions_and_permissions() -> None:
    registry = default_registry()
    registry.register(
        ComponentSpec(
            "order-status-card", "1.1.0", OrderStatusCard, frozenset({"orders:read"}), "trusted", "v1.1"
        )
    )
    assert registry.get("order-status-card").version == "1.1.0"
    assert registry.get("order-status-card", "1.0.0").version == "1.0.0"
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("order-status-card", "1.0.0"))
    with pytest.raises(ValueError, match="semver"):
        registry.register(ComponentSpec("Bad Name", "1", OrderStatusCard, frozenset(), "trusted", ""))
    names = [tool["name"] for tool in registry.to_mcp_tools({"trips:read"})]
    assert names == ["render_fare_breakdown"]
    assert "render_order_status_card" not in [t["name"] for t in registry.to_mcp_tools({"payments:write"})]
    for spec in registry.permitted({"orders:read", "payments:write", "trips:read"}):
        assert "aria_label" in spec.json_schema()["required"]
