"""Real-time allocation of one order: single source, split, or consolidate by transfer.

Tiers (requirements §5): (1) the cheapest single warehouse that covers the whole cart within SLA;
(2) an exact search over splits of up to ``max_packages`` parcels among the candidates (every
subset is enumerated; within a subset each line goes to its cheapest member); (3) consolidation:
one parcel from a hub after internal transfers of the missing lines, never for the 2-hour SLA
and only when the transfer lands in time. The cheapest feasible option wins (ties: fewer
parcels, then warehouse ids); every option considered is kept with its cost and the reason it
was rejected. Deterministic: warehouses and SKUs are iterated in sorted order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hexcity.fulfillment.domain.network import CostModel, Lane, NetworkView, Order, Sla, Warehouse
from hexcity.fulfillment.errors import OutOfStock, UnknownSku

Decision = Literal["single", "split", "consolidate"]
MAX_CANDIDATES = 12


@dataclass(frozen=True, slots=True)
class Package:
    warehouse_id: str
    lines: tuple[tuple[str, int], ...]
    freight_minor: int
    labour_minor: int


@dataclass(frozen=True, slots=True)
class Transfer:
    from_warehouse: str
    to_warehouse: str
    lines: tuple[tuple[str, int], ...]
    cost_minor: int
    labour_minor: int


@dataclass(frozen=True, slots=True)
class Option:
    decision: Decision
    packages: tuple[Package, ...]
    transfers: tuple[Transfer, ...] = ()
    split_penalty_minor: int = 0
    ready_s: int = 0  # when the last parcel reaches the customer (s after midnight)

    @property
    def total_minor(self) -> int:
        return (
            sum(p.freight_minor + p.labour_minor for p in self.packages)
            + sum(t.cost_minor + t.labour_minor for t in self.transfers)
            + self.split_penalty_minor
        )

    def breakdown(self) -> dict[str, int]:
        return {
            "freight_minor": sum(p.freight_minor for p in self.packages),
            "labour_minor": sum(p.labour_minor for p in self.packages)
            + sum(t.labour_minor for t in self.transfers),
            "transfer_minor": sum(t.cost_minor for t in self.transfers),
            "split_penalty_minor": self.split_penalty_minor,
            "total_minor": self.total_minor,
        }

    def label(self) -> str:
        sites = "+".join(p.warehouse_id for p in self.packages)
        via = ",".join(t.from_warehouse for t in self.transfers)
        return f"{self.decision}:{sites}" + (f"<-{via}" if via else "")


@dataclass(frozen=True, slots=True)
class Alternative:
    label: str
    total_minor: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Allocation:
    order_id: str
    chosen: Option
    reasons: list[str]
    alternatives: list[Alternative] = field(default_factory=list)

    @property
    def split_count(self) -> int:
        return len(self.chosen.packages) - 1

    def reserved(self) -> dict[tuple[str, str], int]:
        """Stock taken per (warehouse, sku): ship-from lines and transfer sources."""
        out: dict[tuple[str, str], int] = {}
        for p in self.chosen.packages:
            for sku, qty in p.lines:
                out[(p.warehouse_id, sku)] = out.get((p.warehouse_id, sku), 0) + qty
        for t in self.chosen.transfers:
            for sku, qty in t.lines:
                out[(t.from_warehouse, sku)] = out.get((t.from_warehouse, sku), 0) + qty
                # the transferred units ship from the hub: not the hub's own stock
                out[(t.to_warehouse, sku)] -= qty
        return {k: v for k, v in out.items() if v > 0}


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as persisted: allocated (with its plan), unallocated (with the reason), or picked."""

    order: Order
    status: str
    allocation: Allocation | None
    reason: str | None
    lanes: dict[str, Lane]


class NoFeasibleAllocation(OutOfStock):
    """Stock exists but no warehouse (or combination) can meet the SLA."""

    code = "NoFeasibleAllocation"


def allocate(order: Order, view: NetworkView, costs: CostModel, consolidation: bool = True) -> Allocation:
    """Choose how to ship ``order``. Raises UnknownSku, OutOfStock (lists the short SKUs) or
    NoFeasibleAllocation (stock exists but not within SLA / capacity / reach)."""
    unknown = sorted(line.sku for line in order.lines if line.sku not in view.known_skus())
    if unknown:
        raise UnknownSku(f"order {order.id}: unknown SKU(s) {', '.join(unknown)}")
    short = [
        line.sku
        for line in order.lines
        if not any(view.atp.get((w.id, line.sku), 0) >= line.qty for w in view.warehouses)
    ]
    if short:
        raise OutOfStock(f"order {order.id}: no warehouse holds enough of {', '.join(short)}", short)
    view = replace(view, warehouses=sorted(view.warehouses, key=lambda w: w.id))
    rejected: list[Alternative] = []
    candidates = _candidates(order, view, costs, rejected)
    options = _singles(order, view, costs, candidates, rejected)
    options += _splits(order, view, costs, candidates)
    if consolidation:
        options += _consolidations(order, view, costs, candidates, rejected)
    if not options:
        raise NoFeasibleAllocation(
            f"order {order.id}: stock exists but no warehouse can ship it within the {order.sla.value} SLA",
            [line.sku for line in order.lines],
        )
    options.sort(key=lambda o: (o.total_minor, len(o.packages), o.label()))
    best = options[0]
    for other in options[1:]:
        extra = other.total_minor - best.total_minor
        rejected.append(Alternative(other.label(), other.total_minor, f"costs {extra} more"))
    reasons = [_why(best, order)]
    return Allocation(order.id, best, reasons, rejected)


