"""Three-way reconciliation: ledger vs orders/trips vs settlement file."""

from __future__ import annotations

import pytest
from tests.unit.payments.conftest import FakeClock, outbox_events

from hexcity.payments.domain.commands import Pay, Refund, TopUp
from hexcity.payments.domain.reconciliation import Discrepancy, Record, parse_settlement_csv, reconcile
from hexcity.payments.errors import InvalidSettlementFile
from hexcity.payments.service import PaymentService

W1, SHOP = "wallet:r1:EUR", "merchant:s1:EUR"


def test_matching_sources_give_no_discrepancy() -> None:
    records = [Record("o1", 500, "EUR"), Record("o2", 700, "EUR")]
    report = reconcile(records, list(records), list(records))
    assert report.clean and report.matched == 2


def test_one_unit_mismatch_and_missing_rows_are_flagged() -> None:
    ledger = [Record("o1", 500, "EUR"), Record("o2", 700, "EUR"), Record("o3", 1, "EUR")]
    orders = [Record("o1", 500, "EUR"), Record("o2", 700, "EUR"), Record("o4", 9, "EUR")]
    bank = [
        Record("o1", 501, "EUR"),
        Record("o2", 700, "USD"),
        Record("o3", 1, "EUR"),
        Record("o3", 1, "EUR"),
    ]
    report = reconcile(ledger, orders, bank)
    assert report.matched == 0
    assert report.discrepancies == [
        Discrepancy("o1", "amount_mismatch", 500, 500, 501),
        Discrepancy("o2", "currency_mismatch", 700, 700, 700, detail="EUR/EUR/USD"),
        Discrepancy("o3", "duplicate_reference", detail="2 rows in settlement"),
        Discrepancy("o3", "missing_in_orders", 1, None, 1),
        Discrepancy("o4", "missing_in_ledger", None, 9, None),
        Discrepancy("o4", "missing_in_settlement", None, 9, None),
    ]
    assert reconcile(ledger[:1], orders[:1], bank[:1], threshold_minor=1).clean


def test_settlement_csv_is_parsed_strictly() -> None:
    rows = parse_settlement_csv("reference,amount_minor,currency\no1,500,EUR\n\no2, 7 ,USD\n")
    assert rows == [Record("o1", 500, "EUR"), Record("o2", 7, "USD")]
    for bad, line in [
        ("ref,amount,currency\n", 1),
        ("reference,amount_minor,currency\no1,5.00,EUR\n", 2),
        ("reference,amount_minor,currency\no1,5,EUR\no2,5\n", 3),
        ("reference,amount_minor,currency\no1,5,eur\n", 2),
    ]:
        with pytest.raises(InvalidSettlementFile, match=f"line {line}"):
            parse_settlement_csv(bad)


def test_service_reconciles_the_ledger_against_orders_and_bank(
    service: PaymentService, clock: FakeClock
) -> None:
    start = clock.now_s
    service.execute(TopUp(W1, 5000, "EUR"), idempotency_key="t", scope="r1")
    a = service.execute(Pay(W1, SHOP, 1000, "EUR", reference="order-a"), idempotency_key="a", scope="r1").body
    service.execute(Pay(W1, SHOP, 2000, "EUR", reference="order-b"), idempotency_key="b", scope="r1")
    service.execute(Refund(a["id"], 300), idempotency_key="ra", scope="s1")
    orders = [Record("order-a", 700, "EUR"), Record("order-b", 2000, "EUR")]
    good = "reference,amount_minor,currency\norder-a,700,EUR\norder-b,2000,EUR\n"
    assert service.reconcile(orders, good, since_s=start, until_s=start + 1).clean
    bad = "reference,amount_minor,currency\norder-a,700,EUR\norder-b,1999,EUR\n"
    report = service.reconcile(orders, bad, since_s=start, until_s=start + 1, enqueue=True)
    assert report.discrepancies == [Discrepancy("order-b", "amount_mismatch", 2000, 2000, 1999)]
    queued = [e for e in outbox_events(service) if e["type"] == "reconciliation.discrepancy"]
    assert [(e["reference"], e["kind"], e["settlement_minor"]) for e in queued] == [
        ("order-b", "amount_mismatch", 1999)
    ]
    assert service.reconcile(orders, good, since_s=start, until_s=start + 1, enqueue=True).clean
    assert len([e for e in outbox_events(service) if e["type"] == "reconciliation.discrepancy"]) == 1
