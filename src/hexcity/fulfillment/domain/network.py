"""The fulfillment network: warehouses, orders, SLA classes, lanes and the cost model.

Money is in integer minor units (cents); distances in metres, times in seconds. A lane is the
road distance and duration between two places (nan when there is no road), computed by the
routing engine through the ``RoadMatrix`` port, never straight lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from hexcity.fulfillment.errors import InvalidOrder
from hexcity.kernel import LatLng

DAY_S = 86_400


class Sla(StrEnum):
    TWO_HOUR = "2h"
    SAME_DAY = "same_day"
    STANDARD = "standard"


@dataclass(frozen=True, slots=True)
class Warehouse:
    """A site that ships parcels. ``cutoff_s``: seconds after midnight after which it can no
    longer ship same-day or 2h; ``capacity_orders``: parcels it can ship per planning day."""

    id: str
    location: LatLng
    handling_cost_minor: int = 50  # labour per line picked
    cutoff_s: int = 18 * 3600
    capacity_orders: int = 1_000
    pick_time_s: int = 900

    def __post_init__(self) -> None:
        if not self.id or len(self.id) > 64:
            raise InvalidOrder("warehouse id must be 1..64 characters")
        if self.handling_cost_minor < 0 or self.capacity_orders < 0 or self.pick_time_s < 0:
            raise InvalidOrder(f"warehouse {self.id}: costs, capacity and pick time must be >= 0")
        if not 0 <= self.cutoff_s <= DAY_S:
            raise InvalidOrder(f"warehouse {self.id}: cutoff_s must be within a day")


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    lines: tuple[OrderLine, ...]
    destination: LatLng
    sla: Sla
    placed_at_s: int = 0  # seconds after midnight of the planning day

    @staticmethod
    def create(
        order_id: str, lines: list[tuple[str, int]], destination: LatLng, sla: str, placed_at_s: int = 0
    ) -> Order:
        """Validated order with duplicate SKUs merged. Raises InvalidOrder."""
        if not order_id or len(order_id) > 64:
            raise InvalidOrder("order id must be 1..64 characters")
        if not lines:
            raise InvalidOrder(f"order {order_id}: no lines")
        merged: dict[str, int] = {}
        for sku, qty in lines:
            if not sku or len(sku) > 64:
                raise InvalidOrder(f"order {order_id}: a SKU must be 1..64 characters")
            if qty <= 0:
                raise InvalidOrder(f"order {order_id}: quantity of {sku} must be positive, got {qty}")
            merged[sku] = merged.get(sku, 0) + qty
        try:
            level = Sla(sla)
        except ValueError as exc:
            raise InvalidOrder(f"order {order_id}: sla must be one of {[s.value for s in Sla]}") from exc
        if not (-90 <= destination.lat <= 90 and -180 <= destination.lng <= 180):
            raise InvalidOrder(f"order {order_id}: destination is not a valid coordinate")
        if not 0 <= placed_at_s < DAY_S:
            raise InvalidOrder(f"order {order_id}: placed_at_s must be within the day")
        ordered = tuple(OrderLine(sku, merged[sku]) for sku in sorted(merged))
        return Order(order_id, ordered, destination, level, placed_at_s)


@dataclass(frozen=True, slots=True)
class Lane:
    distance_m: float
    duration_s: float

    @property
    def reachable(self) -> bool:
        return math.isfinite(self.distance_m) and math.isfinite(self.duration_s)


@dataclass(frozen=True, slots=True)
class CostModel:
    """Carrier, labour, split and transfer costs (minor units). P_split defaults to 5.00."""

    package_base_minor: int = 300
    package_per_km_minor: int = 40
    split_penalty_minor: int = 500
    transfer_base_minor: int = 200
    transfer_per_km_minor: int = 10
    transfer_lead_s: int = 4 * 3600
    max_packages: int = 3
    standard_days: int = 3

    def package_minor(self, lane: Lane) -> int:
        return self.package_base_minor + math.ceil(self.package_per_km_minor * lane.distance_m / 1000)

    def transfer_minor(self, lane: Lane) -> int:
        return self.transfer_base_minor + math.ceil(self.transfer_per_km_minor * lane.distance_m / 1000)

    def deadline_s(self, order: Order) -> int:
        if order.sla is Sla.TWO_HOUR:
            return order.placed_at_s + 2 * 3600
        if order.sla is Sla.SAME_DAY:
            return DAY_S
        return self.standard_days * DAY_S


@dataclass(frozen=True, slots=True)
class NetworkView:
    """What one allocation sees: warehouses (sorted by id), ATP per (warehouse, sku), lanes,
    and parcels already planned per warehouse today."""

    warehouses: list[Warehouse]
    atp: dict[tuple[str, str], int]
    to_destination: dict[tuple[str, str], Lane]  # (warehouse, order id) -> lane
    between: dict[tuple[str, str], Lane] = field(default_factory=dict)  # (from, to) -> lane
    load: dict[str, int] = field(default_factory=dict)

    def known_skus(self) -> set[str]:
        return {sku for _, sku in self.atp}