def _candidates(
    order: Order, view: NetworkView, costs: CostModel, rejected: list[Alternative]
) -> list[Warehouse]:
    """Warehouses that can ship this order in time (pruned as requirements §3 says)."""
    deadline = costs.deadline_s(order)
    out: list[Warehouse] = []
    for w in view.warehouses:
        lane = view.to_destination.get((w.id, order.id))
        has_any = any(view.atp.get((w.id, line.sku), 0) >= line.qty for line in order.lines)
        if not has_any:
            continue
        if lane is None or not lane.reachable:
            rejected.append(Alternative(f"ship-from:{w.id}", None, "no road to the destination"))
        elif order.sla is not Sla.STANDARD and order.placed_at_s > w.cutoff_s:
            rejected.append(Alternative(f"ship-from:{w.id}", None, f"past its cut-off ({w.cutoff_s} s)"))
        elif order.placed_at_s + w.pick_time_s + lane.duration_s > deadline:
            rejected.append(
                Alternative(f"ship-from:{w.id}", None, f"cannot deliver within the {order.sla.value} SLA")
            )
        elif view.load.get(w.id, 0) >= w.capacity_orders:
            rejected.append(Alternative(f"ship-from:{w.id}", None, "at its daily parcel capacity"))
        else:
            out.append(w)
    return out[:MAX_CANDIDATES] if len(out) <= MAX_CANDIDATES else _nearest(out, order, view)


def _nearest(warehouses: list[Warehouse], order: Order, view: NetworkView) -> list[Warehouse]:
    ranked = sorted(warehouses, key=lambda w: (view.to_destination[(w.id, order.id)].distance_m, w.id))
    return sorted(ranked[:MAX_CANDIDATES], key=lambda w: w.id)


def _package(
    w: Warehouse, lines: list[tuple[str, int]], order: Order, view: NetworkView, costs: CostModel
) -> Package:
    lane = view.to_destination[(w.id, order.id)]
    return Package(w.id, tuple(lines), costs.package_minor(lane), w.handling_cost_minor * len(lines))


def _ready(w: Warehouse, order: Order, view: NetworkView, start_s: int) -> int:
    return int(start_s + w.pick_time_s + view.to_destination[(w.id, order.id)].duration_s)


def _singles(
    order: Order,
    view: NetworkView,
    costs: CostModel,
    candidates: list[Warehouse],
    rejected: list[Alternative],
) -> list[Option]:
    options = []
    lines = [(line.sku, line.qty) for line in order.lines]
    for w in candidates:
        if all(view.atp.get((w.id, sku), 0) >= qty for sku, qty in lines):
            package = _package(w, lines, order, view, costs)
            options.append(Option("single", (package,), ready_s=_ready(w, order, view, order.placed_at_s)))
        else:
            rejected.append(Alternative(f"single:{w.id}", None, "does not hold every line"))
    return options


def _splits(order: Order, view: NetworkView, costs: CostModel, candidates: list[Warehouse]) -> list[Option]:
    options = []
    for size in range(2, min(costs.max_packages, len(candidates)) + 1):
        for subset in itertools.combinations(candidates, size):
            assignment: dict[str, list[tuple[str, int]]] = {w.id: [] for w in subset}
            feasible = True
            for line in order.lines:
                holders = [w for w in subset if view.atp.get((w.id, line.sku), 0) >= line.qty]
                if not holders:
                    feasible = False
                    break
                cheapest = min(holders, key=lambda w: (w.handling_cost_minor, w.id))
                assignment[cheapest.id].append((line.sku, line.qty))
            if not feasible or any(not lines for lines in assignment.values()):
                continue  # a subset with an idle member is a smaller subset, already counted
            packages = tuple(_package(w, assignment[w.id], order, view, costs) for w in subset)
            ready = max(_ready(w, order, view, order.placed_at_s) for w in subset)
            options.append(Option("split", packages, (), costs.split_penalty_minor * (size - 1), ready))
    return options


