"""Property test of the pure posting rules: any sequence of batches keeps the books balanced."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from hexcity.payments.domain.batch import post_chains, validate_shapes
from hexcity.payments.domain.ledger import (
    Account,
    AccountKind,
    AccountState,
    Overdraft,
    Transfer,
    TransferKind,
    TransferRequest,
    TransferStatus,
)
from hexcity.payments.domain.posting import Posting

ACCOUNTS = [
    Account("ext", AccountKind.EXTERNAL_SETTLEMENT, "EUR", Overdraft.UNBOUNDED),
    Account("a", AccountKind.WALLET, "EUR"),
    Account("b", AccountKind.WALLET, "EUR"),
    Account("c", AccountKind.MERCHANT, "EUR", Overdraft.LIMITED, credit_limit_minor=50),
]
IDS = [a.id for a in ACCOUNTS]

request_strategy = st.builds(
    lambda tid, kind, debit, credit, amount, pending, linked: TransferRequest(
        f"t{tid}",
        debit if kind in (TransferKind.POSTED, TransferKind.PENDING) else "",
        credit if kind in (TransferKind.POSTED, TransferKind.PENDING) else "",
        amount if kind in (TransferKind.POSTED, TransferKind.PENDING) else amount % 3 * amount,
        "EUR" if kind in (TransferKind.POSTED, TransferKind.PENDING) else "",
        kind=kind,
        pending_id=None if kind in (TransferKind.POSTED, TransferKind.PENDING) else f"t{pending}",
        linked=linked,
    ),
    st.integers(0, 40),
    st.sampled_from(list(TransferKind)),
    st.sampled_from(IDS),
    st.sampled_from(IDS),
    st.integers(1, 120),
    st.integers(0, 40),
    st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(request_strategy, min_size=1, max_size=8), min_size=1, max_size=6))
def test_any_batches_keep_books_balanced_and_floors(batches: list[list[TransferRequest]]) -> None:
    states = {a.id: AccountState(a) for a in ACCOUNTS}
    stored: dict[str, Transfer] = {}
    for raw in batches:
        batch = [*raw[:-1], replace(raw[-1], linked=False)]
        posting = Posting(accounts=states, pending=dict(stored), now_s=1.0)
        results = post_chains(posting, batch, validate_shapes(batch), dict(stored))
        assert [r.id for r in results] == [r.id for r in batch]
        states = posting.accounts
        for transfer in posting.transfers:
            stored.setdefault(transfer.id, transfer)
        for pending_id, status in posting.closed_pending.items():
            stored[pending_id] = replace(stored[pending_id], status=status)
        # invariants after every batch
        assert sum(s.balance_minor for s in states.values()) == 0
        assert sum(s.pending_debits_minor for s in states.values()) == sum(
            s.pending_credits_minor for s in states.values()
        )
        open_pending = sum(t.amount_minor for t in stored.values() if t.status is TransferStatus.PENDING)
        assert sum(s.pending_debits_minor for s in states.values()) == open_pending
        for state in states.values():
            floor = state.account.floor_minor
            assert floor is None or state.available_minor >= floor
        debits = sum(e.amount_minor for e in posting.entries if e.direction == "DEBIT")
        assert debits == sum(e.amount_minor for e in posting.entries if e.direction == "CREDIT")
