"""KPI computation of ``hexcity simulate``: percentiles, deliveries, the ledger check, lost events."""

from __future__ import annotations

from typing import Any

import pytest

from hexcity.simulator.kpis import (
    DeliveryOutcome,
    check_ledger,
    delivery_kpis,
    events_lost,
    percentile,
    pickup_eta_kpis,
)


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 90) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 90) == pytest.approx(3.7)
    assert percentile([1.0, 2.0], 0) == 1.0
    assert percentile([1.0, 2.0], 100) == 2.0
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 101)


def test_pickup_eta_ignores_trips_without_a_driver() -> None:
    trips: list[dict[str, Any]] = [{"pickup_eta_s": 100.0}, {"pickup_eta_s": None}, {"pickup_eta_s": 300}, {}]
    assert pickup_eta_kpis(trips) == {"p50": 200.0, "p90": 280.0, "n": 2}
    assert pickup_eta_kpis([]) == {"p50": None, "p90": None, "n": 0}


def test_delivery_kpis_count_delivered_on_time_and_split() -> None:
    outcomes = [
        DeliveryOutcome("a", 1, deadline_s=36_000, etas_s=(30_000.0,)),  # delivered, on time
        DeliveryOutcome("b", 2, deadline_s=31_000, etas_s=(30_500.0, 32_000.0)),  # delivered, late
        DeliveryOutcome("c", 1, deadline_s=40_000, etas_s=(35_000.0,)),  # out for delivery
        DeliveryOutcome("d", 2, deadline_s=40_000, etas_s=(30_000.0,)),  # one parcel not routed
        DeliveryOutcome("e", 0, deadline_s=40_000),  # never allocated
    ]
    assert delivery_kpis(outcomes, now_s=33_000) == {
        "orders_allocated": 4,
        "orders_delivered": 2,
        "orders_on_time_rate": 0.5,
        "split_rate": 0.5,
        "orders_out_for_delivery": 1,
    }


def test_delivery_kpis_are_null_without_orders() -> None:
    k = delivery_kpis([], now_s=0)
    assert k["orders_on_time_rate"] is None and k["split_rate"] is None and k["orders_delivered"] == 0


def _entry(seq: int, direction: str, amount: int, after: int) -> dict[str, Any]:
    return {"seq": seq, "direction": direction, "amount_minor": amount, "balance_after_minor": after}


def _books() -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Top-up 1000 from outside into a wallet, then 600 paid to a merchant."""
    accounts = [
        {"id": "external:settlement:EUR", "currency": "EUR", "balance_minor": -1000,
         "available_minor": -1000, "overdraft": "unbounded"},
        {"id": "wallet:c1:EUR", "currency": "EUR", "balance_minor": 400, "available_minor": 400,
         "overdraft": "none"},
        {"id": "merchant:s1:EUR", "currency": "EUR", "balance_minor": 600, "available_minor": 600,
         "overdraft": "none"},
    ]  # fmt: skip
    entries = {
        "external:settlement:EUR": [_entry(1, "DEBIT", 1000, -1000)],
        "wallet:c1:EUR": [_entry(1, "CREDIT", 1000, 1000), _entry(2, "DEBIT", 600, 400)],
        "merchant:s1:EUR": [_entry(1, "CREDIT", 600, 600)],
    }
    return accounts, entries


def test_balanced_books_pass() -> None:
    accounts, entries = _books()
    check = check_ledger(accounts, entries)
    assert check.balanced and check.problems == []
    assert check.totals_minor == {"EUR": 0}
    assert check.debits_minor == check.credits_minor == {"EUR": 1600}


def test_a_balance_that_disagrees_with_its_entries_fails() -> None:
    accounts, entries = _books()
    accounts[1]["balance_minor"] = 450
    check = check_ledger(accounts, entries)
    assert not check.balanced
    assert "wallet:c1:EUR: entries give 400, balance is 450" in check.problems
    assert "books in EUR sum to 50, not 0" in check.problems


def test_a_missing_entry_breaks_the_sequence_and_the_books() -> None:
    accounts, entries = _books()
    entries["wallet:c1:EUR"] = [entries["wallet:c1:EUR"][1]]
    problems = check_ledger(accounts, entries).problems
    assert "wallet:c1:EUR: entry sequence has gaps or repeats" in problems
    assert "debits 1600 != credits 600 in EUR" in problems


def test_an_account_below_its_floor_fails() -> None:
    accounts = [
        {"id": "wallet:c2:EUR", "currency": "EUR", "balance_minor": 0, "available_minor": -5,
         "overdraft": "none"},
        {"id": "x:EUR", "currency": "EUR", "balance_minor": 0, "available_minor": -5, "overdraft": "limited",
         "credit_limit_minor": 10},
    ]  # fmt: skip
    check = check_ledger(accounts, {})
    assert check.problems == ["wallet:c2:EUR: available -5 below its floor 0"]


def test_no_accounts_is_not_balanced() -> None:
    assert check_ledger([], {}).balanced is False


def test_events_lost_counts_only_missing_consumptions() -> None:
    published = {"requested": 10, "completed": 4, "cancelled": 1}
    assert events_lost(published, {"requested": 10, "completed": 4, "cancelled": 1}) == 0
    assert events_lost(published, {"requested": 8, "completed": 5, "cancelled": 1}) == 2
    assert events_lost(published, {}) == 15
