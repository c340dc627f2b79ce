"""Route plans, their stops and deliveries as stored: the last mile made explainable.

A *parcel* is an order's package from one warehouse (id ``"<order id>@<warehouse id>"``); each
planning round turns a courier's route into a :class:`RoutePlan` whose :class:`PlanStop` s say
which parcel is delivered at which position and planned ETA. A parcel planned again in a later
round moves to the new stop (the old one becomes ``replanned``). A stop is delivered once
(idempotent); an order is delivered when every one of its parcels is, on time when the last
delivery is no later than the SLA deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hexcity.kernel import LatLng

# stop statuses
PLANNED = "planned"
DELIVERED = "delivered"
REPLANNED = "replanned"
CANCELLED = "cancelled"
# plan statuses
ACTIVE = "active"
COMPLETED = "completed"


def parcel_id(order_id: str, warehouse_id: str) -> str:
    return f"{order_id}@{warehouse_id}"


def split_parcel_id(value: str) -> tuple[str, str]:
    """``"<order>@<warehouse>"`` -> (order id, warehouse id); ValueError when it is not one."""
    order_id, sep, warehouse_id = value.rpartition("@")
    if not sep or not order_id or not warehouse_id:
        raise ValueError(f"not a parcel id: {value!r}")
    return order_id, warehouse_id


@dataclass(frozen=True, slots=True)
class PlanStop:
    id: str  # "<plan id>.<position>"
    plan_id: str
    position: int  # 1-based
    order_id: str
    warehouse_id: str
    location: LatLng
    eta_s: int
    deadline_s: int
    status: str = PLANNED
    delivered_at_s: int | None = None
    on_time: bool | None = None

    @property
    def parcel_id(self) -> str:
        return parcel_id(self.order_id, self.warehouse_id)


@dataclass(frozen=True, slots=True)
class RoutePlan:
    id: str
    warehouse_id: str
    courier_id: str
    start_s: int
    end_s: int
    duration_s: int
    distance_m: int
    geometry: tuple[tuple[float, float], ...]
    stops: tuple[PlanStop, ...]
    status: str = ACTIVE
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One step of an order's life: ``status`` with the time (seconds of the day) when known."""

    status: str
    at_s: int | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    """The answer to "stop delivered": the stop as stored and where its order stands."""

    stop: PlanStop
    order_id: str
    order_status: str
    parcels: int  # of the order
    parcels_delivered: int
    deadline_s: int
    delivered_at_s: int | None  # of the order: its last parcel, once all are delivered
    on_time: bool | None  # of the order, once delivered
    repeated: bool  # the stop had been delivered before: nothing changed


def on_time(delivered_at_s: int, deadline_s: int) -> bool:
    return delivered_at_s <= deadline_s
