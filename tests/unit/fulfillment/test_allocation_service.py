from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from hexcity.fulfillment.adapters.road_matrix import StraightLineMatrix
from hexcity.fulfillment.adapters.sql_store import SqlAllocationStore
from hexcity.fulfillment.domain.batch import BatchParams
from hexcity.fulfillment.domain.network import Order, Warehouse
from hexcity.fulfillment.errors import StockInvariantBroken, UnknownSku, WarehouseNotFound
from hexcity.fulfillment.ports import TravelMatrix
from hexcity.fulfillment.service import AllocationService
from hexcity.infra.sql import make_engine, outbox
from hexcity.kernel import LatLng

NORTH = LatLng(49.42, 8.69)
SOUTH = LatLng(49.38, 8.69)
CUSTOMER = LatLng(49.41, 8.69)


def make_service(tmp_path: Path, road: object | None = None, url: str | None = None) -> AllocationService:
    store = SqlAllocationStore(make_engine(url or f"sqlite:///{tmp_path / 'f.db'}"))
    store.create_schema()
    store.put_warehouse(Warehouse("north", NORTH))
    store.put_warehouse(Warehouse("south", SOUTH))
    store.set_on_hand("north", "tea", 2, "receipt")
    store.set_on_hand("south", "tea", 5, "receipt")
    store.set_on_hand("south", "cup", 1, "receipt")
    return AllocationService(store, road or StraightLineMatrix(speed_m_s=10.0))  # type: ignore[arg-type]


def test_order_is_allocated_held_and_explained(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    stored = svc.place_order(Order.create("o1", [("tea", 1)], CUSTOMER, "2h", 36_000))
    assert stored.status == "allocated"
    assert stored.allocation is not None
    assert stored.allocation.chosen.label() == "single:north"  # 1.1 km vs 3.3 km
    assert svc.store.stock()[("north", "tea")] == {"on_hand": 2, "reserved": 1, "atp": 1}
    assert set(stored.lanes) == {"north", "south"}


def test_placing_the_same_order_twice_changes_nothing(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    order = Order.create("o1", [("tea", 2)], CUSTOMER, "same_day", 36_000)
    first = svc.place_order(order)
    events = _outbox_rows(svc)
    again = svc.place_order(order)
    assert again == first
    assert _outbox_rows(svc) == events
    assert svc.store.atp()[("north", "tea")] == 0


def test_impossible_cart_is_stored_unallocated_with_the_short_skus(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    stored = svc.place_order(Order.create("o2", [("cup", 3), ("tea", 1)], CUSTOMER, "standard"))
    assert stored.status == "unallocated"
    assert stored.reason == "order o2: no warehouse holds enough of cup"
    assert svc.store.stock()[("south", "cup")]["reserved"] == 0
    with pytest.raises(UnknownSku):
        svc.place_order(Order.create("o3", [("mug", 1)], CUSTOMER, "standard"))
    assert svc.store.find_order("o3") is None


def test_unreachable_destination_is_unallocated_with_the_reason(tmp_path: Path) -> None:
    class Island:
        def matrix(self, points: Sequence[LatLng], profile: str) -> TravelMatrix:
            n = len(points)
            m = np.full((n, n), np.nan)
            m[: n - 1, : n - 1] = 100.0
            return TravelMatrix(m, m)

    svc = make_service(tmp_path, Island())
    stored = svc.place_order(Order.create("o4", [("tea", 1)], CUSTOMER, "standard"))
    assert stored.status == "unallocated"
    assert stored.reason is not None and "SLA" in stored.reason


def test_concurrent_orders_never_over_reserve(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    results: list[str] = []

    def place(i: int) -> None:
        results.append(svc.place_order(Order.create(f"c{i}", [("tea", 1)], CUSTOMER, "standard")).status)

    threads = [threading.Thread(target=place, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stock = svc.store.stock()
    assert results.count("allocated") == 7  # 2 north + 5 south
    assert results.count("unallocated") == 2
    for position in stock.values():
        assert 0 <= position["reserved"] <= position["on_hand"]
        assert position["on_hand"] == position["atp"] + position["reserved"]


def test_stock_rules_hold(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    svc.place_order(Order.create("o1", [("tea", 2)], CUSTOMER, "2h", 36_000))
    with pytest.raises(StockInvariantBroken):
        svc.store.set_on_hand("north", "tea", 1)
    with pytest.raises(StockInvariantBroken):
        svc.store.set_on_hand("north", "tea", -1)
    with pytest.raises(WarehouseNotFound):
        svc.store.set_on_hand("east", "tea", 1)
    picked = svc.store.mark_picked("o1")
    assert picked.status == "picked"
    assert svc.store.stock()[("north", "tea")] == {"on_hand": 0, "reserved": 0, "atp": 0}
    with pytest.raises(StockInvariantBroken):
        svc.store.mark_picked("o1")


def test_reoptimise_applies_the_joint_plan(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    svc.store.set_on_hand("north", "cup", 0)
    svc.store.set_on_hand("south", "tea", 1)
    svc.store.set_on_hand("north", "tea", 1)
    # o1 (tea, next to south) takes south's only tea; o2 (2h, cup + tea) must then split:
    # cup from south, tea from north. Jointly: o1 from north, o2 whole from south.
    first = svc.place_order(Order.create("o1", [("tea", 1)], LatLng(49.383, 8.69), "standard", 100))
    assert first.allocation is not None and first.allocation.chosen.label() == "single:south"
    second = svc.place_order(Order.create("o2", [("cup", 1), ("tea", 1)], CUSTOMER, "2h", 200))
    assert second.allocation is not None and second.allocation.chosen.decision == "split"
    report = svc.reoptimise(BatchParams(time_limit_s=5, seed=0))
    assert report["status"] == "OPTIMAL"
    assert report["changed"] == 2
    assert report["after"]["split_orders"] == 0
    assert report["after"]["total_minor"] < report["before"]["total_minor"]
    o2 = svc.store.get_order("o2")
    assert o2.allocation is not None and o2.allocation.chosen.label() == "single:south"
    stock = svc.store.stock()
    assert {k: v["reserved"] for k, v in stock.items()} == {
        ("north", "cup"): 0,
        ("north", "tea"): 1,
        ("south", "cup"): 1,
        ("south", "tea"): 1,
    }


def _outbox_rows(svc: AllocationService) -> int:
    engine = svc.store.engine  # type: ignore[attr-defined]
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(outbox)).scalar_one())
