"""Simulated shop customers: orders fulfilled from warehouses, paid through the ledger, delivered.

Like the rest of the simulator this is a client of the public HTTP APIs only:

* set-up (admin): warehouses on the outskirts (``PUT /fulfillment/v1/warehouses/{id}``), SKUs with
  stock in two of the three warehouses each (so multi-SKU orders sometimes split), the shop's
  merchant account and the platform's system accounts (``POST /payments/v1/ledger/accounts``);
* a customer: ``POST /fulfillment/v1/orders`` (allocation or the reason it failed); an allocated
  order is paid — wallet top-up (``/payments/v1/topups``) and payment to the merchant
  (``/payments/v1/payments``), both with an ``Idempotency-Key``, with the customer's own token;
* every ``plan_every_s`` simulated seconds each warehouse's allocated parcels are routed
  (``POST /fulfillment/v1/warehouses/{id}/plan``, stored as one plan per courier); an order all of
  whose parcels got a stop is handed to its couriers (``POST .../orders/{id}/picked``);
* the couriers drive their plans in simulated time: at each stop's planned ETA its courier (a
  driver token whose subject is the courier id) posts the proof of delivery
  (``POST /fulfillment/v1/stops/{id}/delivered``). An order counts as delivered, and on time,
  only when the API says so (every parcel delivered; last delivery vs the SLA deadline).

The plan (:func:`plan_orders`) is a pure function of (params, rng, horizon): same seed, same orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from hexcity.kernel import LatLng
from hexcity.simulator.clock import Clock, SimClock
from hexcity.simulator.drivers import spread
from hexcity.simulator.kpis import DeliveryOutcome

__all__ = [
    "PlannedOrder",
    "ShopParams",
    "ShopSim",
    "ShopStats",
    "deadline_s",
    "plan_orders",
    "sku_holders",
    "sku_price_minor",
]

DAY_S = 86_400
SLA_MIX: tuple[tuple[str, float], ...] = (("2h", 0.5), ("same_day", 0.35), ("standard", 0.15))
STANDARD_DAYS = 3  # fulfillment's CostModel.standard_days (the deadline of a "standard" order)
MAX_LINES = 3
MAX_ERRORS = 100
MAX_DELIVERIES_IN_FLIGHT = 5_000  # courier stops waiting for their ETA at once
TokenSource = Callable[[str, str], str]


@dataclass(frozen=True)
class ShopParams:
    center: LatLng
    radius_m: float = 3000.0
    orders_per_hour: float = 120.0
    warehouses: int = 3
    skus: int = 8
    stock_per_sku: int = 500  # units in each warehouse that holds the SKU
    couriers_per_warehouse: int = 2
    courier_capacity: int = 40  # units
    plan_every_s: float = 120.0  # simulated seconds between last-mile planning rounds
    pick_time_s: int = 180  # a dark store: picked and packed in three minutes
    plan_time_limit_s: float = 1.0  # solver budget per warehouse plan (wall seconds)
    start_hour: float = 8.0
    shop_id: str = "shop-001"
    currency: str = "EUR"
    max_active_orders: int = 40  # customers in flight at once; beyond this an order is skipped
    featured_customer: str | None = None  # the first order is this customer's (the demo's chat user)

    def __post_init__(self) -> None:
        if not 100 <= self.radius_m <= 50_000:
            raise ValueError("radius_m must be in [100, 50000]")
        if not 0 <= self.orders_per_hour <= 100_000:
            raise ValueError("orders_per_hour must be in [0, 100000]")
        if not 1 <= self.warehouses <= 20 or not 1 <= self.skus <= 200:
            raise ValueError("warehouses must be in [1, 20] and skus in [1, 200]")
        if not 1 <= self.couriers_per_warehouse <= 50 or not 1 <= self.courier_capacity <= 10_000:
            raise ValueError("couriers_per_warehouse must be in [1, 50], courier_capacity in [1, 10000]")
        if not 10 <= self.plan_every_s <= 3600:
            raise ValueError("plan_every_s must be in [10, 3600]")
        if not 0 <= self.start_hour < 24:
            raise ValueError("start_hour must be in [0, 24)")
        if not 0 <= self.pick_time_s <= 86_400:
            raise ValueError("pick_time_s must be in [0, 86400]")


@dataclass(frozen=True)
class PlannedOrder:
    order_id: str
    customer_id: str
    at_s: float  # simulated seconds from the start
    destination: LatLng
    sla: str
    lines: tuple[tuple[str, int], ...]  # (sku, qty), SKUs distinct and sorted


def sku_id(i: int) -> str:
    return f"sku-{i:03d}"


def sku_holders(sku_no: int, warehouses: int) -> set[int]:
    """Which warehouses stock SKU ``sku_no``: even SKUs two neighbouring ones, odd SKUs a single
    one — so an order of two odd SKUs held apart must split (or consolidate by a transfer)."""
    if sku_no % 2:
        return {(sku_no // 2) % warehouses}
    return {sku_no % warehouses, (sku_no + 1) % warehouses}


def sku_price_minor(sku: str) -> int:
    """The shop's price list: 4.90 for sku-000, then 2.50 more per SKU number."""
    return 490 + 250 * int(sku.rsplit("-", 1)[1])


