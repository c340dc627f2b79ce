"""Plans persisted, parcels re-planned, deliveries recorded (idempotent), orders explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.unit.fulfillment.test_allocation_service import CUSTOMER, NORTH, SOUTH, make_service

from hexcity.fulfillment.adapters.pyvrp_solver import PyVrpSolver
from hexcity.fulfillment.adapters.road_matrix import StraightLineMatrix
from hexcity.fulfillment.domain.delivery import RoutePlan, split_parcel_id
from hexcity.fulfillment.domain.network import Order
from hexcity.fulfillment.domain.solving import SolverParams
from hexcity.fulfillment.errors import (
    DeliveryConflict,
    InvalidOrder,
    OrderNotPicked,
    PlanCancelled,
    PlanNotFound,
    StopNotFound,
    StopReplanned,
)
from hexcity.fulfillment.lastmile import Courier, LastMilePlanner
from hexcity.fulfillment.service import AllocationService
from hexcity.infra.sql import outbox

DAY_S = 86_400
PARAMS = SolverParams(time_limit_s=0.2, seed=1)


def plan(svc: AllocationService, warehouse_id: str, couriers: int = 1) -> list[RoutePlan]:
    depot = next(w.location for w in svc.store.warehouses() if w.id == warehouse_id)
    road = StraightLineMatrix(speed_m_s=10.0)
    result = LastMilePlanner(road, PyVrpSolver()).plan(
        depot,
        [Courier(f"{warehouse_id}-c{i + 1}", 10, 36_000, 72_000) for i in range(couriers)],
        svc.delivery_parcels(warehouse_id),
        PARAMS,
    )
    return svc.record_plan(warehouse_id, result)


def stop_of(plans: list[RoutePlan], order_id: str) -> Any:
    return next(s for p in plans for s in p.stops if s.order_id == order_id)


def delivered_events(svc: AllocationService) -> list[dict[str, Any]]:
    engine = svc.store.engine  # type: ignore[attr-defined]
    with engine.connect() as c:
        rows = c.execute(
            select(outbox.c.payload).where(outbox.c.topic == "fulfillment.delivered").order_by(outbox.c.id)
        ).all()
    return [dict(r.payload) for r in rows]


def test_plan_is_stored_with_parcels_linked_to_stops(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    svc.place_order(Order.create("o1", [("tea", 1)], CUSTOMER, "2h", 36_000))
    svc.place_order(Order.create("o2", [("tea", 1)], NORTH, "standard", 36_000))
    (route,) = plan(svc, "north")
    assert route.courier_id == "north-c1"
    assert sorted(s.order_id for s in route.stops) == ["o1", "o2"]
    assert [s.position for s in route.stops] == [1, 2]
    assert [s.id for s in route.stops] == [f"{route.id}.1", f"{route.id}.2"]
    assert route.stops[0].eta_s < route.stops[1].eta_s
    assert stop_of([route], "o1").deadline_s == 36_000 + 7_200
    assert stop_of([route], "o2").deadline_s == 3 * DAY_S
    assert svc.store.get_plan(route.id) == route
    assert svc.store.get_stop(route.stops[0].id) == route.stops[0]
    with pytest.raises(PlanNotFound):
        svc.store.get_plan("plan-nope")


def test_delivery_end_to_end_idempotent_and_on_time(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    svc.place_order(Order.create("o1", [("tea", 1)], CUSTOMER, "2h", 36_000))
    svc.place_order(Order.create("o2", [("tea", 1)], NORTH, "standard", 36_000))
    first = plan(svc, "north")
    with pytest.raises(OrderNotPicked, match="order o1 is allocated"):
        svc.deliver(stop_of(first, "o1").id, 37_000, "ops")
    second = plan(svc, "north")  # not picked yet: planned again, the old stops are superseded
    old, new = stop_of(first, "o1"), stop_of(second, "o1")
    assert svc.store.get_stop(old.id).status == "replanned"
    assert svc.store.get_plan(first[0].id).status == "replanned"
    svc.store.mark_picked("o1")
    svc.store.mark_picked("o2")
    with pytest.raises(StopReplanned, match=f"now at stop {new.id}"):
        svc.deliver(old.id, 37_000, "ops")
    assert svc.delivery_parcels("north") == []  # picked and routed: nothing left to plan

    done = svc.deliver(new.id, new.eta_s, "north-c1")
    assert (done.order_status, done.on_time, done.repeated) == ("delivered", True, False)
    assert (done.parcels, done.parcels_delivered, done.delivered_at_s) == (1, 1, new.eta_s)
    again = svc.deliver(new.id, new.eta_s + 999, "north-c1")
    assert again.repeated
    assert (again.order_status, again.delivered_at_s, again.stop.delivered_at_s) == (
        "delivered",
        new.eta_s,
        new.eta_s,
    )
    assert svc.store.get_order("o1").status == "delivered"
    assert svc.store.get_plan(second[0].id).status == "active"  # o2 still to go

    late = svc.deliver(stop_of(second, "o2").id, 3 * DAY_S + 1, "north-c1")
    assert (late.order_status, late.on_time, late.stop.on_time) == ("delivered", False, False)
    assert svc.store.get_plan(second[0].id).status == "completed"
    events = delivered_events(svc)
    assert [(e["order_id"], e["order_status"], e["order_on_time"]) for e in events] == [
        ("o1", "delivered", True),
        ("o2", "delivered", False),
    ]
    history = svc.store.order_history("o1")
    assert [h.status for h in history] == [
        "allocated",
        "planned",
        "replanned",
        "planned",
        "picked",
        "parcel_delivered",
        "delivered",
    ]
    assert history[3].detail["stop_id"] == new.id
    assert history[3].detail["courier_id"] == "north-c1"
    assert history[-1].at_s == new.eta_s


def test_split_order_is_delivered_with_its_last_parcel(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    svc.store.set_on_hand("north", "cup", 1, "receipt")
    svc.store.set_on_hand("south", "cup", 0, "count")
    stored = svc.place_order(Order.create("s1", [("tea", 5), ("cup", 1)], CUSTOMER, "2h", 36_000))
    assert stored.allocation is not None
    assert sorted(p.warehouse_id for p in stored.allocation.chosen.packages) == ["north", "south"]
    north, south = stop_of(plan(svc, "north"), "s1"), stop_of(plan(svc, "south"), "s1")
    svc.store.mark_picked("s1")
    half = svc.deliver(north.id, 40_000, "ops")
    assert (half.order_status, half.parcels, half.parcels_delivered, half.on_time) == ("picked", 2, 1, None)
    whole = svc.deliver(south.id, 43_000, "ops")
    assert (whole.order_status, whole.delivered_at_s, whole.on_time) == ("delivered", 43_000, True)
    view = svc.explain("s1")
    assert {s.warehouse_id: s.status for s in view.stops} == {"north": "delivered", "south": "delivered"}
    assert view.deadline_s == 43_200


def test_cancelled_plan_refuses_delivery_and_its_parcels_are_planned_again(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    svc.place_order(Order.create("o1", [("tea", 1)], CUSTOMER, "2h", 36_000))
    (route,) = plan(svc, "north")
    svc.store.mark_picked("o1")
    assert svc.delivery_parcels("north") == []
    cancelled = svc.store.cancel_plan(route.id, "van broke down")
    assert (cancelled.status, cancelled.reason) == ("cancelled", "van broke down")
    assert [s.status for s in cancelled.stops] == ["cancelled"]
    assert svc.store.cancel_plan(route.id, "again") == cancelled  # no-op
    with pytest.raises(PlanCancelled, match=f"cancelled plan {route.id}"):
        svc.deliver(route.stops[0].id, 37_000, "ops")
    assert [split_parcel_id(p.id) for p in svc.delivery_parcels("north")] == [("o1", "north")]
    (again,) = plan(svc, "north")
    done = svc.deliver(again.stops[0].id, 37_000, "ops")
    assert done.order_status == "delivered"
    with pytest.raises(DeliveryConflict, match="completed"):
        svc.store.cancel_plan(again.id, "too late")


def test_bad_deliveries_are_refused(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    svc.place_order(Order.create("o1", [("tea", 1)], SOUTH, "2h", 36_000))
    (route,) = plan(svc, "south")
    svc.store.mark_picked("o1")
    with pytest.raises(StopNotFound):
        svc.deliver("plan-x.1", 37_000, "ops")
    with pytest.raises(InvalidOrder, match="before the order was placed"):
        svc.deliver(route.stops[0].id, 35_999, "ops")
    with pytest.raises(InvalidOrder, match="delivered_at_s must be in"):
        svc.deliver(route.stops[0].id, -1, "ops")
    assert svc.store.get_stop(route.stops[0].id).status == "planned"
    assert delivered_events(svc) == []
