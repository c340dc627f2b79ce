"""The ledger rules on SQLite: double entry, idempotent ids, linked chains, two-phase, bad input."""

from __future__ import annotations

import threading

import pytest
from tests.unit.payments.conftest import FakeClock

from hexcity.payments.adapters.sql_ledger import SqlLedger
from hexcity.payments.domain.ledger import (
    MAX_AMOUNT_MINOR,
    Account,
    AccountKind,
    TransferKind,
    TransferRequest,
    TransferStatus,
)
from hexcity.payments.errors import (
    AccountExists,
    AccountNotFound,
    AmountExceedsPending,
    BalanceOverflow,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    InvalidPaymentInput,
    LinkedTransferFailed,
    OverdraftLimitExceeded,
    PendingTransferClosed,
    PendingTransferExpired,
    SameAccount,
    TransferExists,
)


def topup(ledger: SqlLedger, transfer_id: str, account: str, amount: int) -> None:
    ledger.transfer(TransferRequest(transfer_id, "ext", account, amount, "EUR"))


def snapshot(ledger: SqlLedger) -> tuple[dict[str, int], int]:
    with ledger.engine.connect() as conn:
        from sqlalchemy import func, select

        from hexcity.payments.adapters.tables import entries, transfers

        n = conn.execute(select(func.count()).select_from(transfers)).scalar_one()
        n += conn.execute(select(func.count()).select_from(entries)).scalar_one()
    return ledger.balances(), int(n)


def test_transfer_writes_two_entries_with_balance_after(ledger: SqlLedger) -> None:
    topup(ledger, "t1", "alice", 1000)
    ledger.transfer(TransferRequest("t2", "alice", "bob", 300, "EUR"))
    assert ledger.balances() == {"ext": -1000, "alice": 700, "bob": 300, "shop": 0, "credit": 0, "usd": 0}
    legs = [
        (e.transfer_id, e.leg_no, e.direction, e.amount_minor, e.balance_after_minor)
        for e in ledger.entries("alice")
    ]
    assert legs == [("t1", 1, "CREDIT", 1000, 1000), ("t2", 0, "DEBIT", 300, 700)]
    assert [(e.counterparty_id, e.account_seq) for e in ledger.entries("bob")] == [("alice", 1)]
    assert ledger.total_balance() == (0, 6)


def test_same_id_same_fields_replays_and_different_fields_conflict(ledger: SqlLedger) -> None:
    topup(ledger, "t1", "alice", 1000)
    first = ledger.transfer(TransferRequest("t2", "alice", "bob", 300, "EUR"))
    again = ledger.transfer_batch([TransferRequest("t2", "alice", "bob", 300, "EUR")])[0]
    assert again.replayed and again.transfer == first
    before = snapshot(ledger)
    with pytest.raises(TransferExists):
        ledger.transfer(TransferRequest("t2", "alice", "bob", 301, "EUR"))
    assert snapshot(ledger) == before
    assert ledger.account("alice").balance_minor == 700


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (TransferRequest("x", "alice", "nobody", 1, "EUR"), AccountNotFound),
        (TransferRequest("x", "nobody", "alice", 1, "EUR"), AccountNotFound),
        (TransferRequest("x", "alice", "usd", 1, "EUR"), CurrencyMismatch),
        (TransferRequest("x", "alice", "bob", 1, "USD"), CurrencyMismatch),
        (TransferRequest("x", "alice", "bob", 0, "EUR"), InvalidAmount),
        (TransferRequest("x", "alice", "bob", -5, "EUR"), InvalidAmount),
        (TransferRequest("x", "alice", "bob", 2**63, "EUR"), InvalidAmount),
        (TransferRequest("x", "alice", "alice", 1, "EUR"), SameAccount),
        (TransferRequest("x", "alice", "bob", 101, "EUR"), InsufficientFunds),
        (TransferRequest("x", "credit", "bob", 501, "EUR"), OverdraftLimitExceeded),
        (TransferRequest("bad id!", "alice", "bob", 1, "EUR"), InvalidPaymentInput),
        (TransferRequest("x", "alice", "bob", 1, "eur"), InvalidPaymentInput),
        (TransferRequest("x", "alice", "bob", 1, "EUR", timeout_s=5), InvalidPaymentInput),
    ],
)
def test_bad_transfers_are_refused_and_write_nothing(
    ledger: SqlLedger, request_: TransferRequest, error: type[Exception]
) -> None:
    topup(ledger, "t1", "alice", 100)
    before = snapshot(ledger)
    with pytest.raises(error) as caught:
        ledger.transfer(request_)
    assert caught.value.code == error.code  # type: ignore[attr-defined]
    assert snapshot(ledger) == before
    assert ledger.transfer_by_id("x") is None


