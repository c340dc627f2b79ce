"""Commerce on the platform's manual clock: sale windows, hold TTLs and rate limits follow virtual
time only, and after ``platform.advance`` every "order received" is in SQL (issue 8 determinism)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from tests.unit.commerce.test_orders import CountingStore, order

from hexcity.api import create_app
from hexcity.bootstrap import build_commerce
from hexcity.commerce import CommerceService, OrderWriter, VirtualClockUnsupported, check_virtual_clock
from hexcity.commerce.orders import WRITER_GROUP, order_event
from hexcity.commerce.settings import CommerceSettings
from hexcity.infra.auth import AuthSettings, Role, mint_demo_token
from hexcity.infra.bus import InProcessBus
from hexcity.infra.sql import make_engine
from hexcity.platform import Platform, PlatformSettings, default_idempotency
from hexcity.routing import Limits, RoutingService

START = 1_767_600_000.0  # the platform's default manual start (2026-01-05T08:00:00Z)
OPENS = START + 10  # the campaign's T
AUTH = AuthSettings(jwt_secret="commerce-clock-test-" + "s" * 40, demo_mode=True)


def token(role: Role, subject: str, tenant: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_demo_token(AUTH, role, subject, tenant)}"}


SHOP, ADMIN = token(Role.MERCHANT, "m1", "shop1"), token(Role.ADMIN, "ops")


def manual_platform(db: Path) -> Platform:
    settings = PlatformSettings(clock="manual", clock_start_s=START, bus_url="memory://")
    return Platform(
        bus=InProcessBus(),
        idempotency=default_idempotency(settings),
        settings=settings,
        registry=CollectorRegistry(),
        engine=make_engine(f"sqlite:///{db}"),
    )


@pytest.fixture
def app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, Platform, CommerceService]]:
    for name in ("REDIS_URL", "WAITING_ROOM_STORE", "WAITING_ROOM_ENABLED"):
        monkeypatch.delenv(f"HEXCITY_COMMERCE_{name}", raising=False)
    # 2 tokens per buyer, refilled at 100/s: a wall-clock bucket would be full again in 20 ms
    monkeypatch.setenv("HEXCITY_COMMERCE_USER_CAPACITY", "2")
    monkeypatch.setenv("HEXCITY_COMMERCE_USER_REFILL_PER_S", "100")
    platform = manual_platform(tmp_path / "hexcity.db")
    module = build_commerce(platform)
    service = _service_of(module)
    with TestClient(create_app(RoutingService(Limits()), AUTH, platform, [module])) as client:
        yield client, platform, service


def _service_of(module: Any) -> CommerceService:
    """The service behind the module's router (its purchase endpoint's closure)."""
    for route in module.routers[0].routes:
        if route.path.endswith("/purchase"):
            for cell in route.endpoint.__closure__ or ():
                if isinstance(cell.cell_contents, CommerceService):
                    return cell.cell_contents
    raise AssertionError("no CommerceService behind the commerce router")


def advance(c: TestClient, seconds: float) -> dict[str, Any]:
    r = c.post("/admin/v1/clock/advance", json={"seconds": seconds}, headers=ADMIN)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def seed(c: TestClient, sale_stock: int = 3) -> None:
    for path, body in (
        ("merchants", {"merchant_id": "shop1", "name": "S"}),
        ("products", {"product_id": "p1", "merchant_id": "shop1", "name": "Phone"}),
        (
            "skus",
            {
                "sku_id": "sku1",
                "product_id": "p1",
                "merchant_id": "shop1",
                "price_minor": 500,
                "currency": "EUR",
                "stock": 50,
            },
        ),
        (
            "campaigns",
            {
                "campaign_id": "sale1",
                "sku_id": "sku1",
                "merchant_id": "shop1",
                "starts_at_s": OPENS,
                "ends_at_s": OPENS + 3600,
                "sale_price_minor": 99,
                "currency": "EUR",
                "sale_stock": sale_stock,
                "per_user_limit": 1,
                "shards": 2,
            },
        ),
    ):
        r = c.post(f"/commerce/v1/{path}", json=body, headers=SHOP)
        assert r.status_code == 201, r.text


def buy(c: TestClient, user: str) -> Any:
    return c.post(
        "/commerce/v1/campaigns/sale1/purchase", json={"quantity": 1}, headers=token(Role.RIDER, user)
    )


def remaining(c: TestClient) -> int:
    r = c.get("/commerce/v1/campaigns/sale1", headers=SHOP)
    assert r.status_code == 200, r.text
    return int(r.json()["remaining"])


def test_the_sale_opens_on_virtual_time_and_orders_are_in_sql_right_after_advance(
    app: tuple[TestClient, Platform, CommerceService],
) -> None:
    c, platform, service = app
    seed(c)
    assert advance(c, 9)["now"] == OPENS - 1
    early = buy(c, "alice")
    assert (early.status_code, early.json()["code"]) == (409, "SaleNotOpen")
    assert advance(c, 1)["now"] == OPENS
    r = buy(c, "alice")
    assert r.status_code == 202, r.text
    order_id = r.json()["order_id"]
    advance(c, 1)
    stored = service.store.get_order(order_id)  # no polling: advance returned once it was written
    assert stored is not None and stored.created_at_s == OPENS and stored.status.value == "received"
    assert platform.bus.lag("commerce.orders.received", WRITER_GROUP) == 0  # type: ignore[attr-defined]


def test_a_900s_hold_gives_its_stock_back_after_901_virtual_seconds(
    app: tuple[TestClient, Platform, CommerceService],
) -> None:
    c, _, service = app
    seed(c, sale_stock=3)
    advance(c, 10)
    r = buy(c, "bob")
    assert r.status_code == 202 and r.json()["expires_in_s"] == 900
    order_id = r.json()["order_id"]
    assert remaining(c) == 2
    advance(c, 899)
    assert remaining(c) == 2  # still held at T + 899
    assert asyncio.run(service.engine.get("sale1", order_id)).state.value == "held"  # type: ignore[union-attr]
    advance(c, 2)
    assert remaining(c) == 3  # released by the expiry job, stock back
    assert asyncio.run(service.engine.get("sale1", order_id)).state.value == "released"  # type: ignore[union-attr]
    advance(c, 60)  # the reconciliation job marks the SQL order
    got = c.get(f"/commerce/v1/orders/{order_id}", headers=token(Role.RIDER, "bob"))
    assert got.status_code == 200 and got.json()["status"] == "released"


def test_rate_limit_buckets_refill_by_the_virtual_clock_only(
    app: tuple[TestClient, Platform, CommerceService],
) -> None:
    c, _, _ = app
    seed(c)
    advance(c, 10)
    assert buy(c, "carol").status_code == 202  # token 1
    assert buy(c, "carol").json()["code"] == "LimitExceeded"  # token 2 (past the rate limit)
    limited = buy(c, "carol")
    assert (limited.status_code, limited.json()["code"]) == (429, "RateLimited")
    time.sleep(0.1)  # 10 tokens' worth of wall time: irrelevant, the clock stood still
    assert buy(c, "carol").status_code == 429
    advance(c, 0.015)  # one and a half tokens at 100/s (epoch floats are not exact to 0.01)
    assert buy(c, "carol").json()["code"] == "LimitExceeded"
    assert buy(c, "carol").status_code == 429


def test_sold_out_flag_expires_on_virtual_time(app: tuple[TestClient, Platform, CommerceService]) -> None:
    c, _, service = app
    seed(c, sale_stock=1)
    advance(c, 10)
    assert buy(c, "dave").status_code == 202
    assert buy(c, "erin").json()["code"] == "SoldOut"
    assert service.flags.is_sold_out("sale1", OPENS)
    time.sleep(0.05)
    assert service.flags.is_sold_out("sale1", service._clock())  # wall time does not age it
    advance(c, service.settings.sold_out_flag_ttl_s)
    assert not service.flags.is_sold_out("sale1", service._clock())


def test_manual_clock_refuses_the_redis_engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEXCITY_COMMERCE_REDIS_URL", "redis://localhost:6379/0")
    with pytest.raises(VirtualClockUnsupported) as caught:
        build_commerce(manual_platform(tmp_path / "x.db"))
    assert (
        caught.value.code == "VirtualClockUnsupported"
        and "HEXCITY_COMMERCE_REDIS_URL" in caught.value.message
    )
    with pytest.raises(VirtualClockUnsupported):
        check_virtual_clock(CommerceSettings(redis_url=None, waiting_room_store="redis"))
    check_virtual_clock(CommerceSettings(redis_url=None))  # the embedded engines are fine


def test_writer_flush_writes_parked_orders_at_once_and_reports_the_count(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)

    async def main() -> None:
        bus = InProcessBus()
        writer = OrderWriter(store, bus, batch_size=50, flush_s=3600)  # the timer never fires here
        await writer.start()
        assert await writer.flush() == 0  # nothing to do
        for i in range(7):
            await bus.publish(order_event(order(i, user="same")))  # one key: handed over one by one
        for i in range(7, 12):
            await bus.publish(order_event(order(i)))
        assert await writer.flush() == 12
        assert bus.lag("commerce.orders.received", WRITER_GROUP) == 0
        assert store.get_order("o00006") is not None and store.get_order("o00011") is not None
        assert await writer.flush() == 0
        await writer.stop()
        await bus.close()

    asyncio.run(main())
    assert sum(store.batch_sizes) == 12 and len(store.batch_sizes) >= 7  # the same key is serialised
