"""``/assistant/v1`` with the real support actions (SQLite stores, Andorra road graph): a fare
question gets the fare card of a real quote, a refund question the refund form with what payments
has left, and the form's submit (``POST /actions/refund``) refunds through payments, once per key."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
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

from hexcity.assistant.http import build_assistant_router
from hexcity.dispatch.domain.trips import Trip
from hexcity.infra.auth import AuthSettings, Role, TokenService, install_auth

Client = tuple[TestClient, TokenService, RealPlatform]

pytestmark = pytest.mark.slow  # builds the Andorra car graph (once per session)


@pytest.fixture
def client(tmp_path: Path, graph_dir: Callable[[str, str], Path]) -> Iterator[Client]:
    platform = build_real_platform(tmp_path / "platform.db", graph_dir("andorra", "car"))
    paid_order(platform, "alice", "ORD-1042")
    paid_order(platform, "bob", "ORD-2000")
    auth = AuthSettings(jwt_issuer="t", jwt_audience="t-api", jwt_secret=secrets.token_urlsafe(48))
    app = FastAPI()
    app.include_router(build_assistant_router(build_service(), actions=platform.actions))
    install_auth(app, auth)
    with TestClient(app) as test_client:
        yield test_client, TokenService.from_settings(auth), platform
    platform.engine.dispose()


def auth(tokens: TokenService, subject: str, role: Role = Role.RIDER, *, key: bool = False) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {tokens.issue(subject, role, ttl_s=600)}"}
    return {**headers, **KEY} if key else headers


RIDE = {"pickup": list(PICKUP), "dropoff": list(DROPOFF), "product": "standard"}


def test_fare_question_carries_the_card_of_a_real_quote(client: Client) -> None:
    http, tokens, platform = client
    response = http.post(
        "/assistant/v1/answers",
        json={"question": "How much will my ride cost with surge?", "ride": RIDE},
        headers=auth(tokens, "alice"),
    )
    assert response.status_code == 200, response.text
    [card] = [u for u in response.json()["ui"] if u["component"] == "fare-breakdown@1.0.0"]
    props = card["props"]
    assert card["sandbox"] is None
    assert props["quote_id"].startswith("q_") and props["product"] == "standard"

    # the card's numbers are the stored quote's: a trip requested from it is priced the same
    async def request() -> Trip:
        return await platform.dispatch.request("alice", props["quote_id"])

    trip = anyio.run(request)
    assert props["total_cents"] == trip.fare_cents
    assert props["surge_multiplier"] == float(trip.multiplier)
    assert props["platform_fee_cents"] == trip.fare_cents * 1500 // 10_000
    assert props["aria_label"] == (
        f"Your standard ride costs {trip.fare_cents / 100:.2f} (surge {props['surge_multiplier']}x)."
    )
    # no ride, or a question that is not about the fare: no quote is made
    plain = http.post(
        "/assistant/v1/answers", json={"question": "How much is the fare?"}, headers=auth(tokens, "alice")
    )
    assert all(u["component"] != "fare-breakdown@1.0.0" for u in plain.json()["ui"])
    # the ride is validated like any input
    bad = http.post(
        "/assistant/v1/answers",
        json={"question": "fare?", "ride": {**RIDE, "pickup": [91, 0]}},
        headers=auth(tokens, "alice"),
    )
    assert bad.status_code == 422


def test_refund_form_then_submit_refunds_through_payments_once(client: Client) -> None:
    http, tokens, platform = client
    asked = http.post(
        "/assistant/v1/answers",
        json={"question": "I want a refund for my order ORD-1042"},
        headers=auth(tokens, "alice"),
    ).json()
    [form] = [u for u in asked["ui"] if u["component"] == "refund-form@1.0.0"]
    assert form["sandbox"] == "allow-scripts"
    assert form["props"]["max_refund_cents"] == ORDER_AMOUNT
    assert form["props"]["submit_url"] == "/assistant/v1/actions/refund"

    body = {"order_id": "ORD-1042", "reason": "item damaged", "confirmed": True}
    first = http.post(form["props"]["submit_url"], json=body, headers=auth(tokens, "alice", key=True))
    assert first.status_code == 201, first.text
    done = first.json()
    refund = platform.payments.payment(done["refund_id"])
    assert (refund.kind, refund.amount_minor, refund.parent_id) == ("refund", ORDER_AMOUNT, "order:ORD-1042")
    assert done == {
        "refund_id": refund.id,
        "order_id": "ORD-1042",
        "payment_id": "order:ORD-1042",
        "amount_cents": ORDER_AMOUNT,
        "currency": "EUR",
        "status": "succeeded",
        "replayed": False,
        "text": f"Your refund {refund.id} of 25.00 EUR for order ORD-1042 is succeeded.",
    }
    again = http.post(form["props"]["submit_url"], json=body, headers=auth(tokens, "alice", key=True))
    assert again.status_code == 200 and again.json()["refund_id"] == refund.id and again.json()["replayed"]
    assert [r.id for r in _refund_rows(platform, "order:ORD-1042")] == [refund.id]
    # fully refunded: asking again shows no form any more
    later = http.post(
        "/assistant/v1/answers",
        json={"question": "I want a refund for my order ORD-1042"},
        headers=auth(tokens, "alice"),
    ).json()
    assert [u["component"] for u in later["ui"]] == ["order-status-card@1.0.0"]


KEY = {"Idempotency-Key": "chat-0001-abcdef"}


def test_refund_action_is_validated_and_owner_only(client: Client) -> None:
    http, tokens, platform = client
    url = "/assistant/v1/actions/refund"
    body = {"order_id": "ORD-1042", "reason": "other", "confirmed": True}
    stolen = http.post(url, json=body, headers=auth(tokens, "bob", key=True))
    assert (stolen.status_code, stolen.json()["code"]) == (404, "RecordNotFound")
    assert "alice" not in stolen.text
    no_key = http.post(url, json=body, headers=auth(tokens, "alice"))
    assert (no_key.status_code, no_key.json()["code"]) == (400, "IdempotencyKeyRequired")
    driver = http.post(url, json=body, headers=auth(tokens, "dan", Role.DRIVER, key=True))
    assert (driver.status_code, driver.json()["code"]) == (403, "NotPermitted")
    assert http.post(url, json=body, headers=KEY).status_code == 401
    for wrong in (
        {**body, "confirmed": False},
        {**body, "reason": "I just want money"},
        {**body, "order_id": "<script>"},
        {**body, "amount_cents": -1},
        {**body, "extra": 1},
    ):
        refused = http.post(url, json=wrong, headers=auth(tokens, "alice", key=True))
        assert refused.status_code == 422, wrong
    too_much = http.post(
        url, json={**body, "amount_cents": ORDER_AMOUNT + 1}, headers=auth(tokens, "alice", key=True)
    )
    assert (too_much.status_code, too_much.json()["code"]) == (409, "RefundExceedsPayment")
    assert _refund_rows(platform, "order:ORD-1042") == []
    assert platform.payments.payment("order:ORD-1042").refunded_minor == 0