def test_credit_limit_allows_exactly_the_limit(ledger: SqlLedger) -> None:
    ledger.transfer(TransferRequest("c1", "credit", "bob", 500, "EUR"))
    assert ledger.account("credit").balance_minor == -500


def test_balance_overflow_is_refused(ledger: SqlLedger) -> None:
    topup(ledger, "t1", "alice", MAX_AMOUNT_MINOR)
    with pytest.raises(BalanceOverflow):
        topup(ledger, "t2", "alice", 1)
    assert ledger.account("alice").balance_minor == MAX_AMOUNT_MINOR


def test_linked_chain_is_all_or_nothing(ledger: SqlLedger) -> None:
    topup(ledger, "t1", "alice", 100)
    results = ledger.transfer_batch(
        [
            TransferRequest("a", "alice", "bob", 60, "EUR", linked=True),
            TransferRequest("b", "alice", "shop", 60, "EUR"),  # fails: only 40 left
            TransferRequest("c", "alice", "shop", 10, "EUR"),  # independent: applies
        ]
    )
    assert [type(r.error).__name__ if r.error else "ok" for r in results] == [
        "LinkedTransferFailed",
        "InsufficientFunds",
        "ok",
    ]
    assert isinstance(results[0].error, LinkedTransferFailed)
    assert ledger.balances()["alice"] == 90
    assert ledger.balances()["bob"] == 0
    assert ledger.transfer_by_id("a") is None and ledger.transfer_by_id("b") is None


def test_linked_chain_sees_its_own_earlier_transfers(ledger: SqlLedger) -> None:
    results = ledger.transfer_batch(
        [
            TransferRequest("a", "ext", "bob", 599, "EUR", linked=True),
            TransferRequest("b", "bob", "shop", 509, "EUR", linked=True),
            TransferRequest("c", "bob", "alice", 90, "EUR"),
        ]
    )
    assert all(r.ok for r in results)
    assert ledger.balances() == {"ext": -599, "alice": 90, "bob": 0, "shop": 509, "credit": 0, "usd": 0}


def test_last_transfer_cannot_be_linked(ledger: SqlLedger) -> None:
    with pytest.raises(InvalidPaymentInput):
        ledger.transfer_batch([TransferRequest("a", "ext", "bob", 1, "EUR", linked=True)])


def test_two_phase_post_partial_and_void(ledger: SqlLedger) -> None:
    topup(ledger, "t1", "alice", 1000)
    ledger.transfer(TransferRequest("p1", "alice", "shop", 800, "EUR", kind=TransferKind.PENDING))
    alice = ledger.account("alice")
    assert (alice.balance_minor, alice.pending_debits_minor, alice.available_minor) == (1000, 800, 200)
    with pytest.raises(InsufficientFunds):  # the reservation counts against the floor
        ledger.transfer(TransferRequest("t2", "alice", "bob", 201, "EUR"))
    with pytest.raises(AmountExceedsPending):
        ledger.transfer(
            TransferRequest("p1post", kind=TransferKind.POST_PENDING, pending_id="p1", amount_minor=801)
        )
    post = ledger.transfer(
        TransferRequest("p1post", kind=TransferKind.POST_PENDING, pending_id="p1", amount_minor=650)
    )
    assert post.amount_minor == 650 and post.status is TransferStatus.POSTED
    stored = ledger.transfer_by_id("p1")
    assert stored is not None and stored.status is TransferStatus.POSTED
    alice = ledger.account("alice")
    assert (alice.balance_minor, alice.pending_debits_minor) == (350, 0)
    assert ledger.account("shop").balance_minor == 650
    with pytest.raises(PendingTransferClosed):
        ledger.transfer(TransferRequest("p1void", kind=TransferKind.VOID_PENDING, pending_id="p1"))
    # replaying the post is idempotent
    again = ledger.transfer_batch(
        [TransferRequest("p1post", kind=TransferKind.POST_PENDING, pending_id="p1", amount_minor=650)]
    )
    assert again[0].replayed

    ledger.transfer(TransferRequest("p2", "alice", "shop", 300, "EUR", kind=TransferKind.PENDING))
    ledger.transfer(TransferRequest("p2void", kind=TransferKind.VOID_PENDING, pending_id="p2"))
    alice = ledger.account("alice")
    assert (alice.balance_minor, alice.pending_debits_minor) == (350, 0)
    assert ledger.account("shop").balance_minor == 650


