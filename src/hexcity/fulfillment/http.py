"""The fulfillment HTTP API: VROOM-compatible solving and order allocation (thin over the services).

``POST /vrp/v1/solve`` (scope ``vrp:solve``) takes a VROOM problem and answers VROOM's solution;
``?time_limit_s=`` and ``?seed=`` tune the search within the configured maximum. Solving runs on
a worker thread; at most ``max_concurrent_solves`` run at once and a further request gets 503
``Unavailable`` at once rather than queueing. Bodies over ``max_body_bytes`` get 413.

Allocation (scopes ``fulfillment:read`` / ``fulfillment:write``): warehouses and stock, orders
(placed -> allocated with its explanation, or unallocated with the reason), picking, and the
batch re-optimisation with its comparison against greedy; ``POST .../warehouses/{id}/plan`` routes
a warehouse's allocated parcels for the given couriers on the road network (ETAs, geometry) and
stores one plan per courier route (ids of plans and stops in the answer).

Delivery: ``POST /fulfillment/v1/stops/{id}/delivered`` (the stop's courier — a driver token whose
subject is the courier id — or an admin) records a proof of delivery at ``delivered_at_s``;
idempotent. ``GET /fulfillment/v1/orders/{id}`` explains an order: allocation decision, its
shipments with their plan (courier, position, ETA, deadline), delivery status and history.
``GET /fulfillment/v1/plans/{id}``, ``POST /fulfillment/v1/plans/{id}/cancel``.

``GET /fulfillment/v1/plans?status=active&warehouse_id=&limit=50&after=`` (``fulfillment:read``)
lists courier routes as a GeoJSON ``FeatureCollection`` (what the dashboard draws): one feature
per plan, id = plan id, a ``LineString`` in [lng, lat] (the stored road path; straight lines
depot → stops → depot when none was stored, ``properties.geometry_source`` says which; at most
:data:`MAX_GEOMETRY_POINTS` positions, simplified to within 5 m, shapes cached per plan id,
bounded), the plan's figures and its stops in ``properties``.
Plans come by id; ``next_after`` is the cursor of the next page (null on the last). ``status``
is active, completed, cancelled, replanned or any; ``limit`` 1..200 (default 50).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from hexcity.fulfillment.domain.allocation import StoredOrder, allocation_to_dict
from hexcity.fulfillment.domain.batch import BatchParams
from hexcity.fulfillment.domain.delivery import DELIVERED, PLANNED, Delivery, PlanStop, RoutePlan, parcel_id
from hexcity.fulfillment.domain.network import Warehouse
from hexcity.fulfillment.errors import InvalidProblem, ProblemTooBig
from hexcity.fulfillment.lastmile import Courier, LastMilePlan, LastMilePlanner
from hexcity.fulfillment.service import MAX_DELIVERY_AT_S, AllocationService, OrderView, VrpService
from hexcity.infra.auth import Principal, authorize_owner, require
from hexcity.infra.http import json_response, read_body
from hexcity.kernel import InvalidInput, LatLng, NotFound, Unavailable

__all__ = [
    "FulfillmentApi",
    "ShapeCache",
    "build_fulfillment_router",
    "plan_feature",
    "plan_shape",
    "simplify",
]

MAX_LIST = 500
MAX_PLAN_LIST = 200  # plans per page of GET /fulfillment/v1/plans
DEFAULT_PLAN_LIST = 50
MAX_GEOMETRY_POINTS = 2_000  # positions per listed route (longer paths are thinned evenly)
COORD_DECIMALS = 5  # about 1 m, as the dashboard's roads
SIMPLIFY_M = 5.0  # listed routes keep the road path to within this many metres
SHAPE_CACHE_PLANS = 2_000  # simplified route shapes kept (a plan's path never changes)
PlanStatus = Literal["active", "completed", "cancelled", "replanned", "any"]
Shape = tuple[list[list[float]], str]  # GeoJSON positions, "road" | "straight"


@dataclass
class FulfillmentApi:
    """What the router serves: the VRP service, and the allocation service when SQL is configured."""

    vrp: VrpService
    allocation: AllocationService | None = None
    lastmile: LastMilePlanner | None = None
    max_concurrent_solves: int = 2
    max_body_bytes: int = 20_000_000


class Point(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)


class WarehouseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    location: Point
    handling_cost_minor: int = Field(default=50, ge=0, le=10_000_000)
    cutoff_s: int = Field(default=18 * 3600, ge=0, le=86_400)
    capacity_orders: int = Field(default=1_000, ge=0, le=10_000_000)
    pick_time_s: int = Field(default=900, ge=0, le=86_400)


class StockBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_hand: int = Field(ge=0, le=1_000_000_000)
    cause: str = Field(default="count", min_length=1, max_length=64)


class LineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64)
    qty: int


class OrderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    lines: list[LineBody] = Field(min_length=1, max_length=1_000)
    destination: Point
    sla: str = Field(min_length=1, max_length=16)
    placed_at_s: int | None = Field(
        default=None,
        ge=0,
        lt=86_400,
        description="seconds of the order's day; default: now on the platform clock",
    )
    customer_id: str | None = Field(default=None, min_length=1, max_length=128)


class CourierBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    capacity: int = Field(ge=0, le=1_000_000)
    shift_start_s: int = Field(default=8 * 3600, ge=0, le=2 * 86_400)
    shift_end_s: int = Field(default=20 * 3600, ge=0, le=2 * 86_400)


class PlanBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    couriers: list[CourierBody] = Field(min_length=1, max_length=200)
    time_limit_s: float | None = Field(default=None, gt=0)
    seed: int | None = Field(default=None, ge=0, lt=2**31)


class DeliveredBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delivered_at_s: int = Field(ge=0, le=MAX_DELIVERY_AT_S, description="seconds of the order's day")


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class ReoptimiseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_limit_s: float = Field(default=10.0, gt=0, le=600)
    seed: int = Field(default=0, ge=0, lt=2**31)


def build_fulfillment_router(api: FulfillmentApi) -> APIRouter:
    """Routes under ``/vrp/v1`` and ``/fulfillment/v1``."""
    router = APIRouter()
    slots = threading.BoundedSemaphore(api.max_concurrent_solves)
    shapes = ShapeCache()

    @router.post("/vrp/v1/solve", tags=["vrp"])
    async def solve(
        request: Request,
        principal: Annotated[Principal, Depends(require("vrp:solve"))],
        time_limit_s: Annotated[float | None, Query(gt=0)] = None,
        seed: Annotated[int | None, Query(ge=0)] = None,
    ) -> Response:
        body = await read_body(request, api.max_body_bytes)  # stops reading past the limit
        if body is None:
            raise ProblemTooBig(f"the problem is larger than {api.max_body_bytes} bytes")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidProblem(f"the body is not valid JSON: {exc}") from exc
        params = api.vrp.params(time_limit_s, seed)
        if not slots.acquire(blocking=False):
            raise Unavailable(f"{api.max_concurrent_solves} problems are being solved; retry shortly")
        try:
            out = await run_in_threadpool(api.vrp.solve_vroom, payload, params)
        finally:
            slots.release()
        return json_response(out)

    @router.put("/fulfillment/v1/warehouses/{warehouse_id}", tags=["fulfillment"])
    async def put_warehouse(
        warehouse_id: str,
        body: WarehouseBody,
        principal: Annotated[Principal, Depends(require("fulfillment:write"))],
    ) -> Response:
        svc = _allocation(api)
        w = Warehouse(
            warehouse_id,
            LatLng(body.location.lat, body.location.lng),
            body.handling_cost_minor,
            body.cutoff_s,
            body.capacity_orders,
            body.pick_time_s,
        )
        await run_in_threadpool(svc.store.put_warehouse, w)
        return json_response(_warehouse_out(w, {}))

    @router.get("/fulfillment/v1/warehouses", tags=["fulfillment"])
    async def list_warehouses(
        principal: Annotated[Principal, Depends(require("fulfillment:read"))],
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        svc = _allocation(api)
        warehouses = (await run_in_threadpool(svc.store.warehouses))[offset : offset + limit]
        stock = await run_in_threadpool(svc.store.stock)
        items = [
            _warehouse_out(w, {sku: v for (wid, sku), v in stock.items() if wid == w.id}) for w in warehouses
        ]
        return json_response({"items": items, "limit": limit, "offset": offset})

    @router.put("/fulfillment/v1/warehouses/{warehouse_id}/stock/{sku}", tags=["fulfillment"])
    async def put_stock(
        warehouse_id: str,
        sku: str,
        body: StockBody,
        principal: Annotated[Principal, Depends(require("fulfillment:write"))],
    ) -> Response:
        if not 1 <= len(sku) <= 64:
            raise InvalidInput("sku must be 1..64 characters")
        svc = _allocation(api)
        position = await run_in_threadpool(svc.store.set_on_hand, warehouse_id, sku, body.on_hand, body.cause)
        return json_response({"warehouse_id": warehouse_id, "sku": sku, **position})

    @router.post("/fulfillment/v1/orders", tags=["fulfillment"])
    async def place_order(
        body: OrderBody,
        principal: Annotated[Principal, Depends(require("fulfillment:write"))],
    ) -> Response:
        svc = _allocation(api)
        order = svc.new_order(
            body.id,
            [(line.sku, line.qty) for line in body.lines],
            LatLng(body.destination.lat, body.destination.lng),
            body.sla,
            body.placed_at_s,
        )
        stored = await run_in_threadpool(svc.place_order, order)
        if body.customer_id is not None:  # who the order is for (the support assistant reads it)
            await run_in_threadpool(svc.store.link_customer, order.id, body.customer_id)
        return json_response(order_out(stored), 201)

    @router.get("/fulfillment/v1/orders/{order_id}", tags=["fulfillment"])
    async def get_order(
        order_id: str,
        principal: Annotated[Principal, Depends(require("fulfillment:read"))],
    ) -> Response:
        svc = _allocation(api)
        return json_response(order_view_out(await run_in_threadpool(svc.explain, order_id)))

    @router.post("/fulfillment/v1/stops/{stop_id}/delivered", tags=["fulfillment"])
    async def delivered(
        stop_id: str,
        body: DeliveredBody,
        principal: Annotated[Principal, Depends(require())],
    ) -> Response:
        """Proof of delivery by the stop's courier (driver token, subject = courier id) or an admin."""
        svc = _allocation(api)
        stop = await run_in_threadpool(svc.store.get_stop, stop_id)
        plan = (await run_in_threadpool(svc.store.plans_of, [stop.plan_id]))[stop.plan_id]
        authorize_owner(principal, "driver", plan.courier_id)
        result = await run_in_threadpool(svc.deliver, stop_id, body.delivered_at_s, principal.subject)
        return json_response(delivery_out(result, plan))

    @router.get("/fulfillment/v1/plans/{plan_id}", tags=["fulfillment"])
    async def get_plan(
        plan_id: str,
        principal: Annotated[Principal, Depends(require("fulfillment:read"))],
    ) -> Response:
        svc = _allocation(api)
        return json_response(route_plan_out(await run_in_threadpool(svc.store.get_plan, plan_id)))

    @router.get("/fulfillment/v1/plans", tags=["fulfillment"])
    async def list_plans(
        principal: Annotated[Principal, Depends(require("fulfillment:read"))],
        status: Annotated[PlanStatus, Query()] = "active",
        warehouse_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PLAN_LIST)] = DEFAULT_PLAN_LIST,
        after: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    ) -> Response:
        """Courier routes as GeoJSON (one LineString feature per plan), by plan id."""
        svc = _allocation(api)
        store = svc.store

        def read() -> list[dict[str, Any]]:
            known = shapes.ids()  # their paths are not read again
            found = store.list_plans(
                None if status == "any" else status, warehouse_id, limit, after, without_geometry=known
            )
            depots = {w.id: w.location for w in store.warehouses()}
            out = []
            for p in found:
                shape = shapes.get(p.id)
                if shape is None:
                    full = store.get_plan(p.id) if p.id in known else p  # evicted meanwhile
                    shape = shapes.put(full, depots.get(p.warehouse_id))
                out.append(plan_feature(p, shape=shape))
            return out

        features = await run_in_threadpool(read)
        return json_response(
            {
                "type": "FeatureCollection",
                "features": features,
                "limit": limit,
                "next_after": features[-1]["id"] if len(features) == limit else None,
            }
        )

    @router.post("/fulfillment/v1/plans/{plan_id}/cancel", tags=["fulfillment"])
    async def cancel_plan(
        plan_id: str,
        body: CancelBody,
        principal: Annotated[Principal, Depends(require("fulfillment:write"))],
    ) -> Response:
        svc = _allocation(api)
        plan = await run_in_threadpool(svc.store.cancel_plan, plan_id, body.reason)
        return json_response(route_plan_out(plan))

    @router.post("/fulfillment/v1/orders/{order_id}/picked", tags=["fulfillment"])
    async def picked(
        order_id: str,
        principal: Annotated[Principal, Depends(require("fulfillment:write"))],
    ) -> Response:
        svc = _allocation(api)
        return json_response(order_out(await run_in_threadpool(svc.store.mark_picked, order_id)))

    @router.post("/fulfillment/v1/reoptimise", tags=["fulfillment"])
    async def reoptimise(
        body: ReoptimiseBody,
        principal: Annotated[Principal, Depends(require("fulfillment:write"))],
    ) -> Response:
        svc = _allocation(api)
        report = await run_in_threadpool(svc.reoptimise, BatchParams(body.time_limit_s, body.seed))
        return json_response(report)

    @router.post("/fulfillment/v1/warehouses/{warehouse_id}/plan", tags=["fulfillment"])
    async def plan(
        warehouse_id: str,
        body: PlanBody,
        principal: Annotated[Principal, Depends(require("fulfillment:write"))],
    ) -> Response:
        """Route today's allocated parcels of a warehouse on the road network (ETAs, geometry)."""
        svc = _allocation(api)
        if api.lastmile is None:
            raise NotFound("last-mile planning is not configured on this server")
        planner = api.lastmile
        params = api.vrp.params(body.time_limit_s, body.seed)
        couriers = [Courier(c.id, c.capacity, c.shift_start_s, c.shift_end_s) for c in body.couriers]
        parcels = await run_in_threadpool(svc.delivery_parcels, warehouse_id)
        depot = next(
            w.location for w in await run_in_threadpool(svc.store.warehouses) if w.id == warehouse_id
        )
        if not slots.acquire(blocking=False):
            raise Unavailable(f"{api.max_concurrent_solves} problems are being solved; retry shortly")
        try:
            result = await run_in_threadpool(planner.plan, depot, couriers, parcels, params)
        finally:
            slots.release()
        records = await run_in_threadpool(svc.record_plan, warehouse_id, result)
        return json_response(plan_out(result, records))

    return router


