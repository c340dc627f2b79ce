"""The assistant's support actions on real stores (SQLite) and a real road graph (Andorra, car):
quotes are dispatch's own (the card's numbers ARE the stored quote a trip is then priced by),
refunds go through the payments ledger for the customer's own order only, idempotently."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import anyio
import h3
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text

from hexcity.assistant.adapters.support_actions import PlatformSupportActions
from hexcity.assistant.errors import RecordNotFound
from hexcity.assistant.ports import RefundResult
from hexcity.dispatch import DispatchService, InMemoryDriverIndex, RoadRouter, SqlTripStore, SurgeModel
from hexcity.dispatch.domain.trips import Trip
from hexcity.dispatch.service import DEFAULT_TARIFFS
from hexcity.fulfillment import SqlAllocationStore
from hexcity.infra.sql import make_engine
from hexcity.kernel import HexcityError, LatLng
from hexcity.payments import (
    IdempotencyKeyReuse,
    Payment,
    PaymentService,
    SqlLedger,
    TopUp,
    merchant_account,
    wallet_account,
)
from hexcity.routing import Limits, RoutingEngine, RoutingService

PICKUP = (42.5063, 1.5218)  # Andorra la Vella
DROPOFF = (42.5096, 1.5388)  # Escaldes
ORDER_AMOUNT = 2500
ORDER_FEE = 250

pytestmark = pytest.mark.slow  # builds the Andorra car graph (once per session)


@dataclass
class RealPlatform:
    engine: Engine
    routing: RoutingService
    payments: PaymentService
    orders: SqlAllocationStore
    dispatch: DispatchService
    surge: SurgeModel
    actions: PlatformSupportActions


def build_real_platform(db: Path, graph: Path) -> RealPlatform:
    """Payments, fulfillment's order store and dispatch on one SQLite file; routing on ``graph``."""
    engine = make_engine(f"sqlite:///{db}")
    routing = RoutingService(Limits())
    routing.add(RoutingEngine.open(graph))
    payments = PaymentService(SqlLedger(engine))
    payments.create_schema()
    orders = SqlAllocationStore(engine)
    orders.create_schema()
    trips = SqlTripStore(engine)
    trips.create_schema()
    surge = SurgeModel(clock=time.time)
    dispatch = DispatchService(
        trips, InMemoryDriverIndex(), RoadRouter(routing, "car"), surge=surge, registry=CollectorRegistry()
    )
    actions = PlatformSupportActions(
        dispatch=dispatch, payments=payments, orders_of=orders.orders_of_customer
    )
    return RealPlatform(engine, routing, payments, orders, dispatch, surge, actions)


def paid_order(platform: RealPlatform, customer: str, order_id: str, amount: int = ORDER_AMOUNT) -> None:
    """``order_id`` is ``customer``'s, paid from their wallet to a shop (authorised and captured)."""
    platform.orders.link_customer(order_id, customer)
    wallet = wallet_account(customer, "EUR")
    platform.payments.open_accounts([wallet, merchant_account("shop-1", "EUR")])
    platform.payments.execute(
        TopUp(wallet.id, amount, "EUR", "card"), idempotency_key=f"top-{order_id}", scope="test"
    )
    platform.payments.orders.authorize(order_id, customer, "shop-1", amount, "EUR", 600)
    platform.payments.orders.capture(order_id, amount, ORDER_FEE)


@pytest.fixture
def platform(tmp_path: Path, graph_dir: Callable[[str, str], Path]) -> Iterator[RealPlatform]:
    built = build_real_platform(tmp_path / "platform.db", graph_dir("andorra", "car"))
    paid_order(built, "alice", "ORD-1042")
    paid_order(built, "bob", "ORD-2000")
    yield built
    built.engine.dispose()


def _refund_rows(platform: RealPlatform, payment_id: str) -> list[Payment]:
    """Every payment record whose parent is ``payment_id`` (its refunds), read from the table."""
    query = text("SELECT id FROM payments_payments WHERE parent_id = :p")
    with platform.engine.connect() as c:
        ids = [str(r[0]) for r in c.execute(query, {"p": payment_id})]
    return [platform.payments.payment(i) for i in ids]


