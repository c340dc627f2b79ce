from __future__ import annotations

import pytest

from hexcity.fulfillment.domain.allocation import (
    NoFeasibleAllocation,
    allocate,
    allocation_from_dict,
    allocation_to_dict,
)
from hexcity.fulfillment.domain.batch import BatchParams, greedy_plan, plan_stats, reoptimise
from hexcity.fulfillment.domain.network import CostModel, Lane, NetworkView, Order, Warehouse
from hexcity.fulfillment.errors import InvalidOrder, OutOfStock, UnknownSku
from hexcity.kernel import LatLng

COSTS = CostModel()  # package 3.00 + 0.40/km, P_split 5.00, transfer 2.00 + 0.10/km, lead 4 h
HERE = LatLng(49.41, 8.69)
NOON = 12 * 3600


def wh(wid: str, **kw: int) -> Warehouse:
    return Warehouse(wid, HERE, **kw)


def view(
    atp: dict[tuple[str, str], int],
    km: dict[str, float],
    order_ids: tuple[str, ...] = ("o1",),
    minutes: float = 20,
    between_km: float = 10,
) -> NetworkView:
    warehouses = [wh(w) for w in sorted(km)]
    lanes = {(w, o): Lane(d * 1000, minutes * 60) for w, d in km.items() for o in order_ids}
    between = {(a, b): Lane(between_km * 1000, 900) for a in km for b in km if a != b}
    return NetworkView(warehouses, atp, lanes, between)


def order(lines: list[tuple[str, int]], sla: str = "same_day", oid: str = "o1") -> Order:
    return Order.create(oid, lines, LatLng(49.42, 8.70), sla, NOON)


def test_single_source_when_one_site_holds_the_cart() -> None:
    v = view({("A", "x"): 5, ("A", "y"): 5, ("B", "x"): 5}, {"A": 10, "B": 2})
    result = allocate(order([("x", 1), ("y", 2)]), v, COSTS)
    assert result.chosen.label() == "single:A"
    # freight 300 + 40 * 10 km = 700, labour 2 lines x 50 = 100
    assert result.chosen.breakdown() == {
        "freight_minor": 700,
        "labour_minor": 100,
        "transfer_minor": 0,
        "split_penalty_minor": 0,
        "total_minor": 800,
    }
    assert result.split_count == 0
    assert result.reserved() == {("A", "x"): 1, ("A", "y"): 2}
    assert [(a.label, a.total_minor, a.reason) for a in result.alternatives] == [
        ("single:B", None, "does not hold every line"),
        # hub B (2 km): 380 + labour 100 + transfer from A (200 + 100) + labour at A 50
        ("consolidate:B<-A", 830, "costs 30 more"),
    ]


def test_one_package_when_split_saves_less_than_the_split_penalty() -> None:
    # C (20 km) holds the cart: 300 + 800 + 100 = 1200. A and B (1 km) split it for 780 + 500.
    v = view({("C", "x"): 1, ("C", "y"): 1, ("A", "x"): 1, ("B", "y"): 1}, {"A": 1, "B": 1, "C": 20})
    result = allocate(order([("x", 1), ("y", 1)], sla="2h"), v, COSTS)
    assert result.chosen.label() == "single:C"
    assert result.chosen.total_minor == 1200
    split = next(a for a in result.alternatives if a.label == "split:A+B")
    assert split.total_minor == 1280


def test_urgent_order_splits_and_never_waits_for_a_transfer() -> None:
    v = view({("A", "x"): 1, ("B", "y"): 1}, {"A": 3, "B": 4})
    result = allocate(order([("x", 1), ("y", 1)], sla="2h"), v, COSTS)
    assert result.chosen.label() == "split:A+B"
    assert result.chosen.split_penalty_minor == 500
    assert any(a.label == "consolidate" and "never waits" in a.reason for a in result.alternatives)
    total = result.chosen.total_minor
    assert total == sum(
        result.chosen.breakdown()[k]
        for k in ("freight_minor", "labour_minor", "transfer_minor", "split_penalty_minor")
    )


