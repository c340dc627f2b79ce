"""Campaign cashback: hard budget, closes once, idempotent, off the payment path."""

from __future__ import annotations

import threading

import pytest
from tests.unit.payments.conftest import outbox_events

from hexcity.kernel.events import Event
from hexcity.payments.domain.commands import Pay, TopUp
from hexcity.payments.errors import CampaignNotFound, InvalidPaymentInput, InvalidPaymentState
from hexcity.payments.service import PaymentService

W1, W2, SHOP = "wallet:r1:EUR", "wallet:r2:EUR", "merchant:s1:EUR"


def paid_event(payment_id: str, amount: int, payer: str = W1) -> Event:
    payload = {
        "type": "payment.succeeded",
        "id": payment_id,
        "payer_account_id": payer,
        "payee_account_id": SHOP,
        "amount_minor": amount,
        "currency": "EUR",
    }
    return Event(topic="payments.events", key=payer, payload=payload)


def test_payment_succeeds_without_the_campaign_worker_then_cashback_arrives(service: PaymentService) -> None:
    service.campaigns.create("c1", "EUR", 1000, cashback_bps=2000, max_grant_minor=500)
    service.execute(TopUp(W1, 1000, "EUR"), idempotency_key="t", scope="r1")
    paid = service.execute(Pay(W1, SHOP, 600, "EUR"), idempotency_key="p", scope="r1")
    assert paid.status_code == 201 and service.account(W1).balance_minor == 400  # no reward yet
    event = next(e for e in outbox_events(service) if e["type"] == "payment.succeeded")
    grants = service.campaigns.handle(Event(topic="payments.events", key=W1, payload=event))
    assert [(g.amount_minor, g.status) for g in grants] == [(120, "granted")]
    assert service.account(W1).balance_minor == 520
    again = service.campaigns.handle(Event(topic="payments.events", key=W1, payload=event))
    assert [(g.amount_minor, g.status) for g in again] == [(120, "replayed")]
    assert service.account(W1).balance_minor == 520
    assert service.campaigns.remaining_minor("c1") == 880


def test_budget_is_never_exceeded_and_campaign_closes_once(service: PaymentService) -> None:
    service.campaigns.create("c2", "EUR", 1000, cashback_bps=10_000, max_grant_minor=300, min_grant_minor=150)
    events = [paid_event(f"pay_{i}", 300 if i % 3 else 150, W1 if i % 2 else W2) for i in range(40)]
    results: list[str] = []

    def worker(chunk: list[Event]) -> None:
        for event in chunk:
            results.extend(g.status for g in service.campaigns.handle(event))

    threads = [threading.Thread(target=worker, args=(events[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    granted = service.account(W1).balance_minor + service.account(W2).balance_minor
    assert granted <= 1000
    assert granted + service.campaigns.remaining_minor("c2") == 1000
    assert service.campaigns.remaining_minor("c2") == 100  # open until below the smallest grant (150)
    assert service.campaigns.get("c2").status == "closed"
    assert [e["type"] for e in outbox_events(service)].count("campaign.exhausted") == 1


def test_large_grant_refused_but_campaign_stays_open(service: PaymentService) -> None:
    service.campaigns.create("c3", "EUR", 250, cashback_bps=10_000, max_grant_minor=200, min_grant_minor=10)
    assert [g.status for g in service.campaigns.handle(paid_event("p1", 200))] == ["granted"]
    assert [g.status for g in service.campaigns.handle(paid_event("p2", 200))] == ["rejected"]
    assert service.campaigns.get("c3").status == "open"
    assert [g.status for g in service.campaigns.handle(paid_event("p3", 50))] == ["granted"]
    assert service.campaigns.get("c3").status == "closed"
    assert service.campaigns.handle(paid_event("p4", 50)) == []


def test_create_is_idempotent_and_refuses_other_terms(service: PaymentService) -> None:
    first = service.campaigns.create("c4", "EUR", 500, cashback_bps=100, max_grant_minor=50)
    assert service.campaigns.create("c4", "EUR", 500, cashback_bps=100, max_grant_minor=50) == first
    assert service.campaigns.remaining_minor("c4") == 500  # funded once
    with pytest.raises(InvalidPaymentState):
        service.campaigns.create("c4", "EUR", 500, cashback_bps=200, max_grant_minor=50)
    with pytest.raises(CampaignNotFound):
        service.campaigns.get("nope")


def test_malformed_event_raises_for_the_dead_letter_queue(service: PaymentService) -> None:
    bad = Event(topic="payments.events", key="x", payload={"type": "payment.succeeded", "id": 5})
    with pytest.raises(InvalidPaymentInput):
        service.campaigns.handle(bad)
    ignored = Event(topic="payments.events", key="x", payload={"type": "payout.succeeded"})
    assert service.campaigns.handle(ignored) == []
