"""Warehouses, stock, orders and their reservations in SQL (SQLite by default, PostgreSQL in CI).

Stock can never go negative, enforced twice: CHECK constraints (``on_hand >= 0``,
``0 <= reserved <= on_hand``) and conditional writes (``UPDATE ... SET reserved = reserved + q
WHERE on_hand - reserved >= q``). An order's reservations are written all-or-nothing in the
transaction that records the order; if any line lost a race the whole transaction rolls back
and :class:`StockConflict` tells the service to re-plan. Placing the same order id again
returns the stored decision and changes nothing. Every stock change and every allocation puts an
event in the outbox in the same transaction (topics ``fulfillment.stock`` and
``fulfillment.orders``). ATP = on_hand - reserved.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import (
    Engine,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hexcity.fulfillment.adapters.sql_plans import SqlPlanStore, add_history
from hexcity.fulfillment.adapters.sql_schema import (
    MAX_PENDING,
    TOPIC_ORDERS,
    TOPIC_STOCK,
    customers,
    metadata,
    orders,
    reservations,
    stock,
    warehouses,
)
from hexcity.fulfillment.domain.allocation import (
    Allocation,
    StoredOrder,
    allocation_from_dict,
    allocation_to_dict,
)
from hexcity.fulfillment.domain.network import Lane, Order, OrderLine, Sla, Warehouse
from hexcity.fulfillment.errors import (
    OrderNotFound,
    StockConflict,
    StockInvariantBroken,
    WarehouseNotFound,
)
from hexcity.infra.outbox import add_to_outbox
from hexcity.infra.sql import metadata as infra_metadata
from hexcity.infra.sql import writer
from hexcity.kernel import LatLng
from hexcity.kernel.events import Event

__all__ = ["MAX_PENDING", "TOPIC_ORDERS", "TOPIC_STOCK", "SqlAllocationStore", "metadata"]


class SqlAllocationStore(SqlPlanStore):
    """The ``AllocationStore`` port over SQLAlchemy (with route plans and deliveries)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._w = writer(engine)

    def create_schema(self) -> None:
        infra_metadata.create_all(writer(self.engine), checkfirst=True)
        metadata.create_all(writer(self.engine), checkfirst=True)

    # ---- network ----------------------------------------------------------------------------
    def put_warehouse(self, w: Warehouse) -> None:
        values = {
            "lat": w.location.lat,
            "lng": w.location.lng,
            "handling_cost_minor": w.handling_cost_minor,
            "cutoff_s": w.cutoff_s,
            "capacity_orders": w.capacity_orders,
            "pick_time_s": w.pick_time_s,
        }
        with Session(self._w) as s, s.begin():
            changed = _rows(s.execute(update(warehouses).where(warehouses.c.id == w.id).values(**values)))
            if not changed:
                s.execute(insert(warehouses).values(id=w.id, **values))

    def warehouses(self) -> list[Warehouse]:
        with self.engine.connect() as c:
            rows = c.execute(select(warehouses).order_by(warehouses.c.id)).all()
        return [_warehouse(r._mapping) for r in rows]

    def set_on_hand(self, warehouse_id: str, sku: str, on_hand: int, cause: str = "count") -> dict[str, int]:
        """Set the physical stock of one SKU (receipt, count, pick). Refused if below what is reserved."""
        if on_hand < 0:
            raise StockInvariantBroken(f"on_hand of {sku} at {warehouse_id} cannot be negative")
        with Session(self._w) as s, s.begin():
            if s.execute(select(warehouses.c.id).where(warehouses.c.id == warehouse_id)).first() is None:
                raise WarehouseNotFound(f"no warehouse {warehouse_id}")
            key = (stock.c.warehouse_id == warehouse_id) & (stock.c.sku == sku)
            row = s.execute(select(stock.c.on_hand, stock.c.reserved).where(key).with_for_update()).first()
            reserved = 0 if row is None else int(row.reserved)
            if on_hand < reserved:
                raise StockInvariantBroken(
                    f"{sku} at {warehouse_id}: {reserved} reserved, cannot set on_hand {on_hand}"
                )
            if row is None:
                s.execute(
                    insert(stock).values(warehouse_id=warehouse_id, sku=sku, on_hand=on_hand, reserved=0)
                )
            else:
                s.execute(update(stock).where(key).values(on_hand=on_hand))
            position = {"on_hand": on_hand, "reserved": reserved, "atp": on_hand - reserved}
            _stock_event(s, warehouse_id, sku, position, cause)
        return position

    def stock(self, warehouse_id: str | None = None) -> dict[tuple[str, str], dict[str, int]]:
        query = select(stock).order_by(stock.c.warehouse_id, stock.c.sku)
        if warehouse_id is not None:
            query = query.where(stock.c.warehouse_id == warehouse_id)
        with self.engine.connect() as c:
            rows = c.execute(query).all()
        return {
            (r.warehouse_id, r.sku): {
                "on_hand": r.on_hand,
                "reserved": r.reserved,
                "atp": r.on_hand - r.reserved,
            }
            for r in rows
        }

    def atp(self) -> dict[tuple[str, str], int]:
        return {key: v["atp"] for key, v in self.stock().items()}

    def load(self) -> dict[str, int]:
        """Parcels planned per warehouse (allocated orders, not yet picked)."""
        out: dict[str, int] = {}
        with self.engine.connect() as c:
            rows = c.execute(
                select(reservations.c.warehouse_id, func.count(func.distinct(reservations.c.order_id)))
                .join(orders, orders.c.id == reservations.c.order_id)
                .where(orders.c.status == "allocated")
                .group_by(reservations.c.warehouse_id)
            ).all()
        for wid, count in rows:
            out[str(wid)] = int(count)
        return out

    # ---- orders -----------------------------------------------------------------------------
    def get_order(self, order_id: str) -> StoredOrder:
        with self.engine.connect() as c:
            row = c.execute(select(orders).where(orders.c.id == order_id)).first()
        if row is None:
            raise OrderNotFound(f"no order {order_id}")
        return _stored(row._mapping)

    def link_customer(self, order_id: str, customer_id: str) -> None:
        """Record who ``order_id`` is for (idempotent; the first customer given stays)."""
        with Session(writer(self.engine)) as s, s.begin():
            known = s.execute(select(customers.c.customer_id).where(customers.c.order_id == order_id)).first()
            if known is None:
                s.execute(insert(customers).values(order_id=order_id, customer_id=customer_id))

    def orders_of_customer(self, customer_id: str, limit: int = 20) -> list[str]:
        """The customer's order ids, newest first (by insertion), at most ``limit``."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(customers.c.order_id)
                .where(customers.c.customer_id == customer_id)
                .order_by(customers.c.order_id.desc())
                .limit(max(1, min(limit, 200)))
            ).all()
        return [str(r[0]) for r in rows]

    def find_order(self, order_id: str) -> StoredOrder | None:
        try:
            return self.get_order(order_id)
        except OrderNotFound:
            return None

    def save_allocation(self, order: Order, allocation: Allocation, lanes: dict[str, Lane]) -> StoredOrder:
        """Record the order and take its stock, all or nothing. Raises StockConflict on a lost race."""
        try:
            with Session(self._w) as s, s.begin():
                s.execute(insert(orders).values(**_order_row(order, lanes), **_allocated(allocation)))
                _reserve(s, order.id, allocation.reserved())
                add_to_outbox(s, _order_event(order.id, "allocated", allocation_to_dict(allocation)))
                add_history(s, order.id, "allocated", order.placed_at_s, _decision(allocation))
        except IntegrityError as exc:
            existing = self.find_order(order.id)
            if existing is not None:
                return existing  # placed before: idempotent
            raise StockConflict(f"order {order.id}: stock changed while allocating") from exc
        return self.get_order(order.id)

    def save_unallocated(self, order: Order, reason: str, lanes: dict[str, Lane]) -> StoredOrder:
        """Record an order we could not allocate, with its reason (never silently dropped)."""
        try:
            with Session(self._w) as s, s.begin():
                s.execute(
                    insert(orders).values(
                        **_order_row(order, lanes), status="unallocated", reason=reason[:500]
                    )
                )
                add_to_outbox(s, _order_event(order.id, "unallocated", {"reason": reason}))
                add_history(s, order.id, "unallocated", order.placed_at_s, {"reason": reason[:500]})
        except IntegrityError:
            pass  # placed before: the stored decision stands
        return self.get_order(order.id)

    def pending(self, limit: int = MAX_PENDING) -> list[StoredOrder]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(orders).where(orders.c.status == "allocated").order_by(orders.c.id).limit(limit)
            ).all()
        return [_stored(r._mapping) for r in rows]

    def picked(self, limit: int = MAX_PENDING) -> list[StoredOrder]:
        """Picked orders not yet delivered (their parcels are with the couriers or about to be)."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(orders).where(orders.c.status == "picked").order_by(orders.c.id).limit(limit)
            ).all()
        return [_stored(r._mapping) for r in rows]

    def reallocate(self, changes: list[tuple[Allocation, Allocation]]) -> None:
        """Swap old for new allocations atomically: release every old hold, then take the new ones."""
        if not changes:
            return
        try:
            with Session(self._w) as s, s.begin():
                for old, _ in changes:
                    _release(s, old.order_id, old.reserved())
                for _, new in changes:
                    _reserve(s, new.order_id, new.reserved())
                    s.execute(
                        update(orders)
                        .where((orders.c.id == new.order_id) & (orders.c.status == "allocated"))
                        .values(**_allocated(new))
                    )
                    add_to_outbox(s, _order_event(new.order_id, "reallocated", allocation_to_dict(new)))
                    add_history(s, new.order_id, "reallocated", None, _decision(new))
        except IntegrityError as exc:
            raise StockConflict("stock changed during re-optimisation; nothing was changed") from exc

    def mark_picked(self, order_id: str) -> StoredOrder:
        """Picking turns holds into a physical stock decrement (on_hand and reserved both drop)."""
        with Session(self._w) as s, s.begin():
            row = s.execute(select(orders.c.status).where(orders.c.id == order_id).with_for_update()).first()
            if row is None:
                raise OrderNotFound(f"no order {order_id}")
            if row.status != "allocated":
                raise StockInvariantBroken(f"order {order_id} is {row.status}, not allocated")
            held = s.execute(select(reservations).where(reservations.c.order_id == order_id)).all()
            for r in held:
                key = (stock.c.warehouse_id == r.warehouse_id) & (stock.c.sku == r.sku)
                s.execute(
                    update(stock)
                    .where(key)
                    .values(on_hand=stock.c.on_hand - r.qty, reserved=stock.c.reserved - r.qty)
                )
                _stock_event(s, r.warehouse_id, r.sku, _position(s, r.warehouse_id, r.sku), "pick")
            s.execute(delete(reservations).where(reservations.c.order_id == order_id))
            s.execute(update(orders).where(orders.c.id == order_id).values(status="picked"))
            add_to_outbox(s, _order_event(order_id, "picked", {}))
            add_history(s, order_id, "picked", None, {})
        return self.get_order(order_id)


