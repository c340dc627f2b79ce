"""Read-only payment queries for other modules (the support assistant): a customer's own money.

A customer's payments are the records paid from a wallet the customer owns (``owner_kind``
``rider``): card/wallet payments, ride fares and order payments; their refunds are the refund
records paid back INTO such a wallet. Top-ups and payouts are not included. Two SELECTs, newest
first, no writes.
"""

from __future__ import annotations

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.orm import Session

from hexcity.payments.adapters.records import Payment, _payment
from hexcity.payments.adapters.tables import accounts, payments

__all__ = ["MAX_PAYMENTS_PER_CUSTOMER", "PAID_KINDS", "CustomerPayments"]

PAID_KINDS = ("payment", "ride", "order")
MAX_PAYMENTS_PER_CUSTOMER = 200
_MAX_WALLETS = 20  # one per currency


class CustomerPayments:
    """Reads over the payments tables of :class:`~hexcity.payments.SqlLedger` (same engine)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def payments_of_customer(self, customer_id: str, limit: int = 50) -> list[Payment]:
        """Payments and refunds of the customer's wallets, newest first (ties by id), at most
        ``limit`` (1..200)."""
        if not customer_id:
            raise ValueError("customer id must not be empty")
        bounded = max(1, min(limit, MAX_PAYMENTS_PER_CUSTOMER))
        with Session(self.engine) as s:
            wallets = [
                row.id
                for row in s.execute(
                    select(accounts.c.id)
                    .where(accounts.c.owner_kind == "rider", accounts.c.owner_id == customer_id)
                    .order_by(accounts.c.id)
                    .limit(_MAX_WALLETS)
                )
            ]
            if not wallets:
                return []
            rows = s.execute(
                select(payments)
                .where(
                    or_(
                        and_(payments.c.kind.in_(PAID_KINDS), payments.c.payer_account_id.in_(wallets)),
                        and_(payments.c.kind == "refund", payments.c.payee_account_id.in_(wallets)),
                    )
                )
                .order_by(payments.c.created_at_s.desc(), payments.c.id)
                .limit(bounded)
            ).all()
        return [_payment(row) for row in rows]
