"""Batch re-optimisation of allocated, not-yet-picked orders (the "CONDOR-like" window).

All pending orders are re-assigned jointly to minimise freight + labour + split penalties under
stock and daily parcel capacity, with OR-Tools CP-SAT (exact, time-limited; interleaved search
with a deterministic time budget and a fixed seed, so the same input gives the same plan). The
current plan is given as a hint, so the result is never worse than what is already committed.
Greedy order-by-order allocation on the same stock is computed alongside as the comparison.
Consolidation (transfers) is not part of the batch model: consolidated orders keep their plan.

Model: y[o, l, w] = line l of order o ships from warehouse w (only candidates within SLA with
enough stock); p[o, w] = order o has a parcel at w; sum_w y[o, l, w] = 1; y <= p <= sum_l y;
sum y * qty <= stock[w, sku]; sum_o p[o, w] <= remaining capacity[w]; sum_w p[o, w] <= 3.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ortools.sat.python import cp_model

from hexcity.fulfillment.domain.allocation import Allocation, Decision, Option, Package, allocate
from hexcity.fulfillment.domain.network import CostModel, NetworkView, Order
from hexcity.fulfillment.errors import OutOfStock


@dataclass(frozen=True, slots=True)
class BatchParams:
    """``time_limit_s`` is CP-SAT's deterministic time budget; the search is also stopped after
    ``wall_cap_factor × time_limit_s`` wall-clock seconds (a safety net that can make a loaded
    machine's plan differ; None: no wall-clock cap, the plan depends on input and seed only)."""

    time_limit_s: float = 10.0
    seed: int = 0
    max_orders: int = 5_000
    wall_cap_factor: float | None = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.time_limit_s <= 600:
            raise ValueError("time_limit_s must be in (0, 600]")
        if self.wall_cap_factor is not None and not 1 <= self.wall_cap_factor <= 100:
            raise ValueError("wall_cap_factor must be in [1, 100] or None")


@dataclass(frozen=True, slots=True)
class PlanStats:
    total_minor: int
    parcels: int
    split_orders: int
    orders: int

    @property
    def split_rate(self) -> float:
        return self.split_orders / self.orders if self.orders else 0.0


@dataclass(frozen=True, slots=True)
class BatchResult:
    allocations: dict[str, Allocation]
    status: str  # OPTIMAL, FEASIBLE, or KEPT (solver found nothing better in time)
    optimised: PlanStats
    current: PlanStats
    greedy: PlanStats | None
    runtime_s: float


def plan_stats(allocations: list[Allocation]) -> PlanStats:
    return PlanStats(
        sum(a.chosen.total_minor for a in allocations),
        sum(len(a.chosen.packages) for a in allocations),
        sum(1 for a in allocations if len(a.chosen.packages) > 1),
        len(allocations),
    )


def greedy_plan(orders: list[Order], view: NetworkView, costs: CostModel) -> list[Allocation]:
    """Order by order (placement order, then id), each taking stock from the same pool; no transfers."""
    atp = dict(view.atp)
    load = dict(view.load)
    out = []
    for order in sorted(orders, key=lambda o: (o.placed_at_s, o.id)):
        try:
            allocation = allocate(order, replace(view, atp=atp, load=load), costs, consolidation=False)
        except OutOfStock:
            continue
        for key, qty in allocation.reserved().items():
            atp[key] -= qty
        for package in allocation.chosen.packages:
            load[package.warehouse_id] = load.get(package.warehouse_id, 0) + 1
        out.append(allocation)
    return out


def reoptimise(
    orders: list[Order],
    current: dict[str, Allocation],
    view: NetworkView,
    costs: CostModel,
    params: BatchParams,
) -> BatchResult:
    """Jointly re-assign ``orders`` (their current stock released into ``view``) with CP-SAT."""
    if len(orders) > params.max_orders:
        raise ValueError(f"at most {params.max_orders} orders per batch")
    movable = [
        o for o in sorted(orders, key=lambda o: o.id) if current[o.id].chosen.decision != "consolidate"
    ]
    model = cp_model.CpModel()
    y: dict[tuple[int, int, str], cp_model.IntVar] = {}
    p: dict[tuple[int, str], cp_model.IntVar] = {}
    objective = []
    warehouses = {w.id: w for w in view.warehouses}
    for oi, order in enumerate(movable):
        per_line: list[list[cp_model.IntVar]] = [[] for _ in order.lines]
        parcels: list[cp_model.IntVar] = []
        for w in view.warehouses:
            lane = view.to_destination.get((w.id, order.id))
            if lane is None or not lane.reachable or not _in_time(order, w.id, view, costs):
                continue
            lines = [
                li for li, line in enumerate(order.lines) if view.atp.get((w.id, line.sku), 0) >= line.qty
            ]
            if not lines:
                continue
            parcel = p[(oi, w.id)] = model.new_bool_var(f"p{oi}_{w.id}")
            parcels.append(parcel)
            objective.append((costs.package_minor(lane) + costs.split_penalty_minor) * parcel)
            here = []
            for li in lines:
                var = y[(oi, li, w.id)] = model.new_bool_var(f"y{oi}_{li}_{w.id}")
                model.add_implication(var, parcel)
                per_line[li].append(var)
                here.append(var)
                objective.append(warehouses[w.id].handling_cost_minor * var)
            model.add(parcel <= sum(here))  # no empty parcel
        for options in per_line:
            model.add_exactly_one(options)
        model.add(sum(parcels) <= costs.max_packages)
    _stock_and_capacity(model, movable, y, p, view)
    _hint(model, movable, y, p, current)
    model.minimize(sum(objective))
    solver = cp_model.CpSolver()
    # Interleaved search is CP-SAT's deterministic multi-strategy mode: with a deterministic time
    # budget the same input and seed give the same plan; the wall-clock cap is a safety net.
    solver.parameters.num_workers = 4
    solver.parameters.interleave_search = True
    solver.parameters.max_deterministic_time = params.time_limit_s
    if params.wall_cap_factor is not None:
        solver.parameters.max_time_in_seconds = params.wall_cap_factor * params.time_limit_s
    solver.parameters.random_seed = params.seed
    status = solver.solve(model)
    before = plan_stats(list(current.values()))
    result = dict(current)
    status_name = solver.status_name(status)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        for oi, order in enumerate(movable):
            result[order.id] = _read(order, oi, solver, y, p, view, costs, current[order.id])
        if plan_stats(list(result.values())).total_minor > before.total_minor:
            result, status_name = dict(current), "KEPT"
    else:
        status_name = "KEPT"
    return BatchResult(result, status_name, plan_stats(list(result.values())), before, None, solver.wall_time)


def _in_time(order: Order, warehouse_id: str, view: NetworkView, costs: CostModel) -> bool:
    w = next(w for w in view.warehouses if w.id == warehouse_id)
    lane = view.to_destination[(w.id, order.id)]
    if order.sla.value != "standard" and order.placed_at_s > w.cutoff_s:
        return False
    return order.placed_at_s + w.pick_time_s + lane.duration_s <= costs.deadline_s(order)


def _stock_and_capacity(
    model: cp_model.CpModel,
    orders: list[Order],
    y: dict[tuple[int, int, str], cp_model.IntVar],
    p: dict[tuple[int, str], cp_model.IntVar],
    view: NetworkView,
) -> None:
    usage: dict[tuple[str, str], list[tuple[int, cp_model.IntVar]]] = {}
    for (oi, li, wid), var in y.items():
        line = orders[oi].lines[li]
        usage.setdefault((wid, line.sku), []).append((line.qty, var))
    for key, terms in sorted(usage.items()):
        model.add(sum(q * v for q, v in terms) <= view.atp.get(key, 0))
    for w in view.warehouses:
        parcels = [v for (_, wid), v in p.items() if wid == w.id]
        if parcels:
            model.add(sum(parcels) <= max(0, w.capacity_orders - view.load.get(w.id, 0)))


def _hint(
    model: cp_model.CpModel,
    orders: list[Order],
    y: dict[tuple[int, int, str], cp_model.IntVar],
    p: dict[tuple[int, str], cp_model.IntVar],
    current: dict[str, Allocation],
) -> None:
    for oi, order in enumerate(orders):
        sites = {pkg.warehouse_id: {sku for sku, _ in pkg.lines} for pkg in current[order.id].chosen.packages}
        for (o, wid), var in p.items():
            if o == oi:
                model.add_hint(var, wid in sites)
        for (o, li, wid), var in y.items():
            if o == oi:
                model.add_hint(var, order.lines[li].sku in sites.get(wid, set()))


def _read(
    order: Order,
    oi: int,
    solver: cp_model.CpSolver,
    y: dict[tuple[int, int, str], cp_model.IntVar],
    p: dict[tuple[int, str], cp_model.IntVar],
    view: NetworkView,
    costs: CostModel,
    previous: Allocation,
) -> Allocation:
    by_site: dict[str, list[tuple[str, int]]] = {}
    for (o, li, wid), var in sorted(y.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        if o == oi and solver.boolean_value(var):
            line = order.lines[li]
            by_site.setdefault(wid, []).append((line.sku, line.qty))
    warehouses = {w.id: w for w in view.warehouses}
    packages = tuple(
        Package(
            wid,
            tuple(lines),
            costs.package_minor(view.to_destination[(wid, order.id)]),
            warehouses[wid].handling_cost_minor * len(lines),
        )
        for wid, lines in sorted(by_site.items())
    )
    decision: Decision = "single" if len(packages) == 1 else "split"
    option = Option(
        decision, packages, (), costs.split_penalty_minor * (len(packages) - 1), previous.chosen.ready_s
    )
    if _shipped(option) == _shipped(previous.chosen) and not previous.chosen.transfers:
        return previous
    reason = f"batch re-optimisation moved it from {previous.chosen.label()} ({previous.chosen.total_minor})"
    return Allocation(order.id, option, [reason, *previous.reasons], previous.alternatives)


def _shipped(option: Option) -> set[tuple[str, tuple[tuple[str, int], ...]]]:
    return {(p.warehouse_id, tuple(sorted(p.lines))) for p in option.packages}