def _reserve(s: Session, order_id: str, held: dict[tuple[str, str], int]) -> None:
    for (wid, sku), qty in sorted(held.items()):
        key = (stock.c.warehouse_id == wid) & (stock.c.sku == sku)
        done = _rows(
            s.execute(
                update(stock)
                .where(key & (stock.c.on_hand - stock.c.reserved >= qty))
                .values(reserved=stock.c.reserved + qty)
            )
        )
        if done != 1:
            raise StockConflict(f"order {order_id}: {wid} no longer has {qty} of {sku} available")
        current = s.execute(
            select(reservations.c.qty).where(
                (reservations.c.order_id == order_id)
                & (reservations.c.warehouse_id == wid)
                & (reservations.c.sku == sku)
            )
        ).first()
        if current is None:
            s.execute(insert(reservations).values(order_id=order_id, warehouse_id=wid, sku=sku, qty=qty))
        else:
            s.execute(
                update(reservations)
                .where(
                    (reservations.c.order_id == order_id)
                    & (reservations.c.warehouse_id == wid)
                    & (reservations.c.sku == sku)
                )
                .values(qty=reservations.c.qty + qty)
            )
        _stock_event(s, wid, sku, _position(s, wid, sku), f"reserve:{order_id}")


def _release(s: Session, order_id: str, held: dict[tuple[str, str], int]) -> None:
    for (wid, sku), qty in sorted(held.items()):
        key = (stock.c.warehouse_id == wid) & (stock.c.sku == sku)
        done = _rows(
            s.execute(
                update(stock).where(key & (stock.c.reserved >= qty)).values(reserved=stock.c.reserved - qty)
            )
        )
        if done != 1:
            raise StockInvariantBroken(f"order {order_id}: no hold of {qty} {sku} at {wid} to release")
        _stock_event(s, wid, sku, _position(s, wid, sku), f"release:{order_id}")
    s.execute(delete(reservations).where(reservations.c.order_id == order_id))