def plan_out(plan: LastMilePlan, records: list[RoutePlan] | None = None) -> dict[str, Any]:
    """A planner's answer; with ``records`` (the stored plans) each route and stop carries its id."""
    plan_ids = {p.courier_id: p.id for p in records or []}
    stop_ids = {s.parcel_id: s.id for p in records or [] for s in p.stops}
    return {
        "routes": [
            {
                "plan_id": plan_ids.get(r.courier_id),
                "courier_id": r.courier_id,
                "start_s": r.start_s,
                "end_s": r.end_s,
                "duration_s": r.duration_s,
                "distance_m": r.distance_m,
                "stops": [
                    {
                        "stop_id": stop_ids.get(s.parcel_id),
                        "parcel_id": s.parcel_id,
                        "location": {"lat": s.location.lat, "lng": s.location.lng},
                        "arrival_s": s.arrival_s,
                        "eta_s": s.eta_s,
                        "departure_s": s.departure_s,
                    }
                    for s in r.stops
                ],
                "geometry": [[lat, lng] for lat, lng in r.geometry],
            }
            for r in plan.routes
        ],
        "unassigned": [{"parcel_id": k, "reason": v} for k, v in sorted(plan.unassigned.items())],
        "feasible": plan.feasible,
    }


def _allocation(api: FulfillmentApi) -> AllocationService:
    if api.allocation is None:
        raise NotFound("allocation is not configured on this server")
    return api.allocation


