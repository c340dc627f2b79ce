"""The trial balance: the books per currency in one read, and accounts that disagree with their entries."""

from __future__ import annotations

from sqlalchemy import update

from hexcity.payments import PaymentService, TopUp, wallet_account
from hexcity.payments.adapters.tables import accounts


def test_books_balance_and_a_tampered_account_is_named(service: PaymentService) -> None:
    wallet = wallet_account("r1", "EUR").id
    service.execute(TopUp(wallet, 2_500, "EUR"), idempotency_key="tb-1", scope="test")
    tb = service.ledger.trial_balance()
    eur = tb["currencies"]["EUR"]
    assert tb["balanced"] is True and tb["mismatched_accounts"] == []
    assert (eur["sum_minor"], eur["debits_minor"], eur["credits_minor"]) == (0, 2_500, 2_500)
    with service.ledger.engine.begin() as conn:  # a write that bypassed the ledger
        conn.execute(update(accounts).where(accounts.c.id == wallet).values(balance_minor=2_600))
    tb = service.ledger.trial_balance()
    assert tb["balanced"] is False
    assert tb["currencies"]["EUR"]["sum_minor"] == 100
    assert tb["mismatched_accounts"] == [
        {"account_id": wallet, "balance_minor": 2_600, "entries_net_minor": 2_500}
    ]