def test_quote_is_dispatch_s_own_priced_on_the_road_route_with_surge(platform: RealPlatform) -> None:
    cell = str(h3.latlng_to_cell(PICKUP[0], PICKUP[1], 7))
    for _ in range(40):  # verified demand and no supply: the pickup cell surges
        platform.surge.observe_request(cell)
    for _ in range(10):
        platform.surge.recompute()
    quote = anyio.run(platform.actions.quote_ride, "alice", PICKUP, DROPOFF, "comfort")

    route = platform.routing.get("car").route([LatLng(*PICKUP), LatLng(*DROPOFF)], geometry=False)
    assert quote["distance_m"] == round(float(route.distance_m), 1)
    tariff = DEFAULT_TARIFFS["comfort"]
    metered = (
        Decimal(tariff.base_cents)
        + Decimal(tariff.per_km_cents) * Decimal(repr(float(route.distance_m))) / 1000
        + Decimal(tariff.per_min_cents) * Decimal(repr(float(route.duration_s))) / 60
    )
    base = max(Decimal(tariff.minimum_cents), metered)
    multiplier = Decimal(str(quote["surge_multiplier"]))
    assert multiplier > 1  # the surge is really in the price
    assert quote["base_fare_cents"] == int(base.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert quote["total_cents"] == int((base * multiplier).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert quote["platform_fee_cents"] == int(quote["total_cents"]) * 1500 // 10_000
    assert quote["valid_for_s"] == 60 and quote["product"] == "comfort" and quote["currency"] == "EUR"

    async def request() -> Trip:
        return await platform.dispatch.request("alice", str(quote["quote_id"]))

    trip = anyio.run(request)  # the stored quote prices the trip: same numbers
    assert (trip.fare_cents, trip.multiplier) == (quote["total_cents"], f"{multiplier:.2f}")


def test_unknown_product_and_unroutable_points_are_stable_errors(platform: RealPlatform) -> None:
    with pytest.raises(HexcityError) as bad:
        anyio.run(platform.actions.quote_ride, "alice", PICKUP, DROPOFF, "limo")
    assert bad.value.code == "UnknownProduct"
    with pytest.raises(HexcityError) as far:
        anyio.run(platform.actions.quote_ride, "alice", PICKUP, (48.0, 11.0), "standard")
    assert far.value.status in {400, 404, 422}


def test_refund_of_own_order_is_real_and_idempotent(platform: RealPlatform) -> None:
    assert anyio.run(platform.actions.refundable_cents, "alice", "ORD-1042") == ORDER_AMOUNT

    async def refund(key: str | None, amount: int = 1000) -> RefundResult:
        return await platform.actions.request_refund(
            "alice", "ORD-1042", "item damaged", amount_cents=amount, idempotency_key=key
        )

    first = anyio.run(refund, "key-0001")
    again = anyio.run(refund, "key-0001")
    assert first.refund_id == again.refund_id and again.replayed and not first.replayed
    stored = platform.payments.payment(first.refund_id)
    assert (stored.kind, stored.status, stored.amount_minor, stored.parent_id) == (
        "refund",
        "succeeded",
        1000,
        "order:ORD-1042",
    )
    assert len(_refund_rows(platform, "order:ORD-1042")) == 1
    assert platform.payments.payment("order:ORD-1042").refunded_minor == 1000
    with pytest.raises(IdempotencyKeyReuse):  # the same key for another amount is refused
        anyio.run(refund, "key-0001", 500)
    # no key: one per (customer, order, reason); the rest is refunded once
    rest = anyio.run(refund, None, 0)
    rest_again = anyio.run(refund, None, 0)
    assert rest.refund_id == rest_again.refund_id and rest.amount_cents == ORDER_AMOUNT - 1000
    assert platform.payments.payment("order:ORD-1042").status == "refunded"
    assert anyio.run(platform.actions.refundable_cents, "alice", "ORD-1042") == 0
    with pytest.raises(HexcityError) as nothing:
        anyio.run(refund, "key-0002", 0)
    assert (nothing.value.code, nothing.value.status) == ("NothingToRefund", 409)


def test_refund_beyond_what_is_left_is_refused_and_writes_nothing(platform: RealPlatform) -> None:
    async def refund() -> RefundResult:
        return await platform.actions.request_refund(
            "alice", "ORD-1042", "other", amount_cents=ORDER_AMOUNT + 1, idempotency_key="too-much-1"
        )

    with pytest.raises(HexcityError) as error:
        anyio.run(refund)
    assert error.value.code == "RefundExceedsPayment"
    assert _refund_rows(platform, "order:ORD-1042") == []


def test_another_customer_s_order_is_not_found_and_nothing_is_written(platform: RealPlatform) -> None:
    async def steal(order_id: str) -> RefundResult:
        return await platform.actions.request_refund("bob", order_id, "other", idempotency_key="steal-001")

    for order_id in ("ORD-1042", "ORD-404", "../etc"):
        with pytest.raises(RecordNotFound) as error:
            anyio.run(steal, order_id)
        assert (error.value.code, error.value.status) == ("RecordNotFound", 404)
    with pytest.raises(RecordNotFound):
        anyio.run(platform.actions.refundable_cents, "bob", "ORD-1042")
    assert _refund_rows(platform, "order:ORD-1042") == []
    assert platform.payments.payment("order:ORD-1042").refunded_minor == 0
    # an order linked to bob but paid from alice's wallet is still not bob's payment
    platform.orders.link_customer("ORD-3000", "bob")
    paid_order(platform, "alice", "ORD-3000")
    with pytest.raises(RecordNotFound):
        anyio.run(steal, "ORD-3000")
    assert _refund_rows(platform, "order:ORD-3000") == []


def test_missing_modules_make_actions_unavailable() -> None:
    bare = PlatformSupportActions()
    with pytest.raises(HexcityError) as quote:
        anyio.run(bare.quote_ride, "alice", PICKUP, DROPOFF, "standard")
    with pytest.raises(HexcityError) as refund:
        anyio.run(bare.refundable_cents, "alice", "ORD-1")
    assert {quote.value.code, refund.value.code} == {"ActionUnavailable"}
    assert quote.value.status == 503
