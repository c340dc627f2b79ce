"""The commerce service on the embedded defaults: catalog, purchase path, saga, reconciliation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from tests.unit.commerce.rig import T0, Rig, make_rig, seed

from hexcity.commerce import (
    Campaign,
    HoldState,
    LimitExceeded,
    OrderStatus,
    PaymentDeclined,
    RateLimited,
    ReservationExpired,
    SaleNotOpen,
    ScriptedGateway,
    Sku,
    SoldOut,
    SystemBusy,
)
from hexcity.commerce.errors import CatalogConflict, CatalogNotFound, InvalidCommerceInput
from hexcity.commerce.ports import RateDecision


def run(tmp_path: Path, scenario: Callable[[Rig], Awaitable[None]], **kwargs: object) -> None:
    async def main() -> None:
        rig = await make_rig(tmp_path, **kwargs)  # type: ignore[arg-type]
        try:
            await scenario(rig)
        finally:
            await rig.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_campaign_takes_its_stock_from_the_sku_and_is_preheated(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig, sale_stock=10)
        s = rig.service
        assert s.store.get_sku("sku1").stock == 990
        snap = await s.engine.snapshot("sale1")
        assert snap is not None and (snap.initial, snap.remaining, snap.shards) == (10, 10, (5, 5))
        too_big = Campaign("sale2", "sku1", "shop1", T0, T0 + 60, 100, "EUR", 991, 1, 1)
        with pytest.raises(InvalidCommerceInput):
            await s.schedule_campaign(too_big)
        assert s.store.get_sku("sku1").stock == 990
        with pytest.raises(CatalogNotFound):
            s.store.get_campaign("sale2")
        other = Campaign("sale1", "sku1", "shop1", T0, T0 + 60, 999, "EUR", 10, 1, 2)
        with pytest.raises(CatalogConflict):
            await s.schedule_campaign(other)
        with pytest.raises(InvalidCommerceInput):
            await s.schedule_campaign(Campaign("sale3", "sku1", "shop1", T0, T0 - 1, 100, "EUR", 1, 1, 1))
        with pytest.raises(InvalidCommerceInput):
            await s.add_sku(Sku("sku2", "p1", "shop1", -5, "EUR", 1))
        with pytest.raises(CatalogNotFound):
            await s.add_product("p2", "nobody", "x")
        assert s.store.get_sku("sku1").stock == 990

    run(tmp_path, scenario)


def test_purchase_is_answered_at_once_persisted_async_then_paid(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig)
        s = rig.service
        receipt = await s.purchase("sale1", "alice", 1, client_ip="10.0.0.1")
        assert (receipt.status, receipt.quantity, receipt.amount_minor, receipt.currency) == (
            "received",
            1,
            100,
            "EUR",
        )
        await rig.drain()
        order = await s.order(receipt.order_id)
        assert (order.status, order.user_id, order.amount_minor) == (OrderStatus.RECEIVED, "alice", 100)
        paid = await s.pay(receipt.order_id)
        assert paid.status is OrderStatus.CONFIRMED and paid.payment_id == f"pay_{receipt.order_id}"
        again = await s.pay(receipt.order_id)
        assert again.status is OrderStatus.CONFIRMED
        snap = await s.engine.snapshot("sale1")
        assert snap is not None and (snap.remaining, snap.held, snap.confirmed) == (9, 0, 1)
        report = await s.reconcile("sale1")
        assert report.balanced and report.sql_units["confirmed"] == 1

    run(tmp_path, scenario)


def test_rejected_inputs_and_closed_sales_change_nothing(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig)
        s = rig.service
        for quantity in (0, -3):
            with pytest.raises(InvalidCommerceInput):
                await s.purchase("sale1", "alice", quantity)
        with pytest.raises(CatalogNotFound):
            await s.purchase("nosale", "alice", 1)
        rig.clock.now_s = T0 - 20
        with pytest.raises(SaleNotOpen):
            await s.purchase("sale1", "alice", 1)
        rig.clock.now_s = T0 + 3600
        with pytest.raises(SaleNotOpen):
            await s.purchase("sale1", "alice", 1)
        snap = await s.engine.snapshot("sale1")
        assert snap is not None and (snap.remaining, snap.held) == (10, 0)

    run(tmp_path, scenario)


def test_idempotency_key_and_per_user_limit(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig, per_user_limit=2)
        s = rig.service
        a = await s.purchase("sale1", "alice", 1, idempotency_key="k1")
        b = await s.purchase("sale1", "alice", 1, idempotency_key="k1")
        assert (b.order_id, b.replayed, a.replayed) == (a.order_id, True, False)
        await s.purchase("sale1", "alice", 1)
        with pytest.raises(LimitExceeded):
            await s.purchase("sale1", "alice", 1)
        await rig.drain()
        orders = s.store.list_orders(campaign_id="sale1")
        assert sorted(o.user_id for o in orders) == ["alice", "alice"]
        snap = await s.engine.snapshot("sale1")
        assert snap is not None and snap.held == 2

    run(tmp_path, scenario, user_capacity=100)


def test_sold_out_flag_spares_engine_calls_and_clears_on_returned_stock(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig, sale_stock=2)
        s = rig.service
        first = await s.purchase("sale1", "u1", 1)
        await s.purchase("sale1", "u2", 1)
        with pytest.raises(SoldOut):
            await s.purchase("sale1", "u3", 1)
        calls = s.engine_calls
        for i in range(50):
            with pytest.raises(SoldOut):
                await s.purchase("sale1", f"v{i}", 1)
        assert s.engine_calls == calls  # the flag answered, no engine call
        rig.clock.now_s += 2.5  # flag TTL 2 s: one engine call, which sets it again
        with pytest.raises(SoldOut):
            await s.purchase("sale1", "w1", 1)
        assert s.engine_calls == calls + 1
        await rig.drain()
        await s.cancel(first.order_id)  # stock returns: the flag is cleared at once
        assert (await s.purchase("sale1", "w2", 1)).status == "received"

    run(tmp_path, scenario)


def test_declined_payment_releases_stock_and_order(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig, sale_stock=3)
        s = rig.service
        receipt = await s.purchase("sale1", "bob", 1)
        await rig.drain()
        with pytest.raises(PaymentDeclined):
            await s.pay(receipt.order_id)
        assert (await s.order(receipt.order_id)).status is OrderStatus.RELEASED
        with pytest.raises(ReservationExpired):
            await s.pay(receipt.order_id)
        snap = await s.engine.snapshot("sale1")
        assert snap is not None and (snap.remaining, snap.held, snap.confirmed) == (3, 0, 0)
        report = await s.reconcile("sale1")
        assert report.balanced and report.sql_units["released"] == 1

    run(tmp_path, scenario, payments=ScriptedGateway(declines=lambda _: True))


def test_payment_provider_down_keeps_the_hold_until_expiry(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig, sale_stock=3)
        s = rig.service
        receipt = await s.purchase("sale1", "bob", 1)
        await rig.drain()
        with pytest.raises(SystemBusy):
            await s.pay(receipt.order_id)
        hold = await s.engine.get("sale1", receipt.order_id)
        assert hold is not None and hold.state is HoldState.HELD

    run(tmp_path, scenario, payments=ScriptedGateway(fails=lambda _: True))


def test_expired_holds_are_released_by_the_reconciler_once(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig, sale_stock=5)
        s = rig.service
        receipts = [await s.purchase("sale1", f"u{i}", 1) for i in range(3)]
        await rig.drain()
        await s.pay(receipts[0].order_id)
        rig.clock.now_s += 901
        with pytest.raises(ReservationExpired):
            await s.pay(receipts[1].order_id)
        report = await s.reconcile("sale1")
        assert (report.expired_released, report.sql_marked_released) == (1, 1)
        again = await s.reconcile("sale1")
        assert (again.expired_released, again.sql_marked_released) == (0, 0)
        snap = again.snapshot
        assert snap is not None and (snap.remaining, snap.held, snap.confirmed) == (4, 0, 1)
        assert again.balanced
        statuses = sorted(o.status.value for o in s.store.list_orders(campaign_id="sale1"))
        assert statuses == ["confirmed", "released", "released"]

    run(tmp_path, scenario)


def test_reservation_without_order_event_is_republished_by_the_reconciler(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig, sale_stock=5)
        s = rig.service
        # the crash window: the hold exists, the "order received" event never left the process
        await s.engine.reserve("sale1", "ghost", 1, reservation_id="lost1", ttl_s=900)
        report = await s.reconcile("sale1")
        assert report.republished == 1
        await rig.drain()
        order = await s.order("lost1")
        assert (order.user_id, order.amount_minor, order.status) == ("ghost", 100, OrderStatus.RECEIVED)
        assert (await s.reconcile("sale1")).republished == 0

    run(tmp_path, scenario)


def test_user_rate_limit_denies_with_retry_after(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig, sale_stock=100, per_user_limit=100)
        s = rig.service
        for _ in range(3):
            await s.purchase("sale1", "eve", 1)
        with pytest.raises(RateLimited) as info:
            await s.purchase("sale1", "eve", 1)
        assert info.value.status == 429 and info.value.retry_after_s == pytest.approx(2.0, abs=0.05)
        snap = await s.engine.snapshot("sale1")
        assert snap is not None and snap.held == 3

    run(tmp_path, scenario, user_capacity=3, user_refill_per_s=0.5)


class DownLimiter:
    async def acquire(self, key: str, *, capacity: int, refill_per_s: float, tokens: int = 1) -> RateDecision:
        raise SystemBusy("limiter down")


@pytest.mark.parametrize("fail_open", [True, False])
def test_limiter_down_fails_open_or_closed_per_setting(tmp_path: Path, fail_open: bool) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig)
        rig.service.limiter = DownLimiter()
        if fail_open:
            assert (await rig.service.purchase("sale1", "u1", 1)).status == "received"
        else:
            with pytest.raises(SystemBusy):
                await rig.service.purchase("sale1", "u1", 1)
            snap = await rig.service.engine.snapshot("sale1")
            assert snap is not None and snap.held == 0

    run(tmp_path, scenario, rate_limit_fail_open=fail_open)


def test_bus_failure_after_reserving_releases_the_hold(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig)
        await rig.bus.close()
        with pytest.raises(SystemBusy):
            await rig.service.purchase("sale1", "u1", 1, idempotency_key="k1")
        with pytest.raises(ReservationExpired):  # the replay must not claim a released hold
            await rig.service.purchase("sale1", "u1", 1, idempotency_key="k1")
        snap = await rig.service.engine.snapshot("sale1")
        assert snap is not None and (snap.remaining, snap.held) == (10, 0)

    run(tmp_path, scenario)


def test_preheat_refuses_to_reload_a_sale_that_already_has_orders(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await seed(rig, sale_stock=5)
        s = rig.service
        await s.purchase("sale1", "u1", 1)
        await rig.drain()
        await s.engine.drop("sale1")  # Redis lost the keys (failover without replication)
        with pytest.raises(SaleNotOpen):
            await s.preheat("sale1")
        assert await s.engine.snapshot("sale1") is None

    run(tmp_path, scenario)