def _warehouse_out(w: Warehouse, stock: dict[str, dict[str, int]]) -> dict[str, Any]:
    return {
        "id": w.id,
        "location": {"lat": w.location.lat, "lng": w.location.lng},
        "handling_cost_minor": w.handling_cost_minor,
        "cutoff_s": w.cutoff_s,
        "capacity_orders": w.capacity_orders,
        "pick_time_s": w.pick_time_s,
        "stock": stock,
    }


def order_out(stored: StoredOrder) -> dict[str, Any]:
    """An order with its decision: the allocation explanation, or the reason it is unallocated."""
    order = stored.order
    return {
        "id": order.id,
        "status": stored.status,
        "sla": order.sla.value,
        "destination": {"lat": order.destination.lat, "lng": order.destination.lng},
        "placed_at_s": order.placed_at_s,
        "lines": [{"sku": line.sku, "qty": line.qty} for line in order.lines],
        "allocation": None if stored.allocation is None else allocation_to_dict(stored.allocation),
        "reason": stored.reason,
    }


def stop_out(s: PlanStop) -> dict[str, Any]:
    return {
        "stop_id": s.id,
        "plan_id": s.plan_id,
        "position": s.position,
        "order_id": s.order_id,
        "warehouse_id": s.warehouse_id,
        "parcel_id": s.parcel_id,
        "location": {"lat": s.location.lat, "lng": s.location.lng},
        "eta_s": s.eta_s,
        "deadline_s": s.deadline_s,
        "status": s.status,
        "delivered_at_s": s.delivered_at_s,
        "on_time": s.on_time,
    }


