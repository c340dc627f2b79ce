"""KPIs of a headless run, computed from what the platform's public APIs answered.

Pure functions (no I/O): the simulate command fetches trips, orders, ledger accounts and entries
and live-feed counters over HTTP and hands them here. Every KPI the platform could not produce is
``None`` with a line in ``notes``; nothing is estimated or faked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "REPORT_KEYS",
    "AccountCheck",
    "DeliveryOutcome",
    "LedgerCheck",
    "check_ledger",
    "delivery_kpis",
    "events_lost",
    "percentile",
    "pickup_eta_kpis",
]

# the top-level keys every report has (issue 8), in report order
REPORT_KEYS = (
    "trips_requested",
    "trips_completed",
    "pickup_eta_s",
    "orders_placed",
    "orders_delivered",
    "orders_on_time_rate",
    "split_rate",
    "flash_sale_units",
    "flash_sale_sold",
    "flash_sale_oversold",
    "ledger_balanced",
    "events_lost",
)
UNBOUNDED = "unbounded"
LIMITED = "limited"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default); None if empty."""
    if not 0 <= q <= 100:
        raise ValueError("q must be in [0, 100]")
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def pickup_eta_kpis(trips: Iterable[Mapping[str, Any]]) -> dict[str, float | int | None]:
    """p50/p90 of the pickup ETA (s) the platform offered for every trip that got a driver."""
    etas = [float(t["pickup_eta_s"]) for t in trips if isinstance(t.get("pickup_eta_s"), int | float)]
    p50, p90 = percentile(etas, 50), percentile(etas, 90)
    return {
        "p50": None if p50 is None else round(p50, 1),
        "p90": None if p90 is None else round(p90, 1),
        "n": len(etas),
    }


@dataclass(frozen=True)
class DeliveryOutcome:
    """One shop order as the simulator saw it: its parcels' planned ETAs and its SLA deadline
    (seconds of the simulated day); ``parcels`` the number of packages it was allocated in."""

    order_id: str
    parcels: int
    deadline_s: int
    etas_s: tuple[float, ...] = ()  # the latest planned ETA of every parcel routed so far

    @property
    def routed(self) -> bool:
        return self.parcels > 0 and len(self.etas_s) == self.parcels

    def delivered_by(self, now_s: float) -> bool:
        """Every parcel was routed and its planned arrival has passed."""
        return self.routed and max(self.etas_s) <= now_s

    @property
    def on_time(self) -> bool:
        return self.routed and max(self.etas_s) <= self.deadline_s


def delivery_kpis(outcomes: Sequence[DeliveryOutcome], now_s: float) -> dict[str, Any]:
    """orders delivered (planned arrival passed), on-time rate among them, split rate among allocated."""
    allocated = [o for o in outcomes if o.parcels > 0]
    delivered = [o for o in allocated if o.delivered_by(now_s)]
    on_time = sum(1 for o in delivered if o.on_time)
    split = sum(1 for o in allocated if o.parcels > 1)
    return {
        "orders_allocated": len(allocated),
        "orders_delivered": len(delivered),
        "orders_on_time_rate": round(on_time / len(delivered), 4) if delivered else None,
        "split_rate": round(split / len(allocated), 4) if allocated else None,
        "orders_out_for_delivery": sum(1 for o in allocated if o.routed and not o.delivered_by(now_s)),
    }


@dataclass(frozen=True)
class AccountCheck:
    account_id: str
    balance_minor: int
    entries: int
    problems: tuple[str, ...] = ()


@dataclass
class LedgerCheck:
    """Per-account checks and the books as a whole (sum of balances of one currency is zero)."""

    accounts: list[AccountCheck] = field(default_factory=list)
    totals_minor: dict[str, int] = field(default_factory=dict)  # currency -> sum of balances
    debits_minor: dict[str, int] = field(default_factory=dict)  # currency -> sum of debit entries
    credits_minor: dict[str, int] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        out = [f"{a.account_id}: {p}" for a in self.accounts for p in a.problems]
        out += [f"books in {c} sum to {v}, not 0" for c, v in sorted(self.totals_minor.items()) if v != 0]
        out += [
            f"debits {self.debits_minor.get(c, 0)} != credits {self.credits_minor.get(c, 0)} in {c}"
            for c in sorted(set(self.debits_minor) | set(self.credits_minor))
            if self.debits_minor.get(c, 0) != self.credits_minor.get(c, 0)
        ]
        return out

    @property
    def balanced(self) -> bool:
        return bool(self.accounts) and not self.problems


def check_ledger(
    accounts: Sequence[Mapping[str, Any]], entries: Mapping[str, Sequence[Mapping[str, Any]]]
) -> LedgerCheck:
    """Check every account (as ``GET /payments/v1/ledger/accounts/{id}`` answers) against its
    entries (``GET .../accounts/{id}/entries``, all pages, in ``seq`` order):

    * credits − debits of its entries equal its balance, and the last ``balance_after_minor`` too;
    * ``seq`` runs 1, 2, 3, … without gaps (no lost or duplicated entry);
    * it respects its floor (``none``: available ≥ 0; ``limited``: ≥ −credit limit);

    and the books: per currency the balances sum to 0 and all debits equal all credits. Meaningful
    only when ``accounts`` is every account that moved money (the simulator knows them all).
    """
    check = LedgerCheck()
    for a in accounts:
        account_id = str(a["id"])
        currency = str(a["currency"])
        balance = int(a["balance_minor"])
        rows = list(entries.get(account_id, ()))
        problems: list[str] = []
        credits = sum(int(e["amount_minor"]) for e in rows if str(e["direction"]).upper() == "CREDIT")
        debits = sum(int(e["amount_minor"]) for e in rows if str(e["direction"]).upper() == "DEBIT")
        if credits - debits != balance:
            problems.append(f"entries give {credits - debits}, balance is {balance}")
        if rows and int(rows[-1]["balance_after_minor"]) != balance:
            problems.append(f"last entry leaves {rows[-1]['balance_after_minor']}, balance is {balance}")
        seqs = [int(e["seq"]) for e in rows]
        if seqs != list(range(1, len(rows) + 1)):
            problems.append("entry sequence has gaps or repeats")
        overdraft = str(a.get("overdraft", "none"))
        available = int(a.get("available_minor", balance))
        if overdraft != UNBOUNDED:
            floor = -int(a.get("credit_limit_minor", 0)) if overdraft == LIMITED else 0
            if available < floor:
                problems.append(f"available {available} below its floor {floor}")
        check.accounts.append(AccountCheck(account_id, balance, len(rows), tuple(problems)))
        check.totals_minor[currency] = check.totals_minor.get(currency, 0) + balance
        check.debits_minor[currency] = check.debits_minor.get(currency, 0) + debits
        check.credits_minor[currency] = check.credits_minor.get(currency, 0) + credits
    return check


def events_lost(published: Mapping[str, int], consumed: Mapping[str, int]) -> int:
    """Events the platform published (per kind, counted from the API's final state) that the
    consumer never folded in (counted by the live feed); extra consumptions do not offset losses."""
    return sum(max(0, n - int(consumed.get(kind, 0))) for kind, n in published.items())
