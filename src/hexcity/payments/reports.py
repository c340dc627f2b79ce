"""Reconciliation of one window: the ledger's settled payments vs orders/trips vs the bank file,
with the discrepancies optionally queued for arbitration through the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from hexcity.payments.adapters import records
from hexcity.payments.adapters.records import REFUNDABLE_STATUSES, SETTLED_KINDS, Payment
from hexcity.payments.domain.reconciliation import (
    ReconciliationReport,
    Record,
    parse_settlement_csv,
    reconcile,
)

if TYPE_CHECKING:
    from hexcity.payments.service import PaymentService


def ledger_records(payments: Sequence[Payment]) -> list[Record]:
    """What the ledger says was collected per reference: captured amounts net of refunds."""
    return [
        Record(p.reference, p.amount_minor - p.refunded_minor, p.currency)
        for p in payments
        if p.kind in SETTLED_KINDS and p.status in REFUNDABLE_STATUSES and p.reference
    ]


def reconcile_window(
    service: PaymentService,
    expected: Sequence[Record],
    settlement_csv: str,
    *,
    since_s: float,
    until_s: float,
    enqueue: bool = False,
) -> ReconciliationReport:
    """Ledger payments created in [since_s, until_s) vs ``expected`` (orders/trips) vs the
    settlement CSV; differences above ``reconciliation_threshold_minor`` are discrepancies.

    ``enqueue=True`` also queues every discrepancy for arbitration: one
    ``reconciliation.discrepancy`` event each, through the outbox, in one transaction.
    Raises :class:`InvalidSettlementFile` for a malformed CSV.
    """
    settings = service.settings
    settlement = parse_settlement_csv(settlement_csv, max_rows=settings.max_settlement_rows)
    with Session(service.ledger.engine) as session:
        found = records.payments_between(session, since_s, until_s, sorted(SETTLED_KINDS))
    report = reconcile(
        ledger_records(found),
        list(expected),
        settlement,
        threshold_minor=settings.reconciliation_threshold_minor,
    )
    if enqueue and report.discrepancies:

        def work(session: Session) -> None:
            now_s = service.clock()
            for item in report.discrepancies:
                payload = {**asdict(item), "window": [since_s, until_s]}
                service.emit(session, "reconciliation.discrepancy", item.reference, payload, now_s)

        service.ledger.run(work)
    return report