def route_plan_out(p: RoutePlan) -> dict[str, Any]:
    return {
        "plan_id": p.id,
        "warehouse_id": p.warehouse_id,
        "courier_id": p.courier_id,
        "status": p.status,
        "reason": p.reason,
        "start_s": p.start_s,
        "end_s": p.end_s,
        "duration_s": p.duration_s,
        "distance_m": p.distance_m,
        "stops": [stop_out(s) for s in p.stops],
        "geometry": [[lat, lng] for lat, lng in p.geometry],
    }


def plan_shape(p: RoutePlan, depot: LatLng | None = None) -> tuple[list[list[float]], str]:
    """A plan's line as GeoJSON positions ([lng, lat], :data:`COORD_DECIMALS` decimals) and its
    source: the stored road path simplified to within :data:`SIMPLIFY_M` metres and at most
    :data:`MAX_GEOMETRY_POINTS` positions ("road"), or, when no path was stored, straight lines
    depot → stops → depot ("straight"). Consecutive equal positions are merged."""
    path = [(lat, lng) for lat, lng in p.geometry]
    source = "road"
    if len(path) < 2:
        source = "straight"
        ends = [(depot.lat, depot.lng)] if depot is not None else []
        path = [*ends, *((s.location.lat, s.location.lng) for s in p.stops), *ends]
    coords: list[list[float]] = []
    for lat, lng in _thin(simplify(path, SIMPLIFY_M), MAX_GEOMETRY_POINTS):
        point = [round(lng, COORD_DECIMALS), round(lat, COORD_DECIMALS)]
        if not coords or coords[-1] != point:
            coords.append(point)
    return coords, source