def plan_orders(params: ShopParams, rng: random.Random, horizon_s: float) -> list[PlannedOrder]:
    """Customer orders until ``horizon_s`` (Poisson arrivals), each with an SLA from :data:`SLA_MIX`
    and 1..3 distinct SKUs of quantity 1..2."""
    if params.orders_per_hour <= 0:
        return []
    rate_per_s = params.orders_per_hour / 3600
    out: list[PlannedOrder] = []
    t = 0.0
    while True:
        t += rng.expovariate(rate_per_s)
        if t >= horizon_s:
            return out
        x, sla = rng.random(), SLA_MIX[-1][0]
        for name, share in SLA_MIX:
            if x < share:
                sla = name
                break
            x -= share
        n_lines = rng.randint(1, min(MAX_LINES, params.skus))
        skus = sorted(rng.sample(range(params.skus), n_lines))
        lines = tuple((sku_id(s), rng.randint(1, 2)) for s in skus)
        destination = spread(params.center, params.radius_m, 1, rng)[0]
        n = len(out)
        customer = params.featured_customer if n == 0 and params.featured_customer else f"customer-{n:05d}"
        out.append(PlannedOrder(f"order-{n:05d}", customer, round(t, 3), destination, sla, lines))


def deadline_s(sla: str, placed_at_s: int) -> int:
    """The SLA deadline in seconds of the simulated day (as fulfillment's CostModel)."""
    if sla == "2h":
        return placed_at_s + 2 * 3600
    if sla == "same_day":
        return DAY_S
    return STANDARD_DAYS * DAY_S


def _offset(center: LatLng, distance_m: float, bearing_deg: float) -> LatLng:
    theta = math.radians(bearing_deg)
    dlat = distance_m * math.cos(theta) / 111_320.0
    dlng = distance_m * math.sin(theta) / (111_320.0 * math.cos(math.radians(center.lat)))
    return LatLng(center.lat + dlat, center.lng + dlng)


@dataclass
class ShopStats:
    orders_planned: int = 0
    orders_skipped: int = 0  # over max_active_orders
    orders_placed: int = 0  # accepted by the fulfillment API (allocated or not)
    orders_allocated: int = 0
    orders_unallocated: int = 0
    orders_paid: int = 0
    payments_failed: int = 0
    orders_picked: int = 0
    orders_delivered: int = 0  # the API answered "delivered" (every parcel)
    orders_on_time: int = 0  # ... and on time against the SLA deadline
    deliveries_posted: int = 0  # stops delivered (parcels)
    deliveries_failed: int = 0
    plan_rounds: int = 0
    revenue_minor: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors.append(text[:300])
        if len(self.errors) > MAX_ERRORS:
            del self.errors[0]


