"""The payment API, saga and campaign unit tests again on PostgreSQL and MariaDB, plus concurrent
retries with one idempotency key (0 double charges) and concurrent cashback against a budget."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import Engine
from tests.unit.payments.conftest import FakeClock, outbox_events
from tests.unit.payments.test_campaigns import *  # noqa: F403
from tests.unit.payments.test_sagas import *  # noqa: F403
from tests.unit.payments.test_service import *  # noqa: F403

from hexcity.kernel.events import Event
from hexcity.payments.adapters.sql_ledger import SqlLedger
from hexcity.payments.domain.accounts import driver_account, merchant_account, wallet_account
from hexcity.payments.domain.commands import Pay, TopUp
from hexcity.payments.domain.retry import RetryPolicy
from hexcity.payments.service import PaymentService
from hexcity.payments.settings import PaymentsSettings

pytestmark = pytest.mark.integration
W1, SHOP = "wallet:r1:EUR", "merchant:s1:EUR"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(sql_engine: Engine, clock: FakeClock) -> PaymentService:
    ledger = SqlLedger(
        sql_engine, clock=clock, retry=RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=0.1)
    )
    settings = PaymentsSettings(events_topic=f"payments.events.it-{uuid.uuid4().hex[:8]}")
    svc = PaymentService(ledger, settings, clock=clock)
    svc.create_schema()
    svc.open_accounts(
        [
            wallet_account("r1", "EUR"),
            wallet_account("r2", "EUR"),
            merchant_account("s1", "EUR"),
            driver_account("d1", "EUR"),
        ]
    )
    return svc


def test_concurrent_retries_with_one_key_charge_once(service: PaymentService) -> None:
    service.execute(TopUp(W1, 10_000, "EUR"), idempotency_key="fund", scope="r1")
    barrier = threading.Barrier(8)
    responses = []

    def client() -> None:
        barrier.wait()
        responses.append(service.execute(Pay(W1, SHOP, 700, "EUR"), idempotency_key="tap-1", scope="r1"))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.replayed for r in responses) == [False] + [True] * 7
    assert len({r.body["id"] for r in responses}) == 1
    assert service.account(W1).balance_minor == 9_300 and service.account(SHOP).balance_minor == 700
    assert [e["type"] for e in outbox_events(service)].count("payment.succeeded") == 1


def test_concurrent_cashback_never_passes_the_budget(service: PaymentService) -> None:
    service.campaigns.create("cc", "EUR", 5_000, cashback_bps=10_000, max_grant_minor=70, min_grant_minor=70)
    events = [
        Event(
            topic=service.topic,
            key=W1,
            payload={
                "type": "payment.succeeded",
                "id": f"pay_{i}",
                "payer_account_id": W1,
                "payee_account_id": SHOP,
                "amount_minor": 70,
                "currency": "EUR",
            },
        )
        for i in range(120)
    ]
    threads = [
        threading.Thread(target=lambda chunk=events[i::6]: [service.campaigns.handle(e) for e in chunk])
        for i in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert service.account(W1).balance_minor == 4_970  # 71 grants of 70; 30 left < 70
    assert service.campaigns.remaining_minor("cc") == 30
    assert service.campaigns.get("cc").status == "closed"
    assert [e["type"] for e in outbox_events(service)].count("campaign.exhausted") == 1