def test_same_day_consolidates_when_the_transfer_is_cheaper_than_a_split() -> None:
    v = view({("A", "x"): 1, ("B", "y"): 1}, {"A": 3, "B": 4}, between_km=5)
    result = allocate(order([("x", 1), ("y", 1)]), v, COSTS)
    # hub A: parcel 300 + 120, labour 50 x 2 at A + 50 at B, transfer 200 + 50 -> 820 < split 1480
    assert result.chosen.label() == "consolidate:A<-B"
    assert result.chosen.total_minor == 820
    assert result.reserved() == {("A", "x"): 1, ("B", "y"): 1}
    assert "transfer" in result.reasons[0]


def test_consolidation_that_misses_the_deadline_is_rejected() -> None:
    v = view({("A", "x"): 1, ("B", "y"): 1}, {"A": 3, "B": 4}, between_km=5)
    # placed 17:00, an 8 h transfer lands after midnight
    late = Order.create("o1", [("x", 1), ("y", 1)], HERE, "same_day", 17 * 3600)
    result = allocate(late, v, CostModel(transfer_lead_s=8 * 3600))
    assert result.chosen.decision == "split"
    assert any("miss the SLA" in a.reason for a in result.alternatives)


def test_road_cost_not_straight_line_decides() -> None:
    # both sites are at the same coordinates; by road B is across the river (25 km), A is 2 km
    v = view({("A", "x"): 1, ("B", "x"): 1}, {"A": 2, "B": 25})
    assert allocate(order([("x", 1)]), v, COSTS).chosen.label() == "single:A"


def test_bad_orders_fail_clearly() -> None:
    v = view({("A", "x"): 1}, {"A": 1})
    with pytest.raises(UnknownSku, match="zzz"):
        allocate(order([("x", 1), ("zzz", 1)]), v, COSTS)
    with pytest.raises(OutOfStock) as short:
        allocate(order([("x", 2)]), v, COSTS)
    assert short.value.short_skus == ["x"]
    with pytest.raises(InvalidOrder, match="must be positive"):
        order([("x", 0)])
    with pytest.raises(InvalidOrder, match="sla must be"):
        order([("x", 1)], sla="tomorrow")


def test_unreachable_destination_is_no_feasible_allocation() -> None:
    v = view({("A", "x"): 1}, {"A": float("nan")})
    with pytest.raises(NoFeasibleAllocation) as err:
        allocate(order([("x", 1)]), v, COSTS)
    assert err.value.code == "NoFeasibleAllocation"


def test_same_input_same_plan_and_round_trip() -> None:
    v = view({("A", "x"): 3, ("B", "x"): 3, ("C", "y"): 1, ("A", "y"): 1}, {"A": 5, "B": 5, "C": 1})
    first = allocate(order([("x", 1), ("y", 1)]), v, COSTS)
    second = allocate(order([("x", 1), ("y", 1)]), v, COSTS)
    assert first == second
    assert allocation_from_dict(allocation_to_dict(first)) == first


def test_batch_beats_greedy_and_respects_stock() -> None:
    # greedy gives o1 (placed first) the x at A, leaving o2 to split; jointly o1 takes B's x
    atp = {("A", "x"): 1, ("A", "y"): 1, ("B", "x"): 1}
    v = view(atp, {"A": 2, "B": 3}, order_ids=("o1", "o2"))
    o1 = Order.create("o1", [("x", 1)], HERE, "standard", 100)
    o2 = Order.create("o2", [("x", 1), ("y", 1)], HERE, "standard", 200)
    greedy = greedy_plan([o1, o2], v, COSTS)
    assert [a.chosen.label() for a in greedy] == ["single:A", "split:A+B"]
    current = {a.order_id: a for a in greedy}
    result = reoptimise([o1, o2], current, v, COSTS, BatchParams(time_limit_s=5, seed=1))
    assert result.status == "OPTIMAL"
    assert result.allocations["o1"].chosen.label() == "single:B"
    assert result.allocations["o2"].chosen.label() == "single:A"
    assert result.optimised.total_minor == (300 + 120 + 50) + (300 + 80 + 100)
    assert result.current.total_minor == plan_stats(greedy).total_minor == 1830
    assert result.optimised.split_orders == 0
    used: dict[tuple[str, str], int] = {}
    for a in result.allocations.values():
        for key, qty in a.reserved().items():
            used[key] = used.get(key, 0) + qty
    assert all(used[k] <= atp[k] for k in used)