class ShopSim:
    """Sets up the shop, then plays the order plan and plans deliveries until ``stop``."""

    def __init__(
        self,
        api_url: str,
        tokens: TokenSource,
        params: ShopParams,
        *,
        seed: int = 1,
        clock: Clock | None = None,
        horizon_s: float = 24 * 3600,
    ) -> None:
        self.api_url = api_url
        self.tokens = tokens
        self.params = params
        self.seed = seed
        self.clock: Clock = clock or SimClock(1.0)
        self.orders = plan_orders(params, random.Random(f"shop:{seed}"), horizon_s)
        self.stats = ShopStats(orders_planned=len(self.orders))
        self.warehouse_ids = [f"wh-{i + 1:02d}" for i in range(params.warehouses)]
        self.outcomes: dict[str, DeliveryOutcome] = {}
        self.packages: dict[str, tuple[str, ...]] = {}  # order id -> warehouses of its parcels
        self.accounts: set[str] = set()  # every ledger account this shop moved money on
        self.ready = asyncio.Event()
        # order id -> warehouse -> (stop id, planned ETA, courier id), latest plan wins
        self._stops: dict[str, dict[str, tuple[str, float, str]]] = {}
        self._delivered: dict[str, dict[str, int]] = {}  # order id -> warehouse -> delivered at
        self._deliveries: set[asyncio.Task[None]] = set()
        self._stop_event: asyncio.Event | None = None
        self._active: set[asyncio.Task[None]] = set()
        self._t0 = self.clock.now()

    @property
    def merchant_account(self) -> str:
        return f"merchant:{self.params.shop_id}:{self.params.currency}"

    def wallet_account(self, customer_id: str) -> str:
        return f"wallet:{customer_id}:{self.params.currency}"

    def day_s(self) -> float:
        """Now, in seconds of the simulated day."""
        return self.params.start_hour * 3600 + (self.clock.now() - self._t0)

    def delivery_outcomes(self) -> list[DeliveryOutcome]:
        """Per allocated order: its SLA deadline and, per parcel, the delivery time the API
        recorded (``inf`` while the parcel is still out for delivery)."""
        return list(self.outcomes.values())

    async def run(self, stop: asyncio.Event) -> None:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=20)
        async with httpx.AsyncClient(base_url=self.api_url, timeout=30.0, limits=limits) as http:
            self._http = http
            self._admin = {"Authorization": f"Bearer {self.tokens('admin', 'simulator-shop')}"}
            self._t0 = self.clock.now()
            try:
                await self.setup()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                self.stats.error(f"setup: {type(exc).__name__}: {exc}")
                self.ready.set()
                await stop.wait()
                return
            self.ready.set()
            self._stop_event = stop
            tasks = [
                self.clock.spawn(self._customers(stop), name="shop-customers"),
                self.clock.spawn(self._planner(stop), name="shop-planner"),
            ]
            await stop.wait()
            for task in [*tasks, *self._active, *self._deliveries]:
                task.cancel()
            for task in [*tasks, *self._active, *self._deliveries]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # ---- set-up -------------------------------------------------------------------------------
    async def setup(self) -> None:
        """Warehouses, stock and the shop's ledger accounts (idempotent: safe to run twice)."""
        p = self.params
        for i, warehouse_id in enumerate(self.warehouse_ids):
            bearing = 360.0 * i / p.warehouses + 30.0
            site = await self._snap(_offset(p.center, p.radius_m * 1.2, bearing))
            body = {"location": {"lat": site.lat, "lng": site.lng}, "pick_time_s": p.pick_time_s}
            r = await self._http.put(
                f"/fulfillment/v1/warehouses/{warehouse_id}", json=body, headers=self._admin
            )
            r.raise_for_status()
        for s in range(p.skus):
            holders = sku_holders(s, p.warehouses)
            for w in sorted(holders):
                r = await self._http.put(
                    f"/fulfillment/v1/warehouses/{self.warehouse_ids[w]}/stock/{sku_id(s)}",
                    json={"on_hand": p.stock_per_sku, "cause": "simulator"},
                    headers=self._admin,
                )
                r.raise_for_status()
        system = [
            {"id": f"platform:revenue:{p.currency}", "kind": "platform_revenue", "currency": p.currency},
            {
                "id": f"external:settlement:{p.currency}",
                "kind": "external_settlement",
                "currency": p.currency,
                "overdraft": "unbounded",
            },
            {
                "id": self.merchant_account,
                "kind": "merchant",
                "currency": p.currency,
                "owner_kind": "shop",
                "owner_id": p.shop_id,
            },
        ]
        await self._open_accounts(system)

    async def _open_accounts(self, accounts: list[dict[str, Any]]) -> None:
        r = await self._http.post(
            "/payments/v1/ledger/accounts", json={"accounts": accounts}, headers=self._admin
        )
        r.raise_for_status()
        self.accounts.update(a["id"] for a in accounts)

    async def _snap(self, p: LatLng) -> LatLng:
        """``p`` on the road; pulled towards the centre when no road is near (as the city does)."""
        center = self.params.center
        for f in (1.0, 0.75, 0.5, 0.0):
            q = LatLng(center.lat + (p.lat - center.lat) * f, center.lng + (p.lng - center.lng) * f)
            r = await self._http.get(f"/nearest/v1/driving/{q.lng:.6f},{q.lat:.6f}", headers=self._admin)
            if r.status_code == 400:
                continue
            r.raise_for_status()
            lng, lat = r.json()["waypoints"][0]["location"]
            return LatLng(float(lat), float(lng))
        raise ValueError(f"no road near {center}")

    # ---- customers ----------------------------------------------------------------------------
    async def _until(self, at_s: float, stop: asyncio.Event) -> bool:
        return await self.clock.sleep_until(self._t0 + at_s, stop)

    async def _customers(self, stop: asyncio.Event) -> None:
        for order in self.orders:
            if not await self._until(order.at_s, stop):
                return
            if len(self._active) >= self.params.max_active_orders:
                self.stats.orders_skipped += 1
                continue
            task = self.clock.spawn(self._customer(order), name=f"shop-{order.order_id}")
            self._active.add(task)
            task.add_done_callback(self._active.discard)

    async def _customer(self, order: PlannedOrder) -> None:
        try:
            await self._order(order)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            self.stats.error(f"{order.order_id}: {type(exc).__name__}: {exc}")

    async def _order(self, order: PlannedOrder) -> None:
        destination = await self._snap(order.destination)
        placed_at_s = int(self.day_s()) % DAY_S
        body = {
            "id": order.order_id,
            "lines": [{"sku": s, "qty": q} for s, q in order.lines],
            "destination": {"lat": destination.lat, "lng": destination.lng},
            "sla": order.sla,
            "placed_at_s": placed_at_s,
            "customer_id": order.customer_id,
        }
        r = await self._http.post("/fulfillment/v1/orders", json=body, headers=self._admin)
        if r.status_code != 201:
            self.stats.error(f"{order.order_id}: order {r.status_code}: {r.text[:200]}")
            return
        self.stats.orders_placed += 1
        placed = r.json()
        allocation = placed.get("allocation")
        if placed.get("status") != "allocated" or allocation is None:
            self.stats.orders_unallocated += 1
            return
        self.stats.orders_allocated += 1
        warehouses = tuple(sorted({str(p["warehouse_id"]) for p in allocation["packages"]}))
        self.packages[order.order_id] = warehouses
        self.outcomes[order.order_id] = DeliveryOutcome(
            order.order_id, len(warehouses), deadline_s(order.sla, placed_at_s)
        )
        await self._pay(order)

    async def _pay(self, order: PlannedOrder) -> None:
        p = self.params
        amount_minor = sum(sku_price_minor(s) * q for s, q in order.lines)
        wallet = self.wallet_account(order.customer_id)
        await self._open_accounts(
            [
                {
                    "id": wallet,
                    "kind": "wallet",
                    "currency": p.currency,
                    "owner_kind": "rider",
                    "owner_id": order.customer_id,
                }
            ]
        )
        customer = {"Authorization": f"Bearer {self.tokens('rider', order.customer_id)}"}
        top_up = {"wallet_account_id": wallet, "amount_minor": amount_minor, "currency": p.currency,
                  "reference": f"card for {order.order_id}"}  # fmt: skip
        r = await self._http.post(
            "/payments/v1/topups",
            json=top_up,
            headers={**customer, "Idempotency-Key": f"top-{order.order_id}"},
        )
        if r.status_code != 201:
            self.stats.payments_failed += 1
            self.stats.error(f"{order.order_id}: top-up {r.status_code}: {r.text[:200]}")
            return
        pay = {"payer_account_id": wallet, "payee_account_id": self.merchant_account,
               "amount_minor": amount_minor, "currency": p.currency, "reference": order.order_id}  # fmt: skip
        r = await self._http.post(
            "/payments/v1/payments",
            json=pay,
            headers={**customer, "Idempotency-Key": f"pay-{order.order_id}"},
        )
        if r.status_code != 201:
            self.stats.payments_failed += 1
            self.stats.error(f"{order.order_id}: payment {r.status_code}: {r.text[:200]}")
            return
        self.stats.orders_paid += 1
        self.stats.revenue_minor += amount_minor

    # ---- last mile ----------------------------------------------------------------------------
    async def _planner(self, stop: asyncio.Event) -> None:
        at_s = self.params.plan_every_s
        while await self._until(at_s, stop):
            try:
                await self.plan_round()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                self.stats.error(f"plan: {type(exc).__name__}: {exc}")
            at_s += self.params.plan_every_s

    async def plan_round(self) -> None:
        """Route every warehouse's allocated parcels; hand fully routed orders to the couriers."""
        p = self.params
        now_s = int(self.day_s())
        for warehouse_id in self.warehouse_ids:
            couriers = [
                {"id": f"{warehouse_id}-courier-{c + 1}", "capacity": p.courier_capacity,
                 "shift_start_s": now_s, "shift_end_s": min(2 * DAY_S, now_s + 8 * 3600)}
                for c in range(p.couriers_per_warehouse)
            ]  # fmt: skip
            body = {"couriers": couriers, "time_limit_s": p.plan_time_limit_s, "seed": self.seed}
            r = await self._http.post(
                f"/fulfillment/v1/warehouses/{warehouse_id}/plan", json=body, headers=self._admin
            )
            if r.status_code == 503:  # the solver slots are busy: next round
                continue
            r.raise_for_status()
            for route in r.json()["routes"]:
                for stop in route["stops"]:
                    order_id, _, wh = str(stop["parcel_id"]).rpartition("@")
                    entry = (str(stop["stop_id"]), float(stop["eta_s"]), str(route["courier_id"]))
                    self._stops.setdefault(order_id, {})[wh] = entry
        self.stats.plan_rounds += 1
        for order_id, stops in list(self._stops.items()):
            warehouses = self.packages.get(order_id)
            if warehouses is None or any(w not in stops for w in warehouses):
                continue
            r = await self._http.post(f"/fulfillment/v1/orders/{order_id}/picked", headers=self._admin)
            if r.status_code != 200:
                self.stats.error(f"{order_id}: picked {r.status_code}: {r.text[:200]}")
                continue
            self.stats.orders_picked += 1
            outcome = self.outcomes[order_id]
            self.outcomes[order_id] = DeliveryOutcome(
                order_id, outcome.parcels, outcome.deadline_s, (math.inf,) * outcome.parcels
            )
            del self._stops[order_id]
            for wh in warehouses:
                self._drive(order_id, wh, *stops[wh])

    def _drive(self, order_id: str, warehouse_id: str, stop_id: str, eta_s: float, courier_id: str) -> None:
        """The courier reaches the stop at its planned ETA and posts the proof of delivery."""
        if len(self._deliveries) >= MAX_DELIVERIES_IN_FLIGHT:
            self.stats.deliveries_failed += 1
            self.stats.error(f"{stop_id}: over {MAX_DELIVERIES_IN_FLIGHT} deliveries in flight; not driven")
            return
        task = self.clock.spawn(
            self._deliver(order_id, warehouse_id, stop_id, eta_s, courier_id), name=f"shop-{stop_id}"
        )
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(
        self, order_id: str, warehouse_id: str, stop_id: str, eta_s: float, courier_id: str
    ) -> None:
        stop = self._stop_event or asyncio.Event()
        if not await self._until(eta_s - self.params.start_hour * 3600, stop):
            return
        try:
            await self.post_delivered(order_id, warehouse_id, stop_id, int(eta_s), courier_id)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            self.stats.deliveries_failed += 1
            self.stats.error(f"{stop_id}: delivered: {type(exc).__name__}: {exc}")

    async def post_delivered(
        self, order_id: str, warehouse_id: str, stop_id: str, at_s: int, courier_id: str
    ) -> None:
        """``POST /fulfillment/v1/stops/{id}/delivered`` as the courier; the order's outcome comes
        from the answer (delivered when all its parcels are, on time per the API)."""
        courier = {"Authorization": f"Bearer {self.tokens('driver', courier_id)}"}
        r = await self._http.post(
            f"/fulfillment/v1/stops/{stop_id}/delivered", json={"delivered_at_s": at_s}, headers=courier
        )
        if r.status_code != 200:
            self.stats.deliveries_failed += 1
            self.stats.error(f"{stop_id}: delivered {r.status_code}: {r.text[:200]}")
            return
        body = r.json()
        if not body["repeated"]:
            self.stats.deliveries_posted += 1
        self._delivered.setdefault(order_id, {})[warehouse_id] = int(body["stop"]["delivered_at_s"])
        order = body["order"]
        outcome = self.outcomes.get(order_id)
        if order["status"] != "delivered" or outcome is None or _counted(outcome):
            return  # parcels still out, or this order was counted already
        times = self._delivered.pop(order_id, {})
        delivered = DeliveryOutcome(
            order_id,
            outcome.parcels,
            int(order["deadline_s"]),
            tuple(float(times.get(w, order["delivered_at_s"])) for w in self.packages[order_id]),
        )
        self.outcomes[order_id] = delivered
        self.stats.orders_delivered += 1
        self.stats.orders_on_time += 1 if order["on_time"] else 0
        if delivered.on_time != bool(order["on_time"]):
            self.stats.error(f"{order_id}: on-time per the API {order['on_time']} != {delivered.on_time}")


def _counted(outcome: DeliveryOutcome) -> bool:
    """Every parcel has a recorded delivery time (``inf`` marks one still out for delivery)."""
    return outcome.routed and all(math.isfinite(t) for t in outcome.etas_s)
