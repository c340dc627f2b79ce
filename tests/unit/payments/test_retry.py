"""Retry policy: injected write conflicts are retried with bounded jitter and re-validated."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from hexcity.infra.sql import make_engine
from hexcity.payments.adapters.sql_ledger import SqlLedger
from hexcity.payments.domain.ledger import Account, AccountKind, Overdraft, TransferRequest
from hexcity.payments.domain.retry import RetryPolicy
from hexcity.payments.errors import InsufficientFunds, LedgerBusy


class SerializationFailure(Exception):
    sqlstate = "40001"


def conflict() -> OperationalError:
    return OperationalError("UPDATE ...", {}, SerializationFailure("could not serialize access"))


def make_ledger(tmp_path: Path, conflicts: int, sleeps: list[float], between: object = None) -> SqlLedger:
    remaining = [conflicts]

    def fault(point: str) -> None:
        if point == "locked" and remaining[0] > 0:
            remaining[0] -= 1
            raise conflict()

    def sleep(delay_s: float) -> None:
        sleeps.append(delay_s)
        if callable(between):
            between()

    ledger = SqlLedger(
        make_engine(f"sqlite:///{tmp_path / 'retry.db'}"),
        retry=RetryPolicy(max_attempts=5, base_delay_s=0.025, max_delay_s=0.5),
        sleep=sleep,
        seed=3,
    )
    ledger.create_schema()
    ledger.create_accounts(
        [
            Account("ext", AccountKind.EXTERNAL_SETTLEMENT, "EUR", Overdraft.UNBOUNDED),
            Account("a", AccountKind.WALLET, "EUR"),
            Account("b", AccountKind.WALLET, "EUR"),
        ]
    )
    ledger.fault_hook = None
    ledger.transfer(TransferRequest("fund", "ext", "a", 100, "EUR"))
    ledger.fault_hook = fault
    return ledger


def test_conflict_is_retried_and_rules_are_rechecked(tmp_path: Path) -> None:
    sleeps: list[float] = []
    holder: dict[str, SqlLedger] = {}

    def drain() -> None:  # between attempts another client spends the money
        ledger = holder["ledger"]
        hook, ledger.fault_hook = ledger.fault_hook, None
        ledger.transfer(TransferRequest("drain", "a", "b", 90, "EUR"))
        ledger.fault_hook = hook

    holder["ledger"] = make_ledger(tmp_path, conflicts=1, sleeps=sleeps, between=drain)
    with pytest.raises(InsufficientFunds):  # the retry re-read the balance: no overdraft
        holder["ledger"].transfer(TransferRequest("t", "a", "b", 50, "EUR"))
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.025
    assert holder["ledger"].balances() == {"ext": -100, "a": 10, "b": 90}
    assert holder["ledger"].retries_total == 1


def test_retries_are_bounded_and_write_nothing(tmp_path: Path) -> None:
    sleeps: list[float] = []
    ledger = make_ledger(tmp_path, conflicts=100, sleeps=sleeps)
    with pytest.raises(LedgerBusy) as caught:
        ledger.transfer(TransferRequest("t", "a", "b", 50, "EUR"))
    assert caught.value.status == 503
    assert len(sleeps) == 4  # 5 attempts
    caps = [0.025, 0.05, 0.1, 0.2]
    assert all(0 <= delay <= cap for delay, cap in zip(sleeps, caps, strict=True))
    assert ledger.balances() == {"ext": -100, "a": 100, "b": 0} and ledger.transfer_by_id("t") is None


def test_policy_delays_are_full_jitter_and_capped() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.025, max_delay_s=0.5)
    rng = random.Random(1)
    delays = [policy.delay_s(attempt, rng) for attempt in range(1, 50) for _ in range(20)]
    assert max(delays) <= 0.5 and min(delays) >= 0
    assert max(policy.delay_s(10, rng) for _ in range(200)) > 0.4  # capped at 0.5, not below
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
