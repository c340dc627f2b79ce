"""Ports of the fulfillment module: what the use cases need from the outside."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from hexcity.fulfillment.domain.allocation import Allocation, StoredOrder
from hexcity.fulfillment.domain.delivery import Delivery, HistoryEntry, PlanStop, RoutePlan
from hexcity.fulfillment.domain.network import Lane, Order, Warehouse
from hexcity.fulfillment.domain.problem import VrpProblem
from hexcity.fulfillment.domain.solution import VrpSolution
from hexcity.fulfillment.domain.solving import SolverParams
from hexcity.kernel import LatLng

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TravelMatrix:
    """Square matrices over the points asked for, row = from; nan where there is no route."""

    durations_s: F64
    distances_m: F64


class RoadMatrix(Protocol):
    """Durations and distances between points on the road network of one vehicle profile."""

    def matrix(self, points: Sequence[LatLng], profile: str) -> TravelMatrix: ...


class VrpSolver(Protocol):
    """A routing backend (PyVRP by default, OR-Tools as the alternative)."""

    backend: str

    def solve(
        self,
        problem: VrpProblem,
        params: SolverParams,
        allowed_vehicle_types: dict[tuple[str, int], tuple[int, ...]] | None = None,
    ) -> VrpSolution:
        """``allowed_vehicle_types[("job"|"shipment", i)]``: the only vehicle types that may serve it."""
        ...


class AllocationStore(Protocol):
    """Warehouses, stock positions, orders with their holds, route plans and deliveries
    (SQL adapter: SqlAllocationStore)."""

    def put_warehouse(self, w: Warehouse) -> None: ...
    def warehouses(self) -> list[Warehouse]: ...
    def link_customer(self, order_id: str, customer_id: str) -> None: ...
    def orders_of_customer(self, customer_id: str, limit: int = 20) -> list[str]: ...
    def set_on_hand(
        self, warehouse_id: str, sku: str, on_hand: int, cause: str = "count"
    ) -> dict[str, int]: ...
    def stock(self, warehouse_id: str | None = None) -> dict[tuple[str, str], dict[str, int]]: ...
    def atp(self) -> dict[tuple[str, str], int]: ...
    def load(self) -> dict[str, int]: ...
    def get_order(self, order_id: str) -> StoredOrder: ...
    def find_order(self, order_id: str) -> StoredOrder | None: ...
    def save_allocation(
        self, order: Order, allocation: Allocation, lanes: dict[str, Lane]
    ) -> StoredOrder: ...
    def save_unallocated(self, order: Order, reason: str, lanes: dict[str, Lane]) -> StoredOrder: ...
    def pending(self, limit: int = ...) -> list[StoredOrder]: ...
    def reallocate(self, changes: list[tuple[Allocation, Allocation]]) -> None: ...
    def mark_picked(self, order_id: str) -> StoredOrder: ...
    def picked(self, limit: int = ...) -> list[StoredOrder]: ...
    # last mile: plans, stops, deliveries, history
    def save_plans(self, new: list[RoutePlan]) -> None: ...
    def get_plan(self, plan_id: str) -> RoutePlan: ...
    def list_plans(
        self,
        status: str | None = ...,
        warehouse_id: str | None = ...,
        limit: int = ...,
        after: str | None = ...,
        *,
        without_geometry: Collection[str] = ...,
    ) -> list[RoutePlan]: ...
    def cancel_plan(self, plan_id: str, reason: str) -> RoutePlan: ...
    def get_stop(self, stop_id: str) -> PlanStop: ...
    def order_stops(self, order_id: str) -> list[PlanStop]: ...
    def plans_of(self, plan_ids: list[str]) -> dict[str, RoutePlan]: ...
    def order_history(self, order_id: str) -> list[HistoryEntry]: ...
    def live_parcels(self, warehouse_id: str) -> set[str]: ...
    def deliver(self, stop_id: str, delivered_at_s: int, by: str) -> Delivery: ...