def _position(s: Session, wid: str, sku: str) -> dict[str, int]:
    row = s.execute(
        select(stock.c.on_hand, stock.c.reserved).where((stock.c.warehouse_id == wid) & (stock.c.sku == sku))
    ).one()
    return {"on_hand": row.on_hand, "reserved": row.reserved, "atp": row.on_hand - row.reserved}


def _stock_event(s: Session, wid: str, sku: str, position: dict[str, int], cause: str) -> None:
    add_to_outbox(
        s, Event(TOPIC_STOCK, f"{wid}:{sku}", {"warehouse_id": wid, "sku": sku, "cause": cause, **position})
    )


def _order_event(order_id: str, status: str, detail: dict[str, Any]) -> Event:
    return Event(TOPIC_ORDERS, order_id, {"order_id": order_id, "status": status, "detail": detail})


def _order_row(order: Order, lanes: dict[str, Lane]) -> dict[str, Any]:
    return {
        "id": order.id,
        "sla": order.sla.value,
        "lat": order.destination.lat,
        "lng": order.destination.lng,
        "placed_at_s": order.placed_at_s,
        "lines": [[line.sku, line.qty] for line in order.lines],
        "lanes": {
            wid: [_finite(lane.distance_m), _finite(lane.duration_s)] for wid, lane in sorted(lanes.items())
        },
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _allocated(allocation: Allocation) -> dict[str, Any]:
    return {
        "status": "allocated",
        "allocation": allocation_to_dict(allocation),
        "total_minor": allocation.chosen.total_minor,
        "reason": "; ".join(allocation.reasons)[:500],
    }


def _decision(allocation: Allocation) -> dict[str, Any]:
    return {
        "decision": allocation.chosen.label(),
        "total_minor": allocation.chosen.total_minor,
        "warehouses": sorted({p.warehouse_id for p in allocation.chosen.packages}),
    }


def _warehouse(row: Any) -> Warehouse:
    return Warehouse(
        row["id"],
        LatLng(row["lat"], row["lng"]),
        row["handling_cost_minor"],
        row["cutoff_s"],
        row["capacity_orders"],
        row["pick_time_s"],
    )


def _stored(row: Any) -> StoredOrder:
    order = Order(
        row["id"],
        tuple(OrderLine(sku, int(qty)) for sku, qty in row["lines"]),
        LatLng(row["lat"], row["lng"]),
        Sla(row["sla"]),
        row["placed_at_s"],
    )
    lanes = {
        wid: Lane(float("nan") if d is None else d, float("nan") if t is None else t)
        for wid, (d, t) in row["lanes"].items()
    }
    allocation = None if row["allocation"] is None else allocation_from_dict(row["allocation"])
    return StoredOrder(order, row["status"], allocation, row["reason"], lanes)


def _rows(result: Any) -> int:
    """Rows matched by an UPDATE (``CursorResult.rowcount``)."""
    return int(result.rowcount)
