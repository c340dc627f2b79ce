"""The ledger unit tests again, on real PostgreSQL and MariaDB (the MySQL dialect, for TiDB)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from tests.unit.payments.conftest import FakeClock
from tests.unit.payments.test_ledger import *  # noqa: F403 - re-run every ledger test here

from hexcity.payments.adapters.sql_ledger import SqlLedger
from hexcity.payments.domain.ledger import Account, AccountKind, Overdraft
from hexcity.payments.domain.retry import RetryPolicy

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(sql_engine: Engine, clock: FakeClock) -> SqlLedger:
    store = SqlLedger(
        sql_engine, clock=clock, retry=RetryPolicy(max_attempts=8, base_delay_s=0.01, max_delay_s=0.1)
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
