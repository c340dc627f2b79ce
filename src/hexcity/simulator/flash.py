"""A flash sale at a scheduled simulated minute with a crowd of buyers, over the commerce API only.

Set-up (admin): merchant, product, SKU and a campaign (``POST /commerce/v1/...``) whose window is
the simulated sale time converted to wall-clock time (commerce runs on the real clock). At the
opening the crowd arrives (seeded: every buyer's arrival within ``arrival_spread_s`` simulated
seconds of it) and each buyer tries to buy one unit: ``POST .../campaigns/{id}/purchase`` with an
``Idempotency-Key`` (202 receipt) then ``POST .../orders/{id}/pay`` (``confirmed``). A buyer
honours 429 ``Retry-After`` (rate limits, waiting room — joining the queue when the sale asks for
an admission token), retries a not-yet-open sale, and gives up on ``SoldOut``/``LimitExceeded``
or after ``max_attempts``. At the end the admin reconciliation gives the engine's own counters.

``flash_sale_sold`` is what buyers were told is theirs (orders ``confirmed``);
``flash_sale_oversold`` is how far that, or the engine's confirmed units, exceeds the sale stock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from hexcity.simulator.clock import Clock, SimClock

__all__ = ["FlashParams", "FlashSale", "FlashStats", "PlannedBuyer", "plan_buyers"]

TokenSource = Callable[[str, str], str]
MAX_ERRORS = 100
MAX_RETRY_WAIT_S = 2.0  # wall seconds a buyer waits at most on one Retry-After
PAY_RETRIES = 20  # the order is written asynchronously: pay may briefly not find it
PAY_RETRY_S = 0.1


@dataclass(frozen=True)
class FlashParams:
    at_s: float = 120.0  # simulated seconds after the start when the sale opens
    duration_s: float = 600.0  # simulated seconds it stays open
    units: int = 50  # sale stock
    buyers: int = 150
    price_minor: int = 19_900
    sale_price_minor: int = 9_900
    currency: str = "EUR"
    merchant_id: str = "flash-shop"
    arrival_spread_s: float = 30.0
    max_attempts: int = 10

    def __post_init__(self) -> None:
        if self.at_s < 0 or not 1 <= self.duration_s <= 30 * 86_400:
            raise ValueError("at_s must be >= 0 and duration_s in [1, 2592000]")
        if not 1 <= self.units <= 1_000_000 or not 0 <= self.buyers <= 100_000:
            raise ValueError("units must be in [1, 1000000] and buyers in [0, 100000]")
        if not 0 <= self.sale_price_minor <= self.price_minor:
            raise ValueError("need 0 <= sale_price_minor <= price_minor")
        if not 0 <= self.arrival_spread_s <= 3600 or not 1 <= self.max_attempts <= 100:
            raise ValueError("arrival_spread_s must be in [0, 3600] and max_attempts in [1, 100]")


@dataclass(frozen=True)
class PlannedBuyer:
    buyer_id: str
    at_s: float  # simulated seconds from the start


def plan_buyers(params: FlashParams, rng: random.Random) -> list[PlannedBuyer]:
    """The crowd: a few early birds before the opening, most in the first ``arrival_spread_s``."""
    out = []
    for i in range(params.buyers):
        offset = rng.uniform(-0.1, 1.0) * params.arrival_spread_s
        out.append(PlannedBuyer(f"buyer-{i:05d}", round(max(0.0, params.at_s + offset), 3)))
    out.sort(key=lambda b: (b.at_s, b.buyer_id))
    return out


@dataclass
class FlashStats:
    attempts: int = 0
    receipts: int = 0  # 202: a hold was taken
    confirmed: int = 0  # orders paid and confirmed
    units_sold: int = 0
    sold_out: int = 0  # buyers told SoldOut
    rate_limited: int = 0  # 429 answers (rate limits, waiting room)
    not_open: int = 0  # SaleNotOpen answers (early birds)
    gave_up: int = 0  # max_attempts reached
    buyers_done: int = 0  # buyers who finished (bought, told sold out, gave up or failed)
    errors: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors.append(text[:300])
        if len(self.errors) > MAX_ERRORS:
            del self.errors[0]


class FlashSale:
    """One campaign and its crowd; ``run(stop)`` sets up, plays the crowd, reconciles at ``stop``."""

    def __init__(
        self,
        api_url: str,
        tokens: TokenSource,
        params: FlashParams,
        *,
        seed: int = 1,
        clock: Clock | None = None,
    ) -> None:
        self.api_url = api_url
        self.tokens = tokens
        self.params = params
        self.clock: Clock = clock or SimClock(1.0)
        self.buyers = plan_buyers(params, random.Random(f"flash:{seed}"))
        self.campaign_id = f"flash-{seed}"
        self.sku_id = f"flash-sku-{seed}"
        self.stats = FlashStats()
        self.ready = False
        self.setup_done = asyncio.Event()  # set-up finished (or failed): the crowd may come
        self.reconciliation: dict[str, Any] | None = None
        self._t0 = self.clock.now()
        self._tasks: set[asyncio.Task[None]] = set()

    def elapsed_s(self) -> float:
        return self.clock.now() - self._t0

    @property
    def state(self) -> str:
        if not self.ready:
            return "not set up"
        t = self.elapsed_s()
        if t < self.params.at_s:
            return f"opens in {self.params.at_s - t:.0f} s (simulated)"
        if self.stats.sold_out or self.stats.units_sold >= self.params.units:
            return "sold out"
        return "open" if t < self.params.at_s + self.params.duration_s else "closed"

    def kpis(self) -> dict[str, int | None]:
        """``flash_sale_units``, ``_sold`` and ``_oversold`` (None before the sale was set up)."""
        if not self.ready:
            return {"flash_sale_units": None, "flash_sale_sold": None, "flash_sale_oversold": None}
        units, sold = self.params.units, self.stats.units_sold
        engine_over = 0
        snap = (self.reconciliation or {}).get("snapshot")
        if isinstance(snap, dict):
            engine_over = int(snap["confirmed"]) - int(snap["initial"])
        return {
            "flash_sale_units": units,
            "flash_sale_sold": sold,
            "flash_sale_oversold": max(0, sold - units, engine_over),
        }

    async def run(self, stop: asyncio.Event) -> None:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=self.api_url, timeout=30.0, limits=limits) as http:
            self._http = http
            self._admin = {"Authorization": f"Bearer {self.tokens('admin', 'simulator-flash')}"}
            self._t0 = self.clock.now()
            try:
                await self.setup()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                self.stats.error(f"setup: {type(exc).__name__}: {exc}")
                self.setup_done.set()
                await stop.wait()
                return
            crowd = self.clock.spawn(self._crowd(stop), name="flash-crowd")
            self.setup_done.set()
            await stop.wait()
            for task in [crowd, *self._tasks]:
                task.cancel()
            for task in [crowd, *self._tasks]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            try:
                await self.reconcile()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                self.stats.error(f"reconcile: {type(exc).__name__}: {exc}")

    def _wall_s(self, sim_at_s: float) -> float:
        """The platform's epoch seconds at which simulated ``t0 + sim_at_s`` happens."""
        return self.clock.platform_time(self._t0 + sim_at_s)

    async def setup(self) -> None:
        p = self.params
        steps: list[tuple[str, dict[str, Any]]] = [
            ("merchants", {"merchant_id": p.merchant_id, "name": "Flash shop"}),
            ("products", {"product_id": f"flash-product-{self.campaign_id}", "merchant_id": p.merchant_id,
                          "name": "Limited edition"}),
            ("skus", {"sku_id": self.sku_id, "product_id": f"flash-product-{self.campaign_id}",
                      "merchant_id": p.merchant_id, "price_minor": p.price_minor, "currency": p.currency,
                      "stock": p.units}),
        ]  # fmt: skip
        for path, body in steps:
            r = await self._http.post(f"/commerce/v1/{path}", json=body, headers=self._admin)
            if r.status_code not in (201, 409):  # 409: exists already (a second run on the same data)
                raise ValueError(f"{path} {r.status_code}: {r.text[:200]}")
        starts = self._wall_s(p.at_s)
        campaign = {
            "campaign_id": self.campaign_id,
            "sku_id": self.sku_id,
            "merchant_id": p.merchant_id,
            "starts_at_s": round(starts, 3),
            "ends_at_s": round(starts + self.clock.platform_duration(p.duration_s), 3),
            "sale_price_minor": p.sale_price_minor,
            "currency": p.currency,
            "sale_stock": p.units,
            "per_user_limit": 1,
        }
        r = await self._http.post("/commerce/v1/campaigns", json=campaign, headers=self._admin)
        if r.status_code != 201:
            raise ValueError(f"campaign {r.status_code}: {r.text[:200]}")
        self.ready = True

    async def _crowd(self, stop: asyncio.Event) -> None:
        for buyer in self.buyers:
            if not await self.clock.sleep_until(self._t0 + buyer.at_s, stop):
                return
            task = self.clock.spawn(self._buyer(buyer), name=f"flash-{buyer.buyer_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _buyer(self, buyer: PlannedBuyer) -> None:
        try:
            await self._buy(buyer)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            self.stats.error(f"{buyer.buyer_id}: {type(exc).__name__}: {exc}")
        finally:
            self.stats.buyers_done += 1

    async def _buy(self, buyer: PlannedBuyer) -> None:
        auth = {"Authorization": f"Bearer {self.tokens('rider', buyer.buyer_id)}"}
        key = f"{self.campaign_id}:{buyer.buyer_id}"
        admission: str | None = None
        base = f"/commerce/v1/campaigns/{self.campaign_id}"
        for _ in range(self.params.max_attempts):
            headers = {**auth, "Idempotency-Key": key}
            if admission is not None:
                headers["X-Admission-Token"] = admission
            self.stats.attempts += 1
            r = await self._http.post(f"{base}/purchase", json={"quantity": 1}, headers=headers)
            code = _code(r)
            if r.status_code == 202:
                self.stats.receipts += 1
                await self._pay(auth, r.json())
                return
            if r.status_code == 409 and code in ("SoldOut", "LimitExceeded"):
                self.stats.sold_out += code == "SoldOut"
                return
            if r.status_code == 409 and code == "SaleNotOpen":
                self.stats.not_open += 1
                wait_s = min(MAX_RETRY_WAIT_S, max(0.05, self._until_open_wall_s()))
                await self.clock.sleep(wait_s * self.clock.speed)
            elif r.status_code in {429, 503}:
                self.stats.rate_limited += r.status_code == 429
                await self.clock.sleep(_retry_after_s(r) * self.clock.speed)
            elif r.status_code == 403 and code == "AdmissionRequired":
                q = await self._http.post(f"{base}/queue", json={"token": admission}, headers=auth)
                q.raise_for_status()
                admission = str(q.json()["token"])
            else:
                self.stats.error(f"{buyer.buyer_id}: purchase {r.status_code}: {r.text[:200]}")
                return
        self.stats.gave_up += 1

    def _until_open_wall_s(self) -> float:
        return (self._t0 + self.params.at_s - self.clock.now()) / self.clock.speed

    async def _pay(self, auth: dict[str, str], receipt: dict[str, Any]) -> None:
        order_id = str(receipt["order_id"])
        # the order is persisted asynchronously: pay a moment later (under a virtual clock, the next
        # tick — after the platform drained its queues — so the outcome never depends on wall time)
        await self.clock.sleep(PAY_RETRY_S * self.clock.speed)
        for _ in range(PAY_RETRIES):
            r = await self._http.post(f"/commerce/v1/orders/{order_id}/pay", headers=auth)
            if r.status_code == 404:  # not written yet (orders are persisted asynchronously)
                await self.clock.sleep(PAY_RETRY_S * self.clock.speed)
                continue
            if r.status_code != 200:
                self.stats.error(f"{order_id}: pay {r.status_code}: {r.text[:200]}")
                return
            order = r.json()
            if order.get("status") == "confirmed":
                self.stats.confirmed += 1
                self.stats.units_sold += int(order.get("quantity", receipt.get("quantity", 1)))
            return
        self.stats.error(f"{order_id}: pay: order never appeared")

    async def reconcile(self) -> None:
        """The engine's and SQL's view after the sale (admin reconciliation)."""
        r = await self._http.post(
            f"/commerce/v1/admin/campaigns/{self.campaign_id}/reconcile", headers=self._admin
        )
        r.raise_for_status()
        self.reconciliation = r.json()


def _code(r: httpx.Response) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return str(r.json().get("code", ""))
    return ""


def _retry_after_s(r: httpx.Response) -> float:
    try:
        return min(MAX_RETRY_WAIT_S, max(0.05, float(r.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0