class ShapeCache:
    """Plan id → :func:`plan_shape`, least recently used first out (thread-safe, bounded): a
    plan's path never changes, so it is read, simplified and rounded once."""

    def __init__(self, size: int = SHAPE_CACHE_PLANS) -> None:
        self._size = size
        self._shapes: OrderedDict[str, Shape] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._shapes)

    def ids(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._shapes)

    def get(self, plan_id: str) -> Shape | None:
        with self._lock:
            shape = self._shapes.get(plan_id)
            if shape is not None:
                self._shapes.move_to_end(plan_id)
            return shape

    def put(self, p: RoutePlan, depot: LatLng | None) -> Shape:
        """The shape of ``p`` (which must carry its stored path), computed and kept."""
        shape = plan_shape(p, depot)
        with self._lock:
            self._shapes[p.id] = shape
            while len(self._shapes) > self._size:
                self._shapes.popitem(last=False)
        return shape


def plan_feature(p: RoutePlan, depot: LatLng | None = None, shape: Shape | None = None) -> dict[str, Any]:
    """One plan as a GeoJSON Feature (id = plan id): a ``LineString`` of :func:`plan_shape` (or
    of ``shape`` when given; null when fewer than two distinct positions are known) and the plan's
    figures and stops."""
    coords, source = shape if shape is not None else plan_shape(p, depot)
    geometry = {"type": "LineString", "coordinates": coords} if len(coords) >= 2 else None
    return {
        "type": "Feature",
        "id": p.id,
        "geometry": geometry,
        "properties": {
            "plan_id": p.id,
            "warehouse_id": p.warehouse_id,
            "courier_id": p.courier_id,
            "status": p.status,
            "start_s": p.start_s,
            "end_s": p.end_s,
            "duration_s": p.duration_s,
            "distance_m": p.distance_m,
            "geometry_source": source,
            "stops_left": sum(1 for s in p.stops if s.status == PLANNED),
            "stops": [
                {
                    "stop_id": s.id,
                    "position": s.position,
                    "order_id": s.order_id,
                    "lat": s.location.lat,
                    "lng": s.location.lng,
                    "eta_s": s.eta_s,
                    "deadline_s": s.deadline_s,
                    "status": s.status,
                }
                for s in p.stops
            ],
        },
    }


