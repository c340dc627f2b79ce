"""Fulfillment use cases: solve routing problems (VROOM JSON, our model) and allocate orders.

The service talks to ports only: a ``VrpSolver`` backend, an optional ``RoadMatrix`` for
problems given as coordinates, and (for allocation) an ``AllocationStore``. Budgets are clamped
to the configured maximum so no caller can hold a worker for longer than allowed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hexcity.fulfillment.domain.allocation import StoredOrder, allocate
from hexcity.fulfillment.domain.batch import BatchParams, PlanStats, greedy_plan, plan_stats, reoptimise
from hexcity.fulfillment.domain.delivery import (
    Delivery,
    HistoryEntry,
    PlanStop,
    RoutePlan,
    split_parcel_id,
)
from hexcity.fulfillment.domain.network import DAY_S, CostModel, Lane, NetworkView, Order
from hexcity.fulfillment.domain.problem import VrpProblem
from hexcity.fulfillment.domain.solution import VrpSolution
from hexcity.fulfillment.domain.solving import SolverParams
from hexcity.fulfillment.errors import (
    InvalidOrder,
    InvalidProblem,
    OutOfStock,
    StockConflict,
    UnknownSku,
    WarehouseNotFound,
)
from hexcity.fulfillment.lastmile import LastMilePlan, Parcel
from hexcity.fulfillment.ports import AllocationStore, RoadMatrix, VrpSolver
from hexcity.fulfillment.settings import FulfillmentSettings
from hexcity.fulfillment.vroom import VroomLimits, build_problem, parse_vroom
from hexcity.fulfillment.vroom_output import solution_to_vroom
from hexcity.infra import get_logger
from hexcity.kernel import LatLng

log = get_logger(__name__)
MAX_CONFLICT_RETRIES = 3
MAX_DELIVERY_AT_S = 4 * 86_400  # delivery times are seconds of the order's day (standard SLA: 3 days)


@dataclass(frozen=True, slots=True)
class OrderView:
    """Everything that explains an order: decision, plan stops (with their plans), history."""

    order: StoredOrder
    stops: list[PlanStop]
    plans: dict[str, RoutePlan]
    history: list[HistoryEntry]
    deadline_s: int  # the SLA deadline, seconds of the order's day


class VrpService:
    """Solve VROOM problems and our own model through the configured backend.

    ``deterministic`` (the platform's manual clock; needs ``vrp_max_iterations``): the search
    stops at the iteration limit only. A caller's ``time_limit_s`` is still validated, but the
    wall-clock stop becomes ``vrp_max_time_limit_s``, a safety net that a short caller budget on
    a loaded machine cannot turn into a different plan.
    """

    def __init__(
        self,
        settings: FulfillmentSettings,
        solver: VrpSolver,
        road: RoadMatrix | None = None,
        *,
        deterministic: bool = False,
    ) -> None:
        if deterministic and settings.vrp_max_iterations is None:
            raise ValueError("a deterministic VrpService needs vrp_max_iterations")
        self.settings = settings
        self.solver = solver
        self.road = road
        self.deterministic = deterministic
        self.limits = VroomLimits(settings.max_tasks, settings.max_vehicles, settings.max_locations)

    def params(self, time_limit_s: float | None = None, seed: int | None = None) -> SolverParams:
        """Solver params from a caller's wishes, clamped to ``vrp_max_time_limit_s``; with
        ``vrp_max_iterations`` set the search stops there (iteration-limited: deterministic)."""
        default = min(self.settings.vrp_time_limit_s, self.settings.vrp_max_time_limit_s)
        limit = default if time_limit_s is None else time_limit_s
        if not 0 < limit <= self.settings.vrp_max_time_limit_s:
            raise InvalidProblem(f"time limit must be in (0, {self.settings.vrp_max_time_limit_s:g}] s")
        if seed is not None and not 0 <= seed < 2**31:
            raise InvalidProblem("seed must be in [0, 2^31)")
        if self.deterministic:
            limit = self.settings.vrp_max_time_limit_s
        return SolverParams(
            time_limit_s=limit,
            seed=self.settings.vrp_seed if seed is None else seed,
            max_iterations=self.settings.vrp_max_iterations,
        )

    def solve_vroom(self, payload: object, params: SolverParams) -> dict[str, Any]:
        """A VROOM problem dict in, VROOM's solution dict out. Raises InvalidProblem / ProblemTooBig."""
        vroom = parse_vroom(payload, self.limits)
        problem, index = build_problem(vroom, self.road, self.limits)
        solution = self.solver.solve(problem, params, index.allowed or None)
        log.info(
            "vrp.solved",
            tasks=len(problem.jobs) + 2 * len(problem.shipments),
            routes=len(solution.routes),
            unassigned=len(solution.unassigned),
            runtime_s=round(solution.stats.runtime_s, 3),
        )
        return solution_to_vroom(problem, index, solution, solution.stats.runtime_s)

    def solve(self, problem: VrpProblem, params: SolverParams) -> VrpSolution:
        return self.solver.solve(problem, params)


class AllocationService:
    """Place orders (allocate + hold stock atomically), explain them, re-optimise the pending ones.

    Lanes (warehouse -> destination, warehouse -> warehouse) come from the ``RoadMatrix`` port at
    placement and are stored with the order, so re-optimisation needs no new road queries.
    ``clock`` (epoch seconds; the platform's clock) dates orders placed without a time;
    ``deterministic`` (the manual clock) drops CP-SAT's wall-clock safety cap so re-optimisation
    depends on its deterministic time budget only.
    """

    def __init__(
        self,
        store: AllocationStore,
        road: RoadMatrix,
        costs: CostModel | None = None,
        *,
        profile: str = "car",
        max_lines: int = 100,
        max_batch_orders: int = 5_000,
        clock: Callable[[], float] = time.time,
        deterministic: bool = False,
    ) -> None:
        self.store = store
        self.road = road
        self.costs = costs or CostModel()
        self.profile = profile
        self.max_lines = max_lines
        self.max_batch_orders = max_batch_orders
        self.clock = clock
        self.deterministic = deterministic

    def seconds_of_day(self) -> int:
        """Now on the service's clock, as seconds of the (UTC) day: the orders' time scale."""
        return int(self.clock()) % DAY_S

    def new_order(
        self,
        order_id: str,
        lines: list[tuple[str, int]],
        destination: LatLng,
        sla: str,
        placed_at_s: int | None = None,
    ) -> Order:
        """A validated order; without ``placed_at_s`` it is placed now (:meth:`seconds_of_day`),
        so its SLA deadline follows the clock. Raises InvalidOrder."""
        at_s = self.seconds_of_day() if placed_at_s is None else placed_at_s
        return Order.create(order_id, lines, destination, sla, at_s)

    def place_order(self, order: Order) -> StoredOrder:
        """Allocate and hold stock; an order that cannot be served is stored as unallocated with the
        reason. Placing the same id again returns the stored decision. Raises InvalidOrder/UnknownSku."""
        if len(order.lines) > self.max_lines:
            raise InvalidOrder(f"order {order.id}: at most {self.max_lines} lines")
        existing = self.store.find_order(order.id)
        if existing is not None:
            return existing
        for _ in range(MAX_CONFLICT_RETRIES):
            view, lanes = self._view(order)
            try:
                allocation = allocate(order, view, self.costs)
            except UnknownSku:
                raise
            except OutOfStock as exc:
                stored = self.store.save_unallocated(order, exc.message, lanes)
                log.info("fulfillment.unallocated", order_id=order.id, reason=exc.message)
                return stored
            try:
                stored = self.store.save_allocation(order, allocation, lanes)
            except StockConflict:
                continue  # another order took the stock between our read and our write: re-plan
            log.info("fulfillment.allocated", order_id=order.id, decision=allocation.chosen.label())
            return stored
        return self.store.save_unallocated(order, "stock kept changing while allocating; retry later", {})

    def reoptimise(self, params: BatchParams) -> dict[str, Any]:
        """Jointly re-assign allocated, unpicked orders with CP-SAT; compare with greedy."""
        pending = [p for p in self.store.pending(self.max_batch_orders) if p.allocation is not None]
        current = {p.order.id: p.allocation for p in pending if p.allocation is not None}
        atp = self.store.atp()
        load = self.store.load()
        for allocation in current.values():
            for key, qty in allocation.reserved().items():
                atp[key] = atp.get(key, 0) + qty
            for package in allocation.chosen.packages:
                load[package.warehouse_id] = load.get(package.warehouse_id, 0) - 1
        to_destination = {(wid, p.order.id): lane for p in pending for wid, lane in p.lanes.items()}
        view = NetworkView(self.store.warehouses(), atp, to_destination, {}, load)
        orders = [p.order for p in pending]
        if self.deterministic:
            params = replace(params, wall_cap_factor=None)
        result = reoptimise(orders, current, view, self.costs, params)
        greedy = plan_stats(greedy_plan(orders, view, self.costs))
        changes = [
            (current[oid], new) for oid, new in sorted(result.allocations.items()) if new is not current[oid]
        ]
        self.store.reallocate(changes)
        return {
            "status": result.status,
            "orders": len(orders),
            "changed": len(changes),
            "runtime_s": round(result.runtime_s, 3),
            "before": _stats(result.current),
            "after": _stats(result.optimised),
            "greedy": _stats(greedy),
        }

    def delivery_parcels(self, warehouse_id: str, limit: int = 2_000) -> list[Parcel]:
        """One parcel per order with a package at ``warehouse_id`` to route: every allocated (not
        yet picked) order, and picked orders whose parcel has no live stop (its plan was
        cancelled). Destination, size = units, due by its SLA deadline."""
        if warehouse_id not in {w.id for w in self.store.warehouses()}:
            raise WarehouseNotFound(f"no warehouse {warehouse_id}")
        routed = self.store.live_parcels(warehouse_id)
        picked = [o for o in self.store.picked(limit) if o.order.id not in routed]
        parcels: list[Parcel] = []
        for stored in [*self.store.pending(limit), *picked]:
            if stored.allocation is None or len(parcels) >= limit:
                continue
            for package in stored.allocation.chosen.packages:
                if package.warehouse_id == warehouse_id:
                    order = stored.order
                    deadline = self.costs.deadline_s(order)
                    parcels.append(
                        Parcel(
                            f"{order.id}@{warehouse_id}",
                            order.destination,
                            sum(q for _, q in package.lines),
                            0,
                            deadline,
                        )
                    )
        return parcels

    def record_plan(self, warehouse_id: str, plan: LastMilePlan) -> list[RoutePlan]:
        """Persist a last-mile plan of ``warehouse_id``'s parcels: one route plan per courier with
        its stops (parcel -> order), planned ETAs and SLA deadlines. Parcels planned before move
        to their new stop."""
        records = []
        for route in plan.routes:
            if not route.stops:
                continue
            plan_id = f"plan-{uuid.uuid4().hex[:16]}"
            stops = []
            for position, stop in enumerate(route.stops, start=1):
                order_id, parcel_warehouse = split_parcel_id(stop.parcel_id)
                if parcel_warehouse != warehouse_id:
                    raise InvalidOrder(f"parcel {stop.parcel_id} does not ship from {warehouse_id}")
                parcel = plan.parcels[stop.parcel_id]
                stops.append(
                    PlanStop(
                        f"{plan_id}.{position}",
                        plan_id,
                        position,
                        order_id,
                        warehouse_id,
                        stop.location,
                        stop.eta_s,
                        parcel.tw_late_s,
                    )
                )
            records.append(
                RoutePlan(
                    plan_id,
                    warehouse_id,
                    route.courier_id,
                    route.start_s,
                    route.end_s,
                    route.duration_s,
                    route.distance_m,
                    tuple(route.geometry),
                    tuple(stops),
                )
            )
        self.store.save_plans(records)
        log.info("fulfillment.planned", warehouse_id=warehouse_id, routes=len(records))
        return records

    def deliver(self, stop_id: str, delivered_at_s: int, by: str) -> Delivery:
        """Proof of delivery for one stop (idempotent). Raises StopNotFound, PlanCancelled,
        StopReplanned, OrderNotPicked, InvalidOrder (time out of range)."""
        if not 0 <= delivered_at_s <= MAX_DELIVERY_AT_S:
            raise InvalidOrder(f"delivered_at_s must be in [0, {MAX_DELIVERY_AT_S}]")
        delivery = self.store.deliver(stop_id, delivered_at_s, by)
        if not delivery.repeated:
            log.info(
                "fulfillment.delivered",
                stop_id=stop_id,
                order_id=delivery.order_id,
                order_status=delivery.order_status,
                on_time=delivery.on_time,
            )
        return delivery

    def explain(self, order_id: str) -> OrderView:
        stored = self.store.get_order(order_id)
        stops = self.store.order_stops(order_id)
        plans = self.store.plans_of([s.plan_id for s in stops])
        history = self.store.order_history(order_id)
        return OrderView(stored, stops, plans, history, self.costs.deadline_s(stored.order))

    def _view(self, order: Order) -> tuple[NetworkView, dict[str, Lane]]:
        warehouses = self.store.warehouses()
        if not warehouses:
            raise OutOfStock("no warehouses are configured", [line.sku for line in order.lines])
        points = [w.location for w in warehouses] + [order.destination]
        travel = self.road.matrix(points, self.profile)
        n = len(warehouses)
        lanes = {
            w.id: Lane(float(travel.distances_m[i, n]), float(travel.durations_s[i, n]))
            for i, w in enumerate(warehouses)
        }
        between = {
            (a.id, b.id): Lane(float(travel.distances_m[i, j]), float(travel.durations_s[i, j]))
            for i, a in enumerate(warehouses)
            for j, b in enumerate(warehouses)
            if i != j
        }
        to_destination = {(wid, order.id): lane for wid, lane in lanes.items()}
        return NetworkView(warehouses, self.store.atp(), to_destination, between, self.store.load()), lanes


def _stats(stats: PlanStats) -> dict[str, Any]:
    return {
        "total_minor": stats.total_minor,
        "parcels": stats.parcels,
        "split_orders": stats.split_orders,
        "split_rate": round(stats.split_rate, 4),
    }
