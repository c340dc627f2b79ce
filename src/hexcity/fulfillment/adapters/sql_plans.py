"""Route plans, stops, deliveries and order history in SQL (mixed into ``SqlAllocationStore``).

Saving a plan moves every parcel it routes off its previous ``planned`` stop (now ``replanned``)
in the same transaction, so a parcel has at most one live stop. Delivering a stop locks it,
checks the plan and the order, records time and on-time, and when it was the order's last parcel
turns the order ``delivered``; the ``fulfillment.delivered`` event goes through the outbox in the
same transaction. A second delivery of the same stop changes nothing and answers the stored one.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.orm import Session

from hexcity.fulfillment.adapters.sql_schema import history, orders, plans, stops
from hexcity.fulfillment.domain.allocation import allocation_from_dict
from hexcity.fulfillment.domain.delivery import (
    ACTIVE,
    CANCELLED,
    COMPLETED,
    DELIVERED,
    PLANNED,
    REPLANNED,
    Delivery,
    HistoryEntry,
    PlanStop,
    RoutePlan,
    on_time,
)
from hexcity.fulfillment.errors import (
    DeliveryConflict,
    InvalidOrder,
    OrderNotFound,
    OrderNotPicked,
    PlanCancelled,
    PlanNotFound,
    StopNotFound,
    StopReplanned,
)
from hexcity.infra.outbox import add_to_outbox
from hexcity.kernel import LatLng
from hexcity.kernel.events import Event

TOPIC_PLANS = "fulfillment.plans"
TOPIC_DELIVERED = "fulfillment.delivered"
MAX_HISTORY = 500
MAX_ORDER_STOPS = 500
MAX_PLAN_LIST = 200  # plans per list_plans call
LIVE = (PLANNED, DELIVERED)
PLAN_STATUSES = (ACTIVE, COMPLETED, CANCELLED, REPLANNED)


def add_history(s: Session, order_id: str, status: str, at_s: int | None, detail: dict[str, Any]) -> None:
    s.execute(insert(history).values(order_id=order_id, status=status, at_s=at_s, detail=detail))


class SqlPlanStore:
    """Plan / delivery persistence; needs ``engine`` and the writer engine ``_w``."""

    engine: Engine
    _w: Engine

    def save_plans(self, new: list[RoutePlan]) -> None:
        """Store the routes of one planning round; parcels planned before move to their new stop."""
        if not new:
            return
        with Session(self._w) as s, s.begin():
            touched: set[str] = set()
            for plan in new:
                for stop in plan.stops:
                    old = s.execute(
                        select(stops.c.id, stops.c.plan_id)
                        .where(
                            (stops.c.order_id == stop.order_id)
                            & (stops.c.warehouse_id == stop.warehouse_id)
                            & (stops.c.status == PLANNED)
                        )
                        .with_for_update()
                    ).all()
                    for row in old:
                        s.execute(update(stops).where(stops.c.id == row.id).values(status=REPLANNED))
                        touched.add(str(row.plan_id))
                    if old:
                        add_history(
                            s, stop.order_id, "replanned", None,
                            {"from_stops": [str(r.id) for r in old], "to_stop": stop.id},
                        )  # fmt: skip
            for plan in new:
                s.execute(insert(plans).values(**_plan_row(plan)))
                for stop in plan.stops:
                    s.execute(insert(stops).values(**_stop_row(stop)))
                    add_history(s, stop.order_id, "planned", None, _planned_detail(plan, stop))
                add_to_outbox(s, Event(TOPIC_PLANS, plan.id, _plan_event(plan)))
            for plan_id in sorted(touched):
                live = s.execute(
                    select(func.count()).where((stops.c.plan_id == plan_id) & stops.c.status.in_(LIVE))
                ).scalar_one()
                if not live:
                    s.execute(
                        update(plans)
                        .where((plans.c.id == plan_id) & (plans.c.status == ACTIVE))
                        .values(status=REPLANNED)
                    )

    def get_plan(self, plan_id: str) -> RoutePlan:
        with self.engine.connect() as c:
            row = c.execute(select(plans).where(plans.c.id == plan_id)).first()
            if row is None:
                raise PlanNotFound(f"no plan {plan_id}")
            rows = c.execute(select(stops).where(stops.c.plan_id == plan_id).order_by(stops.c.position)).all()
        return _plan(row._mapping, [_stop(r._mapping) for r in rows])

    def list_plans(
        self,
        status: str | None = ACTIVE,
        warehouse_id: str | None = None,
        limit: int = 50,
        after: str | None = None,
        *,
        without_geometry: Collection[str] = (),
    ) -> list[RoutePlan]:
        """Plans with their stops, by id (ascending, after ``after`` when given): at most ``limit``
        (1..:data:`MAX_PLAN_LIST`), filtered by ``status`` (None: any) and ``warehouse_id``.
        Plans whose id is in ``without_geometry`` come with an empty ``geometry`` (the caller has
        it already: reading and parsing the stored paths is most of the cost of a listing).
        Raises ValueError on a limit out of bounds or an unknown status."""
        if not 1 <= limit <= MAX_PLAN_LIST:
            raise ValueError(f"limit must be in [1, {MAX_PLAN_LIST}]")
        if status is not None and status not in PLAN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(PLAN_STATUSES)}")
        columns = [c for c in plans.c if c.name != "geometry"]
        query = select(*columns).order_by(plans.c.id).limit(limit)
        if status is not None:
            query = query.where(plans.c.status == status)
        if warehouse_id is not None:
            query = query.where(plans.c.warehouse_id == warehouse_id)
        if after is not None:
            query = query.where(plans.c.id > after)
        with self.engine.connect() as c:
            rows = c.execute(query).all()
            ids = [str(r.id) for r in rows]
            by_plan: dict[str, list[PlanStop]] = {i: [] for i in ids}
            paths: dict[str, Any] = {i: [] for i in ids}
            wanted = [i for i in ids if i not in without_geometry]
            if wanted:
                for r in c.execute(select(plans.c.id, plans.c.geometry).where(plans.c.id.in_(wanted))).all():
                    paths[str(r.id)] = r.geometry
            if ids:
                stop_rows = c.execute(
                    select(stops).where(stops.c.plan_id.in_(ids)).order_by(stops.c.plan_id, stops.c.position)
                ).all()
                for r in stop_rows:
                    by_plan[str(r.plan_id)].append(_stop(r._mapping))
        return [_plan({**r._mapping, "geometry": paths[str(r.id)]}, by_plan[str(r.id)]) for r in rows]

    def cancel_plan(self, plan_id: str, reason: str) -> RoutePlan:
        """Cancel a plan: its undelivered stops are cancelled (their parcels can be planned again).
        Cancelling twice is a no-op; a completed plan cannot be cancelled."""
        with Session(self._w) as s, s.begin():
            row = s.execute(select(plans).where(plans.c.id == plan_id).with_for_update()).first()
            if row is None:
                raise PlanNotFound(f"no plan {plan_id}")
            if row.status == COMPLETED:
                raise DeliveryConflict(f"plan {plan_id} is completed: every stop was delivered")
            if row.status != CANCELLED:
                pending = s.execute(
                    select(stops.c.id, stops.c.order_id).where(
                        (stops.c.plan_id == plan_id) & (stops.c.status == PLANNED)
                    )
                ).all()
                s.execute(
                    update(stops)
                    .where((stops.c.plan_id == plan_id) & (stops.c.status == PLANNED))
                    .values(status=CANCELLED)
                )
                s.execute(update(plans).where(plans.c.id == plan_id).values(status=CANCELLED, reason=reason))
                for stop in pending:
                    add_history(
                        s, stop.order_id, "plan_cancelled", None, {"stop_id": stop.id, "reason": reason}
                    )
                add_to_outbox(s, Event(TOPIC_PLANS, plan_id, {"plan_id": plan_id, "status": CANCELLED}))
        return self.get_plan(plan_id)

    def get_stop(self, stop_id: str) -> PlanStop:
        with self.engine.connect() as c:
            row = c.execute(select(stops).where(stops.c.id == stop_id)).first()
        if row is None:
            raise StopNotFound(f"no stop {stop_id}")
        return _stop(row._mapping)

    def order_stops(self, order_id: str) -> list[PlanStop]:
        """Every stop an order's parcels were ever planned at (re-planned and cancelled too)."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(stops)
                .where(stops.c.order_id == order_id)
                .order_by(stops.c.warehouse_id, stops.c.plan_id, stops.c.position)
                .limit(MAX_ORDER_STOPS)
            ).all()
        return [_stop(r._mapping) for r in rows]

    def plans_of(self, plan_ids: list[str]) -> dict[str, RoutePlan]:
        """Plans by id, without their stops (courier, status) — for explaining an order."""
        if not plan_ids:
            return {}
        with self.engine.connect() as c:
            rows = c.execute(select(plans).where(plans.c.id.in_(sorted(set(plan_ids))))).all()
        return {str(r.id): _plan(r._mapping, []) for r in rows}

    def order_history(self, order_id: str) -> list[HistoryEntry]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(history)
                .where(history.c.order_id == order_id)
                .order_by(history.c.id)
                .limit(MAX_HISTORY)
            ).all()
        return [HistoryEntry(str(r.status), r.at_s, dict(r.detail)) for r in rows]

    def live_parcels(self, warehouse_id: str) -> set[str]:
        """Order ids with a planned or delivered stop for their parcel from ``warehouse_id``."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(stops.c.order_id)
                .where((stops.c.warehouse_id == warehouse_id) & stops.c.status.in_(LIVE))
                .distinct()
            ).all()
        return {str(r.order_id) for r in rows}

    def deliver(self, stop_id: str, delivered_at_s: int, by: str) -> Delivery:
        """Mark a stop delivered at ``delivered_at_s`` (seconds of the day, the orders' clock)."""
        with Session(self._w) as s, s.begin():
            row = s.execute(select(stops).where(stops.c.id == stop_id).with_for_update()).first()
            if row is None:
                raise StopNotFound(f"no stop {stop_id}")
            stop = _stop(row._mapping)
            order = s.execute(select(orders).where(orders.c.id == stop.order_id).with_for_update()).first()
            if order is None:
                raise OrderNotFound(f"no order {stop.order_id}")
            if stop.status == DELIVERED:
                return _delivery(s, stop, order, repeated=True)
            plan_status = s.execute(select(plans.c.status).where(plans.c.id == stop.plan_id)).scalar_one()
            if CANCELLED in (stop.status, plan_status):
                raise PlanCancelled(f"stop {stop_id} belongs to cancelled plan {stop.plan_id}")
            if stop.status == REPLANNED:
                current = s.execute(
                    select(stops.c.id).where(
                        (stops.c.order_id == stop.order_id)
                        & (stops.c.warehouse_id == stop.warehouse_id)
                        & stops.c.status.in_(LIVE)
                    )
                ).first()
                where = f"stop {current.id}" if current is not None else "no live stop"
                raise StopReplanned(f"stop {stop_id} was re-planned; the parcel is now at {where}")
            if order.status != "picked":
                raise OrderNotPicked(f"order {stop.order_id} is {order.status}: pick it before delivering")
            if delivered_at_s < int(order.placed_at_s):
                raise InvalidOrder(
                    f"delivered_at_s {delivered_at_s} is before the order was placed ({order.placed_at_s})"
                )
            punctual = on_time(delivered_at_s, stop.deadline_s)
            s.execute(
                update(stops)
                .where(stops.c.id == stop_id)
                .values(status=DELIVERED, delivered_at_s=delivered_at_s, on_time=punctual)
            )
            stop = _stop(
                {**row._mapping, "status": DELIVERED, "delivered_at_s": delivered_at_s, "on_time": punctual}
            )
            add_history(
                s, stop.order_id, "parcel_delivered", delivered_at_s,
                {"stop_id": stop_id, "warehouse_id": stop.warehouse_id, "on_time": punctual, "by": by},
            )  # fmt: skip
            result = _delivery(s, stop, order, repeated=False)
            if result.order_status == DELIVERED:
                s.execute(update(orders).where(orders.c.id == stop.order_id).values(status=DELIVERED))
                add_history(
                    s, stop.order_id, DELIVERED, result.delivered_at_s,
                    {"on_time": result.on_time, "deadline_s": result.deadline_s},
                )  # fmt: skip
            left = s.execute(
                select(func.count()).where((stops.c.plan_id == stop.plan_id) & (stops.c.status == PLANNED))
            ).scalar_one()
            if not left:
                s.execute(
                    update(plans)
                    .where((plans.c.id == stop.plan_id) & (plans.c.status == ACTIVE))
                    .values(status=COMPLETED)
                )
            add_to_outbox(s, Event(TOPIC_DELIVERED, stop.order_id, _delivered_event(result)))
            return result


def _delivery(s: Session, stop: PlanStop, order: Any, *, repeated: bool) -> Delivery:
    """Where the order stands after ``stop`` (read inside the delivering transaction)."""
    allocation = None if order.allocation is None else allocation_from_dict(order.allocation)
    warehouses = {p.warehouse_id for p in allocation.chosen.packages} if allocation is not None else set()
    done = s.execute(
        select(stops.c.warehouse_id, stops.c.delivered_at_s).where(
            (stops.c.order_id == stop.order_id) & (stops.c.status == DELIVERED)
        )
    ).all()
    delivered = {str(r.warehouse_id): int(r.delivered_at_s) for r in done}
    if stop.status == DELIVERED and stop.delivered_at_s is not None:
        delivered[stop.warehouse_id] = stop.delivered_at_s
    complete = bool(warehouses) and warehouses <= set(delivered)
    last = max(delivered[w] for w in warehouses) if complete else None
    status = DELIVERED if complete else str(order.status)
    return Delivery(
        stop,
        stop.order_id,
        status,
        len(warehouses),
        len(set(delivered) & warehouses),
        stop.deadline_s,
        last,
        None if last is None else on_time(last, stop.deadline_s),
        repeated,
    )


def _delivered_event(d: Delivery) -> dict[str, Any]:
    return {
        "stop_id": d.stop.id,
        "plan_id": d.stop.plan_id,
        "order_id": d.order_id,
        "warehouse_id": d.stop.warehouse_id,
        "delivered_at_s": d.stop.delivered_at_s,
        "parcel_on_time": d.stop.on_time,
        "order_status": d.order_status,
        "order_delivered_at_s": d.delivered_at_s,
        "order_on_time": d.on_time,
        "deadline_s": d.deadline_s,
    }


def _plan_event(plan: RoutePlan) -> dict[str, Any]:
    return {
        "plan_id": plan.id,
        "warehouse_id": plan.warehouse_id,
        "courier_id": plan.courier_id,
        "status": plan.status,
        "stops": [{"stop_id": s.id, "order_id": s.order_id, "eta_s": s.eta_s} for s in plan.stops],
    }


def _planned_detail(plan: RoutePlan, stop: PlanStop) -> dict[str, Any]:
    return {
        "plan_id": plan.id,
        "stop_id": stop.id,
        "courier_id": plan.courier_id,
        "warehouse_id": stop.warehouse_id,
        "position": stop.position,
        "stops_on_route": len(plan.stops),
        "eta_s": stop.eta_s,
        "deadline_s": stop.deadline_s,
    }


def _plan_row(plan: RoutePlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "warehouse_id": plan.warehouse_id,
        "courier_id": plan.courier_id,
        "status": plan.status,
        "start_s": plan.start_s,
        "end_s": plan.end_s,
        "duration_s": plan.duration_s,
        "distance_m": plan.distance_m,
        "geometry": [[lat, lng] for lat, lng in plan.geometry],
        "reason": plan.reason,
    }


def _stop_row(stop: PlanStop) -> dict[str, Any]:
    return {
        "id": stop.id,
        "plan_id": stop.plan_id,
        "position": stop.position,
        "order_id": stop.order_id,
        "warehouse_id": stop.warehouse_id,
        "lat": stop.location.lat,
        "lng": stop.location.lng,
        "eta_s": stop.eta_s,
        "deadline_s": stop.deadline_s,
        "status": stop.status,
        "delivered_at_s": stop.delivered_at_s,
        "on_time": stop.on_time,
    }


def _stop(row: Any) -> PlanStop:
    return PlanStop(
        str(row["id"]),
        str(row["plan_id"]),
        int(row["position"]),
        str(row["order_id"]),
        str(row["warehouse_id"]),
        LatLng(row["lat"], row["lng"]),
        int(row["eta_s"]),
        int(row["deadline_s"]),
        str(row["status"]),
        None if row["delivered_at_s"] is None else int(row["delivered_at_s"]),
        None if row["on_time"] is None else bool(row["on_time"]),
    )


def _plan(row: Any, plan_stops: list[PlanStop]) -> RoutePlan:
    return RoutePlan(
        str(row["id"]),
        str(row["warehouse_id"]),
        str(row["courier_id"]),
        int(row["start_s"]),
        int(row["end_s"]),
        int(row["duration_s"]),
        int(row["distance_m"]),
        tuple((float(lat), float(lng)) for lat, lng in row["geometry"]),
        tuple(plan_stops),
        str(row["status"]),
        row["reason"],
    )
