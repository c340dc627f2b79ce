"""Ledger fixtures on a file SQLite database (the embedded default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hexcity.infra.sql import make_engine
from hexcity.payments.adapters.sql_ledger import SqlLedger
from hexcity.payments.domain.accounts import driver_account, merchant_account, wallet_account
from hexcity.payments.domain.ledger import Account, AccountKind, Overdraft
from hexcity.payments.domain.retry import RetryPolicy
from hexcity.payments.service import PaymentService
from hexcity.payments.settings import PaymentsSettings


class FakeClock:
    def __init__(self, now_s: float = 1_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(tmp_path: Path, clock: FakeClock) -> SqlLedger:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    store = SqlLedger(
        engine, clock=clock, retry=RetryPolicy(max_attempts=3, base_delay_s=0.0, max_delay_s=0.0)
    )
    store.create_schema()
    store.create_accounts(
        [
            Account("ext", AccountKind.EXTERNAL_SETTLEMENT, "EUR", Overdraft.UNBOUNDED),
            Account("alice", AccountKind.WALLET, "EUR", owner_kind="rider", owner_id="r1"),
            Account("bob", AccountKind.WALLET, "EUR"),
            Account("shop", AccountKind.MERCHANT, "EUR", owner_kind="shop", owner_id="s1"),
            Account("credit", AccountKind.WALLET, "EUR", Overdraft.LIMITED, credit_limit_minor=500),
            Account("usd", AccountKind.WALLET, "USD"),
        ]
    )
    return store


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock) -> PaymentService:
    """A PaymentService on SQLite with rider r1/r2, shop s1, driver d1 accounts in EUR."""
    engine = make_engine(f"sqlite:///{tmp_path / 'payments.db'}")
    ledger = SqlLedger(
        engine, clock=clock, retry=RetryPolicy(max_attempts=3, base_delay_s=0.0, max_delay_s=0.0)
    )
    svc = PaymentService(ledger, PaymentsSettings(), clock=clock)
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


def outbox_events(svc: PaymentService) -> list[dict[str, object]]:
    """Payloads in the outbox, in insertion order."""
    from sqlalchemy import select

    from hexcity.infra.sql import outbox

    with svc.ledger.engine.connect() as conn:
        rows = conn.execute(select(outbox).where(outbox.c.topic == svc.topic).order_by(outbox.c.id))
        return [dict(r.payload) for r in rows]