def _consolidations(
    order: Order,
    view: NetworkView,
    costs: CostModel,
    candidates: list[Warehouse],
    rejected: list[Alternative],
) -> list[Option]:
    if order.sla is Sla.TWO_HOUR:
        rejected.append(Alternative("consolidate", None, "a 2h order never waits for a transfer"))
        return []
    deadline = costs.deadline_s(order)
    by_id = {w.id: w for w in view.warehouses}
    options = []
    for hub in candidates:
        missing = [line for line in order.lines if view.atp.get((hub.id, line.sku), 0) < line.qty]
        if not missing or len(missing) == len(order.lines):
            continue
        sources: dict[str, list[tuple[str, int]]] = {}
        lead = 0
        ok = True
        for line in missing:
            best = _transfer_source(line.sku, line.qty, hub, view, costs)
            if best is None:
                ok = False
                break
            sources.setdefault(best[0], []).append((line.sku, line.qty))
            lead = max(lead, best[1])
        if not ok:
            rejected.append(
                Alternative(f"consolidate:{hub.id}", None, "no reachable source for a missing line")
            )
            continue
        ready = _ready(hub, order, view, order.placed_at_s + lead)
        if ready > deadline:
            rejected.append(Alternative(f"consolidate:{hub.id}", None, "the transfer would miss the SLA"))
            continue
        transfers = tuple(
            Transfer(
                s,
                hub.id,
                tuple(lines),
                costs.transfer_minor(view.between[(s, hub.id)]),
                by_id[s].handling_cost_minor * len(lines),
            )
            for s, lines in sorted(sources.items())
        )
        all_lines = [(line.sku, line.qty) for line in order.lines]
        options.append(
            Option("consolidate", (_package(hub, all_lines, order, view, costs),), transfers, 0, ready)
        )
    return options


def _transfer_source(
    sku: str, qty: int, hub: Warehouse, view: NetworkView, costs: CostModel
) -> tuple[str, int] | None:
    best: tuple[int, str, int] | None = None
    for w in view.warehouses:
        lane = view.between.get((w.id, hub.id))
        if w.id == hub.id or lane is None or not lane.reachable or view.atp.get((w.id, sku), 0) < qty:
            continue
        key = (costs.transfer_minor(lane), w.id, int(costs.transfer_lead_s + lane.duration_s))
        if best is None or key < best:
            best = key
    return None if best is None else (best[1], best[2])


def _why(best: Option, order: Order) -> str:
    if best.decision == "single":
        site = best.packages[0].warehouse_id
        return f"{site} holds the whole cart and meets the {order.sla.value} SLA at least cost"
    if best.decision == "split":
        return (
            f"no single warehouse is cheaper: {len(best.packages)} parcels incl. split penalty "
            f"{best.split_penalty_minor} is the cheapest way within the {order.sla.value} SLA"
        )
    return (
        f"transferring to {best.packages[0].warehouse_id} and shipping one parcel is cheapest and the "
        f"transfer lands within the {order.sla.value} SLA"
    )


def allocation_to_dict(allocation: Allocation) -> dict[str, Any]:
    """JSON-ready explanation: chosen packages and transfers, costs, reasons, rejected options."""
    chosen = allocation.chosen
    return {
        "order_id": allocation.order_id,
        "decision": chosen.decision,
        "label": chosen.label(),
        "packages": [
            {
                "warehouse_id": p.warehouse_id,
                "lines": [{"sku": s, "qty": q} for s, q in p.lines],
                "freight_minor": p.freight_minor,
                "labour_minor": p.labour_minor,
            }
            for p in chosen.packages
        ],
        "transfers": [
            {
                "from_warehouse": t.from_warehouse,
                "to_warehouse": t.to_warehouse,
                "lines": [{"sku": s, "qty": q} for s, q in t.lines],
                "cost_minor": t.cost_minor,
                "labour_minor": t.labour_minor,
            }
            for t in chosen.transfers
        ],
        "costs": chosen.breakdown(),
        "split_count": allocation.split_count,
        "ready_s": chosen.ready_s,
        "reasons": list(allocation.reasons),
        "alternatives": [
            {"option": a.label, "total_minor": a.total_minor, "reason": a.reason}
            for a in allocation.alternatives
        ],
    }


def allocation_from_dict(data: dict[str, Any]) -> Allocation:
    """Inverse of :func:`allocation_to_dict`."""
    packages = tuple(
        Package(
            p["warehouse_id"],
            tuple((line["sku"], int(line["qty"])) for line in p["lines"]),
            int(p["freight_minor"]),
            int(p["labour_minor"]),
        )
        for p in data["packages"]
    )
    transfers = tuple(
        Transfer(
            t["from_warehouse"],
            t["to_warehouse"],
            tuple((line["sku"], int(line["qty"])) for line in t["lines"]),
            int(t["cost_minor"]),
            int(t["labour_minor"]),
        )
        for t in data["transfers"]
    )
    option = Option(
        data["decision"], packages, transfers, int(data["costs"]["split_penalty_minor"]), int(data["ready_s"])
    )
    alternatives = [Alternative(a["option"], a["total_minor"], a["reason"]) for a in data["alternatives"]]
    return Allocation(data["order_id"], option, list(data["reasons"]), alternatives)
