"""Three-way reconciliation: the ledger's payments vs the orders/trips that should have been paid
vs the settlement (bank / card network) file. Pure; integer minor units only.

Every reference is matched across the three sources. A difference above ``threshold_minor``
(default 0: any difference) or a reference missing from a source is a :class:`Discrepancy`,
to be queued for arbitration. Matching inputs produce no discrepancy.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field

from hexcity.payments.domain.ledger import MAX_AMOUNT_MINOR, check_currency
from hexcity.payments.errors import InvalidSettlementFile

SETTLEMENT_COLUMNS = ("reference", "amount_minor", "currency")


@dataclass(frozen=True, slots=True)
class Record:
    """One amount for one reference, from any of the three sources."""

    reference: str
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """``kind``: missing_in_ledger | missing_in_orders | missing_in_settlement | amount_mismatch |
    currency_mismatch | duplicate_reference."""

    reference: str
    kind: str
    ledger_minor: int | None = None
    expected_minor: int | None = None
    settlement_minor: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    matched: int
    discrepancies: list[Discrepancy] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.discrepancies


def parse_settlement_csv(text: str, *, max_rows: int = 1_000_000) -> list[Record]:
    """Rows of a settlement CSV with header ``reference,amount_minor,currency`` (integers only).

    Raises :class:`InvalidSettlementFile` naming the line of the first malformed row.
    """
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != SETTLEMENT_COLUMNS:
        raise InvalidSettlementFile(f"line 1: header must be {','.join(SETTLEMENT_COLUMNS)}")
    rows: list[Record] = []
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(rows) >= max_rows:
            raise InvalidSettlementFile(f"more than {max_rows} rows")
        if len(row) != 3:
            raise InvalidSettlementFile(f"line {line_no}: expected 3 fields, got {len(row)}")
        reference, amount, currency = (v.strip() for v in row)
        if not reference or len(reference) > 255:
            raise InvalidSettlementFile(f"line {line_no}: reference must be 1-255 characters")
        if not amount.lstrip("-").isdigit() or abs(int(amount)) > MAX_AMOUNT_MINOR:
            raise InvalidSettlementFile(f"line {line_no}: amount_minor must be an integer, got {amount!r}")
        try:
            check_currency(currency)
        except Exception as exc:
            raise InvalidSettlementFile(f"line {line_no}: bad currency {currency!r}") from exc
        rows.append(Record(reference, int(amount), currency))
    return rows


def reconcile(
    ledger: list[Record], expected: list[Record], settlement: list[Record], *, threshold_minor: int = 0
) -> ReconciliationReport:
    """Match the three sources by reference; list every discrepancy, sorted by reference."""
    found: list[Discrepancy] = []
    sources = {"ledger": ledger, "orders": expected, "settlement": settlement}
    for name, records in sources.items():
        for reference, count in sorted(Counter(r.reference for r in records).items()):
            if count > 1:
                found.append(Discrepancy(reference, "duplicate_reference", detail=f"{count} rows in {name}"))
    by_source = {name: {r.reference: r for r in records} for name, records in sources.items()}
    matched = 0
    for reference in sorted(set().union(*(set(m) for m in by_source.values()))):
        in_ledger, in_orders, in_settlement = (by_source[n].get(reference) for n in sources)
        amounts = (
            in_ledger.amount_minor if in_ledger else None,
            in_orders.amount_minor if in_orders else None,
            in_settlement.amount_minor if in_settlement else None,
        )
        missing = [
            n for n, r in zip(sources, (in_ledger, in_orders, in_settlement), strict=True) if r is None
        ]
        if missing:
            found.extend(Discrepancy(reference, f"missing_in_{n}", *amounts) for n in missing)
            continue
        present = [r for r in (in_ledger, in_orders, in_settlement) if r is not None]
        if len({r.currency for r in present}) > 1:
            found.append(
                Discrepancy(
                    reference, "currency_mismatch", *amounts, detail="/".join(r.currency for r in present)
                )
            )
            continue
        values = [r.amount_minor for r in present]
        if max(values) - min(values) > threshold_minor:
            found.append(Discrepancy(reference, "amount_mismatch", *amounts))
            continue
        matched += 1
    found.sort(key=lambda d: (d.reference, d.kind))
    return ReconciliationReport(matched, found)
