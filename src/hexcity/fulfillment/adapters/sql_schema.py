"""The fulfillment module's own SQL tables (one ``MetaData``, created by ``create_schema``).

Allocation: warehouses, stock (CHECK ``on_hand >= 0``, ``0 <= reserved <= on_hand``), orders and
their reservations. Last mile: route plans (one per courier route), their stops (one per parcel =
an order's package from one warehouse, with planned ETA, SLA deadline and delivery), and each
order's status history (allocated, planned, re-planned, picked, parcel delivered, delivered).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)

TOPIC_STOCK = "fulfillment.stock"
TOPIC_ORDERS = "fulfillment.orders"
MAX_PENDING = 10_000

metadata = MetaData()

warehouses = Table(
    "fulfillment_warehouses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("lat", Float, nullable=False),
    Column("lng", Float, nullable=False),
    Column("handling_cost_minor", Integer, nullable=False),
    Column("cutoff_s", Integer, nullable=False),
    Column("capacity_orders", Integer, nullable=False),
    Column("pick_time_s", Integer, nullable=False),
)

stock = Table(
    "fulfillment_stock",
    metadata,
    Column("warehouse_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("on_hand", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    PrimaryKeyConstraint("warehouse_id", "sku", name="pk_fulfillment_stock"),
    CheckConstraint("on_hand >= 0", name="ck_fulfillment_stock_on_hand"),
    CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="ck_fulfillment_stock_reserved"),
)

orders = Table(
    "fulfillment_orders",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # allocated | unallocated | picked
    Column("sla", String(16), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lng", Float, nullable=False),
    Column("placed_at_s", Integer, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("lanes", JSON, nullable=False),  # {warehouse id: [distance_m, duration_s]} at placement
    Column("allocation", JSON, nullable=True),
    Column("reason", String(500), nullable=True),
    Column("total_minor", Integer, nullable=True),
)

reservations = Table(
    "fulfillment_reservations",
    metadata,
    Column("order_id", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("qty", Integer, nullable=False),
    PrimaryKeyConstraint("order_id", "warehouse_id", "sku", name="pk_fulfillment_reservations"),
    CheckConstraint("qty > 0", name="ck_fulfillment_reservations_qty"),
)

# ---- last mile ---------------------------------------------------------------------------------
plans = Table(
    "fulfillment_plans",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("warehouse_id", String(64), nullable=False),
    Column("courier_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # active | completed | cancelled | replanned
    Column("start_s", Integer, nullable=False),
    Column("end_s", Integer, nullable=False),
    Column("duration_s", Integer, nullable=False),
    Column("distance_m", Integer, nullable=False),
    Column("geometry", JSON, nullable=False),  # [[lat, lng], ...] of the road path, depot to depot
    Column("reason", String(500), nullable=True),  # why it was cancelled
    Index("ix_fulfillment_plans_status", "status", "id"),  # the active plans, by id (the map)
)

stops = Table(
    "fulfillment_stops",
    metadata,
    Column("id", String(80), primary_key=True),  # "<plan id>.<position>"
    Column("plan_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),  # 1-based order on the route
    Column("order_id", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),  # the order's package shipped from there
    Column("lat", Float, nullable=False),
    Column("lng", Float, nullable=False),
    Column("eta_s", Integer, nullable=False),  # planned service start, seconds of the day
    Column("deadline_s", Integer, nullable=False),  # the order's SLA deadline
    Column("status", String(16), nullable=False),  # planned | delivered | replanned | cancelled
    Column("delivered_at_s", Integer, nullable=True),
    Column("on_time", Boolean, nullable=True),
    CheckConstraint("position >= 1", name="ck_fulfillment_stops_position"),
    Index("ix_fulfillment_stops_plan", "plan_id"),
    Index("ix_fulfillment_stops_order", "order_id"),
)

history = Table(
    "fulfillment_order_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("at_s", Integer, nullable=True),  # seconds of the day when known (the caller's clock)
    Column("detail", JSON, nullable=False),
    Index("ix_fulfillment_order_history_order", "order_id"),
)

customers = Table(  # who an order is for (a separate table: the orders table stays as it was)
    "fulfillment_order_customers",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Index("ix_fulfillment_order_customers_customer", "customer_id"),
)