def test_pending_timeout_expires(ledger: SqlLedger, clock: FakeClock) -> None:
    topup(ledger, "t1", "alice", 100)
    ledger.transfer(
        TransferRequest("p1", "alice", "shop", 100, "EUR", kind=TransferKind.PENDING, timeout_s=60)
    )
    clock.now_s += 59
    assert ledger.expire_pending() == 0
    clock.now_s += 1
    with pytest.raises(PendingTransferExpired):
        ledger.transfer(TransferRequest("p1post", kind=TransferKind.POST_PENDING, pending_id="p1"))
    assert ledger.expire_pending() == 1
    stored = ledger.transfer_by_id("p1")
    assert stored is not None and stored.status is TransferStatus.EXPIRED
    assert ledger.account("alice").available_minor == 100
    assert ledger.expire_pending() == 0


def test_point_in_time_balance(ledger: SqlLedger, clock: FakeClock) -> None:
    start = clock.now_s
    topup(ledger, "t1", "alice", 100)
    clock.now_s += 10
    topup(ledger, "t2", "alice", 50)
    assert ledger.balance_at("alice", start - 1) == 0
    assert ledger.balance_at("alice", start + 5) == 100
    assert ledger.balance_at("alice", start + 10) == 150


def test_create_accounts_is_idempotent_and_refuses_changes(ledger: SqlLedger) -> None:
    ledger.create_accounts([Account("bob", AccountKind.WALLET, "EUR")])
    with pytest.raises(AccountExists):
        ledger.create_accounts([Account("bob", AccountKind.WALLET, "USD")])


def test_concurrent_same_id_applies_once(ledger: SqlLedger) -> None:
    topup(ledger, "t1", "alice", 1000)
    barrier = threading.Barrier(8)
    outcomes: list[bool] = []

    def worker() -> None:
        barrier.wait()
        outcomes.append(
            ledger.transfer_batch([TransferRequest("dup", "alice", "bob", 100, "EUR")])[0].replayed
        )

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False] + [True] * 7
    assert ledger.account("bob").balance_minor == 100


def test_round_trip_in_one_batch_keeps_entry_sequence(ledger: SqlLedger) -> None:
    topup(ledger, "t1", "alice", 100)
    results = ledger.transfer_batch(
        [
            TransferRequest("there", "alice", "bob", 40, "EUR"),
            TransferRequest("back", "bob", "alice", 40, "EUR"),
        ]
    )
    assert all(r.ok for r in results)
    topup(ledger, "t2", "alice", 1)  # would collide on (account, seq) if the sequence were not saved
    assert [e.account_seq for e in ledger.entries("alice")] == [1, 2, 3, 4]
    assert ledger.account("alice").entry_seq == 4 and ledger.account("alice").balance_minor == 101


def test_repeated_id_inside_one_batch_is_a_replay_or_a_conflict(ledger: SqlLedger) -> None:
    results = ledger.transfer_batch(
        [
            TransferRequest("dup", "ext", "alice", 10, "EUR", linked=True),
            TransferRequest("dup", "ext", "alice", 10, "EUR"),
            TransferRequest("dup", "ext", "alice", 11, "EUR"),
        ]
    )
    assert [(r.ok, r.replayed, r.error.code if r.error else None) for r in results] == [
        (True, False, None),
        (True, True, None),
        (False, False, "TransferExists"),
    ]
    assert ledger.account("alice").balance_minor == 10