def simplify(path: list[tuple[float, float]], tolerance_m: float) -> list[tuple[float, float]]:
    """Douglas-Peucker on (lat, lng) points: drops every point within ``tolerance_m`` metres of
    the line its kept neighbours draw (local flat projection; first and last always kept)."""
    n = len(path)
    if n <= 2:
        return list(path)
    lat0 = math.radians(sum(lat for lat, _ in path) / n)
    kx, ky = 111_320.0 * math.cos(lat0), 110_540.0
    xy = [(lng * kx, lat * ky) for lat, lng in path]
    keep = [False] * n
    keep[0] = keep[-1] = True
    spans = [(0, n - 1)]
    while spans:
        lo, hi = spans.pop()
        (ax, ay), (bx, by) = xy[lo], xy[hi]
        dx, dy = bx - ax, by - ay
        length = math.hypot(dx, dy)
        worst, at = -1.0, -1
        for i in range(lo + 1, hi):
            px, py = xy[i]
            cross = abs(dx * (ay - py) - dy * (ax - px))
            d = cross / length if length > 0 else math.hypot(px - ax, py - ay)
            if d > worst:
                worst, at = d, i
        if at > 0 and worst > tolerance_m:
            keep[at] = True
            spans.append((lo, at))
            spans.append((at, hi))
    return [pt for pt, k in zip(path, keep, strict=True) if k]


def _thin(path: list[tuple[float, float]], most: int) -> list[tuple[float, float]]:
    """At most ``most`` (>= 2) points of ``path``, evenly spaced, first and last kept."""
    if len(path) <= most:
        return path
    last = len(path) - 1
    return [path[round(i * last / (most - 1))] for i in range(most)]


def delivery_out(d: Delivery, plan: RoutePlan) -> dict[str, Any]:
    return {
        "stop": {**stop_out(d.stop), "courier_id": plan.courier_id},
        "repeated": d.repeated,
        "order": {
            "id": d.order_id,
            "status": d.order_status,
            "parcels": d.parcels,
            "parcels_delivered": d.parcels_delivered,
            "deadline_s": d.deadline_s,
            "delivered_at_s": d.delivered_at_s,
            "on_time": d.on_time,
        },
    }


def order_view_out(view: OrderView) -> dict[str, Any]:
    """``order_out`` plus each shipment's plan (courier, position, ETA), delivery and history."""
    out = order_out(view.order)
    allocation = view.order.allocation
    warehouses = sorted({p.warehouse_id for p in allocation.chosen.packages}) if allocation else []
    shipments = []
    delivered: list[int] = []
    for wid in warehouses:
        mine = [s for s in view.stops if s.warehouse_id == wid]
        live = next((s for s in mine if s.status in (PLANNED, DELIVERED)), None)
        plan = None if live is None else view.plans.get(live.plan_id)
        if live is not None and live.delivered_at_s is not None:
            delivered.append(live.delivered_at_s)
        current = None
        if live is not None:
            current = {
                **stop_out(live),
                "courier_id": None if plan is None else plan.courier_id,
                "plan_status": None if plan is None else plan.status,
            }
        shipments.append(
            {
                "parcel_id": parcel_id(view.order.order.id, wid),
                "warehouse_id": wid,
                "status": "unplanned" if live is None else live.status,
                "stop": current,
                "earlier_stops": [
                    {"stop_id": s.id, "plan_id": s.plan_id, "status": s.status} for s in mine if s is not live
                ],
            }
        )
    done = bool(shipments) and len(delivered) == len(shipments)
    deadline = view.deadline_s
    out["shipments"] = shipments
    out["delivery"] = {
        "status": view.order.status,
        "parcels": len(shipments),
        "parcels_delivered": len(delivered),
        "deadline_s": deadline,
        "delivered_at_s": max(delivered) if done else None,
        "on_time": (max(delivered) <= deadline) if done else None,
    }
    out["history"] = [{"status": h.status, "at_s": h.at_s, "detail": h.detail} for h in view.history]
    return out
