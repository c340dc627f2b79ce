"""Commerce use cases: catalog admin, the flash-sale purchase path, the checkout saga, reconciliation.

Purchase path, cheapest filter first (commerce.md §2): validate → campaign open (cached, no SQL) →
local sold-out flag (before any network call) → token buckets per user, per IP and global →
waiting-room admission (if enabled) → purchase gate (``k × remaining`` in flight) → ONE reservation
script → "order received" event on the bus → answer. Orders reach SQL asynchronously
(:mod:`hexcity.commerce.orders`).

Saga: received → paid (authorised) → confirmed (hold confirmed, payment captured), or released
(payment declined, hold expired). The reconciler releases expired holds, re-publishes holds whose
"order received" event was lost, marks SQL orders of released holds, flags orphans, and checks
``initial = remaining + held + confirmed`` against the SQL totals.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from hexcity.commerce.adapters.store_sql import SqlCommerceStore
from hexcity.commerce.adapters.waiting_room import MemoryWaitingRoom
from hexcity.commerce.domain.admission import PurchaseGate, SoldOutFlags, Ticket, WaitingRoom
from hexcity.commerce.domain.catalog import (
    Campaign,
    Merchant,
    Order,
    OrderStatus,
    Product,
    Sku,
    validate_campaign,
    validate_name,
    validate_sku,
)
from hexcity.commerce.domain.reservation import (
    ConfirmStatus,
    HoldState,
    ReserveStatus,
    StockSnapshot,
    validate_id,
    validate_quantity,
)
from hexcity.commerce.errors import (
    AdmissionRequired,
    CommerceError,
    LimitExceeded,
    PaymentDeclined,
    RateLimited,
    ReservationExpired,
    ReservationNotFound,
    SaleNotOpen,
    SoldOut,
    SystemBusy,
)
from hexcity.commerce.orders import order_event
from hexcity.commerce.ports import (
    PaymentGateway,
    PaymentStatus,
    RateLimiter,
    ReservationEngine,
    WaitingRoomPort,
)
from hexcity.commerce.settings import CommerceSettings
from hexcity.infra.bus import Delivery, EventBus, Subscription
from hexcity.infra.logging import get_logger
from hexcity.kernel.events import Event

__all__ = ["STOCK_RETURNED_TOPIC", "CommerceService", "PurchaseReceipt", "ReconcileReport"]

STOCK_RETURNED_TOPIC = "commerce.stock.returned"
MAX_CACHED_CAMPAIGNS = 10_000

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PurchaseReceipt:
    """The immediate answer: the reservation is held, the order is being written."""

    order_id: str
    campaign_id: str
    status: str
    quantity: int
    amount_minor: int
    currency: str
    expires_in_s: float
    replayed: bool


@dataclass(slots=True)
class ReconcileReport:
    campaign_id: str
    expired_released: int = 0
    sql_marked_released: int = 0
    republished: int = 0
    orphan_orders: list[str] = field(default_factory=list)
    snapshot: StockSnapshot | None = None
    sql_units: dict[str, int] = field(default_factory=dict)
    balanced: bool = False
    differences: list[str] = field(default_factory=list)


class CommerceService:
    """One per process; built in bootstrap. Time comes from ``clock`` (seconds since the epoch)."""

    def __init__(
        self,
        *,
        store: SqlCommerceStore,
        engine: ReservationEngine,
        bus: EventBus,
        payments: PaymentGateway,
        limiter: RateLimiter,
        waiting_room: WaitingRoom | WaitingRoomPort,
        settings: CommerceSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.engine = engine
        self.bus = bus
        self.payments = payments
        self.limiter = limiter
        self.waiting_room: WaitingRoomPort = (
            MemoryWaitingRoom(waiting_room) if isinstance(waiting_room, WaitingRoom) else waiting_room
        )
        self.settings = settings
        self._clock = clock
        self.flags = SoldOutFlags(ttl_s=settings.sold_out_flag_ttl_s)
        self.gate = PurchaseGate(multiple=settings.gate_multiple)
        self._campaigns: dict[str, Campaign] = {}
        self._instance = uuid.uuid4().hex[:12]
        self._subscription: Subscription | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self.engine_calls = 0  # reservation calls that reached the engine (the flag's savings)

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self, *, reconcile: bool = True) -> None:
        """Subscribe to stock-returned invalidations; start the periodic reconciler."""
        group = f"commerce-flags-{self._instance}"
        self._subscription = await self.bus.subscribe(STOCK_RETURNED_TOPIC, group, self._on_stock_returned)
        if reconcile:
            self._reconciler = asyncio.create_task(self._reconcile_forever())

    async def stop(self) -> None:
        if self._reconciler is not None:
            self._reconciler.cancel()
            await asyncio.gather(self._reconciler, return_exceptions=True)
            self._reconciler = None
        if self._subscription is not None:
            await self._subscription.stop()
            self._subscription = None

    # -- catalog admin ------------------------------------------------------------------------------
    async def add_merchant(self, merchant_id: str, name: str) -> Merchant:
        merchant = Merchant(validate_id("merchant_id", merchant_id), validate_name(name))
        return await asyncio.to_thread(self.store.add_merchant, merchant)

    async def add_product(self, product_id: str, merchant_id: str, name: str) -> Product:
        validate_id("product_id", product_id)
        product = Product(product_id, validate_id("merchant_id", merchant_id), validate_name(name))
        return await asyncio.to_thread(self.store.add_product, product)

    async def add_sku(self, sku: Sku) -> Sku:
        return await asyncio.to_thread(self.store.add_sku, validate_sku(sku))

    async def schedule_campaign(self, campaign: Campaign) -> Campaign:
        """Store the campaign (its sale stock leaves the SKU's normal stock) and pre-heat it."""
        validate_campaign(campaign)
        sku = await asyncio.to_thread(self.store.get_sku, campaign.sku_id)
        if sku.currency != campaign.currency:
            raise CommerceError(
                f"campaign currency must be the SKU's ({sku.currency})", code="InvalidCommerceInput"
            )
        stored = await asyncio.to_thread(self.store.add_campaign, campaign)
        await self.preheat(stored.campaign_id)
        return stored

    async def preheat(self, campaign_id: str) -> StockSnapshot:
        """Load the sale stock into the engine and verify it; the sale opens only after this."""
        campaign = await self.campaign(campaign_id)
        if await self.engine.snapshot(campaign_id) is None:
            units = await asyncio.to_thread(self.store.units_by_status, campaign_id)
            sold = sum(n for status, n in units.items() if status is not OrderStatus.RELEASED)
            if sold:  # the stock store lost a running sale: reloading it in full would oversell
                raise SaleNotOpen(f"campaign {campaign_id} has {sold} units in orders but no stock loaded")
        await self.engine.preheat(
            campaign_id, campaign.sale_stock, shards=campaign.shards, per_user_limit=campaign.per_user_limit
        )
        snap = await self.engine.snapshot(campaign_id)
        if snap is None or snap.initial != campaign.sale_stock or not snap.balanced:
            raise SaleNotOpen(f"warm-up of campaign {campaign_id} could not be verified")
        self.gate.set_remaining(campaign_id, snap.remaining)
        return snap

    async def campaign(self, campaign_id: str) -> Campaign:
        """The campaign, from the in-process cache (SQL once per campaign and process)."""
        found = self._campaigns.get(campaign_id)
        if found is None:
            found = await asyncio.to_thread(self.store.get_campaign, validate_id("campaign_id", campaign_id))
            if len(self._campaigns) >= MAX_CACHED_CAMPAIGNS:
                self._campaigns.pop(next(iter(self._campaigns)))
            self._campaigns[campaign_id] = found
        return found

    # -- waiting room -------------------------------------------------------------------------------
    async def join_queue(self, campaign_id: str, user_id: str, token: str | None = None) -> Ticket:
        """A place in the campaign's waiting room (the same one on reconnect, also via ``token``)."""
        campaign = await self.campaign(campaign_id)
        validate_id("user_id", user_id)
        now_s = self._clock()
        campaign.check_open(now_s)
        remaining = await self._remaining(campaign_id)
        if token is not None:
            return await self.waiting_room.rejoin(token, campaign_id, user_id, now_s, remaining)
        return await self.waiting_room.join(campaign_id, user_id, now_s, remaining)

    # -- purchase -----------------------------------------------------------------------------------
    async def purchase(
        self,
        campaign_id: str,
        user_id: str,
        quantity: int,
        *,
        idempotency_key: str | None = None,
        client_ip: str = "unknown",
        admission_token: str | None = None,
    ) -> PurchaseReceipt:
        """Reserve and answer at once; raises SoldOut/LimitExceeded/RateLimited/SaleNotOpen/..."""
        validate_id("user_id", user_id)
        validate_quantity(quantity)
        if idempotency_key is not None:
            validate_id("idempotency_key", idempotency_key)
        campaign = await self.campaign(campaign_id)
        now_s = self._clock()
        campaign.check_open(now_s)
        if self.flags.is_sold_out(campaign_id, now_s):  # before any network call
            raise SoldOut(f"campaign {campaign_id} is sold out")
        await self._rate_limit(user_id, client_ip)
        if self.settings.waiting_room_enabled:
            if admission_token is None:
                raise AdmissionRequired("this sale has a waiting room: join the queue first")
            remaining = await self._remaining(campaign_id)
            await self.waiting_room.check_admitted(admission_token, campaign_id, user_id, now_s, remaining)
        if not self.gate.try_enter(campaign_id):
            if self.gate.remaining(campaign_id) == 0:
                raise SoldOut(f"campaign {campaign_id} is sold out")
            raise RateLimited("too many buyers in checkout for the stock left; retry", retry_after_s=1.0)
        try:
            return await self._reserve(campaign, user_id, quantity, idempotency_key, now_s)
        finally:
            self.gate.leave(campaign_id)
            if self.settings.waiting_room_enabled:
                try:
                    await self.waiting_room.finished(campaign_id)
                except SystemBusy:  # the answer stands; one slot of the k × remaining cap stays taken
                    log.warning("commerce.waiting_room_finished_lost", campaign_id=campaign_id)

    async def _reserve(
        self, campaign: Campaign, user_id: str, quantity: int, idempotency_key: str | None, now_s: float
    ) -> PurchaseReceipt:
        order_id = uuid.uuid4().hex
        self.engine_calls += 1
        result = await self.engine.reserve(
            campaign.campaign_id,
            user_id,
            quantity,
            reservation_id=order_id,
            idempotency_key=idempotency_key,
            ttl_s=self.settings.hold_ttl_s,
        )
        self.gate.set_remaining(campaign.campaign_id, result.remaining)
        if result.status is ReserveStatus.SOLD_OUT:
            self.flags.mark(campaign.campaign_id, self._clock())
            raise SoldOut(f"campaign {campaign.campaign_id} is sold out")
        if result.status is ReserveStatus.INSUFFICIENT:
            raise SoldOut(f"only {result.remaining} left, fewer than {quantity}")
        if result.status is ReserveStatus.LIMIT_EXCEEDED:
            raise LimitExceeded(f"at most {campaign.per_user_limit} per buyer in this sale")
        if result.status is ReserveStatus.NOT_STOCKED:
            raise SaleNotOpen(f"campaign {campaign.campaign_id} is not pre-heated yet")
        reservation_id = result.reservation_id or order_id
        if result.replayed:
            hold = await self.engine.get(campaign.campaign_id, reservation_id)
            if hold is None or hold.state is HoldState.RELEASED:
                raise ReservationExpired("this purchase was released; retry with a new idempotency key")
        amount_minor = quantity * campaign.sale_price_minor
        order = Order(
            reservation_id,
            campaign.campaign_id,
            campaign.sku_id,
            campaign.merchant_id,
            user_id,
            quantity,
            campaign.sale_price_minor,
            amount_minor,
            campaign.currency,
            OrderStatus.RECEIVED,
            now_s,
        )
        if not result.replayed:
            try:
                await self.bus.publish(order_event(order))
            except Exception as exc:
                await self.engine.release(campaign.campaign_id, reservation_id)
                raise SystemBusy("order queue unavailable; nothing was reserved") from exc
        return PurchaseReceipt(
            reservation_id,
            campaign.campaign_id,
            "received",
            quantity,
            amount_minor,
            campaign.currency,
            self.settings.hold_ttl_s,
            result.replayed,
        )

    async def _rate_limit(self, user_id: str, client_ip: str) -> None:
        s = self.settings
        buckets = (
            (f"user:{user_id}", s.user_capacity, s.user_refill_per_s),
            (f"ip:{client_ip}", s.ip_capacity, s.ip_refill_per_s),
            ("global", s.global_capacity, s.global_refill_per_s),
        )
        for key, capacity, refill_per_s in buckets:
            try:
                decision = await self.limiter.acquire(key, capacity=capacity, refill_per_s=refill_per_s)
            except SystemBusy:
                if s.rate_limit_fail_open:
                    return
                raise
            if not decision.allowed:
                raise RateLimited(f"rate limit {key.split(':')[0]} exceeded", decision.retry_after_s)

    async def _remaining(self, campaign_id: str) -> int:
        snap = await self.engine.snapshot(campaign_id)
        if snap is None:
            raise SaleNotOpen(f"campaign {campaign_id} is not pre-heated yet")
        return snap.remaining

    # -- checkout saga ------------------------------------------------------------------------------
    async def order(self, order_id: str) -> Order:
        found = await asyncio.to_thread(self.store.get_order, validate_id("order_id", order_id))
        if found is None:
            raise ReservationNotFound(f"no order {order_id} (yet: orders are written within a second)")
        return found

    async def pay(self, order_id: str) -> Order:
        """Authorise, confirm the hold, capture: received → paid → confirmed, or released."""
        order = await self.order(order_id)
        if order.status in (OrderStatus.CONFIRMED, OrderStatus.RELEASED):
            if order.status is OrderStatus.RELEASED:
                raise ReservationExpired(f"order {order_id} was released")
            return order
        hold = await self.engine.get(order.campaign_id, order_id)
        if hold is None or hold.state is HoldState.RELEASED:
            await self._mark_released(order)
            raise ReservationExpired(f"the hold of order {order_id} expired; its stock went back")
        key = f"{order_id}:1"
        try:
            auth = await self.payments.authorize(
                order_id, order.amount_minor, order.currency, idempotency_key=key + ":authorize"
            )
        except CommerceError:
            raise
        except Exception as exc:
            raise SystemBusy("payment provider unavailable; the hold stays until it expires") from exc
        if auth.status is not PaymentStatus.APPROVED:
            await self.engine.release(order.campaign_id, order_id)
            await self._mark_released(order)
            raise PaymentDeclined(f"payment declined: {auth.reason or 'no reason given'}")
        await asyncio.to_thread(
            self.store.advance_order, order_id, OrderStatus.PAID, payment_id=auth.payment_id
        )
        confirmed = await self.engine.confirm(order.campaign_id, order_id)
        if confirmed not in (ConfirmStatus.CONFIRMED, ConfirmStatus.ALREADY_CONFIRMED):
            await self.payments.void(auth.payment_id, idempotency_key=key + ":void")
            await self.engine.release(order.campaign_id, order_id)  # past its TTL: return it now
            await self._mark_released(order)
            raise ReservationExpired(f"the hold of order {order_id} expired before payment completed")
        await self.payments.capture(auth.payment_id, idempotency_key=key + ":capture")
        await asyncio.to_thread(self.store.advance_order, order_id, OrderStatus.CONFIRMED)
        return await self.order(order_id)

    async def cancel(self, order_id: str) -> Order:
        """The buyer gives the hold back before paying."""
        order = await self.order(order_id)
        if order.status is OrderStatus.RECEIVED and await self.engine.release(order.campaign_id, order_id):
            await self._mark_released(order)
        return await self.order(order_id)

    async def _mark_released(self, order: Order) -> None:
        await asyncio.to_thread(self.store.advance_order, order.order_id, OrderStatus.RELEASED)
        await self._stock_returned(order.campaign_id)

    async def _stock_returned(self, campaign_id: str) -> None:
        self.flags.clear(campaign_id)
        try:
            await self.bus.publish(Event(STOCK_RETURNED_TOPIC, campaign_id, {"campaign_id": campaign_id}))
        except Exception:  # other instances fall back to the flag TTL
            log.warning("commerce.stock_returned_publish_failed", campaign_id=campaign_id)

    async def _on_stock_returned(self, delivery: Delivery) -> None:
        self.flags.clear(str(delivery.event.payload.get("campaign_id", "")))

    # -- reconciliation -----------------------------------------------------------------------------
    async def reconcile(self, campaign_id: str) -> ReconcileReport:
        """Release expired holds, repair SQL, re-publish lost orders, and check the balance."""
        report = ReconcileReport(campaign_id)
        limit = self.settings.reconcile_batch
        while released := await self.engine.expire_due(campaign_id, limit=limit):
            report.expired_released += len(released)
            if len(released) < limit:
                break
        if report.expired_released:
            await self._stock_returned(campaign_id)
        await self._repair_sql(campaign_id, report)
        await self._republish_lost(campaign_id, report)
        report.snapshot = await self.engine.snapshot(campaign_id)
        units = await asyncio.to_thread(self.store.units_by_status, campaign_id)
        report.sql_units = {s.value: n for s, n in units.items()}
        snap = report.snapshot
        if snap is not None:
            if not snap.balanced:
                report.differences.append("engine counters do not add up to the initial stock")
            if units[OrderStatus.CONFIRMED] != snap.confirmed:
                report.differences.append(
                    f"confirmed: engine {snap.confirmed} units, SQL {units[OrderStatus.CONFIRMED]}"
                )
            if units[OrderStatus.RECEIVED] + units[OrderStatus.PAID] > snap.held:
                report.differences.append("SQL holds more open orders than the engine holds units")
        report.balanced = snap is not None and not report.differences and not report.orphan_orders
        if not report.balanced:
            log.warning(
                "commerce.reconcile_mismatch", campaign_id=campaign_id, differences=report.differences
            )
        return report

    async def _repair_sql(self, campaign_id: str, report: ReconcileReport) -> None:
        after = ""
        open_states = (OrderStatus.RECEIVED, OrderStatus.PAID)
        while True:
            page = await asyncio.to_thread(
                functools.partial(
                    self.store.list_orders,
                    campaign_id=campaign_id,
                    statuses=open_states,
                    limit=self.settings.reconcile_batch,
                    after_order_id=after,
                )
            )
            for order in page:
                hold = await self.engine.get(campaign_id, order.order_id)
                if hold is None:
                    report.orphan_orders.append(order.order_id)
                elif hold.state is HoldState.RELEASED:
                    await asyncio.to_thread(self.store.advance_order, order.order_id, OrderStatus.RELEASED)
                    report.sql_marked_released += 1
            if len(page) < self.settings.reconcile_batch:
                return
            after = page[-1].order_id

    async def _republish_lost(self, campaign_id: str, report: ReconcileReport) -> None:
        campaign = await self.campaign(campaign_id)
        cutoff_ms = (self._clock() - self.settings.reconcile_grace_s) * 1000
        for hold in await self.engine.held(campaign_id, limit=self.settings.reconcile_batch):
            if hold.created_at_ms > cutoff_ms:
                continue
            if await asyncio.to_thread(self.store.get_order, hold.reservation_id) is not None:
                continue
            order = Order(
                hold.reservation_id,
                campaign_id,
                campaign.sku_id,
                campaign.merchant_id,
                hold.user_id,
                hold.quantity,
                campaign.sale_price_minor,
                hold.quantity * campaign.sale_price_minor,
                campaign.currency,
                OrderStatus.RECEIVED,
                hold.created_at_ms / 1000,
            )
            await self.bus.publish(order_event(order))
            report.republished += 1

    async def reconcile_all(self) -> int:
        """Reconcile every campaign this process knows; returns how many were checked.

        One pass of the periodic reconciler (``platform.every`` on the virtual clock); a failing
        campaign is logged and skipped so the others are still checked.
        """
        checked = 0
        for campaign_id in list(self._campaigns):
            try:
                await self.reconcile(campaign_id)
                checked += 1
            except Exception as exc:  # the loop must survive Redis/SQL hiccups
                log.warning("commerce.reconcile_failed", campaign_id=campaign_id, error=str(exc)[:200])
        return checked

    async def expire_holds(self) -> int:
        """Release every hold past its TTL in the campaigns this process knows (stock goes back,
        sold-out flags are cleared); returns how many holds were released. SQL orders of the
        released holds are marked by the next reconciliation."""
        released_total = 0
        limit = self.settings.reconcile_batch
        for campaign_id in list(self._campaigns):
            released_here = 0
            while released := await self.engine.expire_due(campaign_id, limit=limit):
                released_here += len(released)
                if len(released) < limit:
                    break
            if released_here:
                await self._stock_returned(campaign_id)
            released_total += released_here
        return released_total

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_interval_s)
            await self.reconcile_all()
