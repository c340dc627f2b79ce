"""The commerce router on an app built like production (auth on, demo tokens)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.unit.commerce.rig import T0, FakeClock

from hexcity.api import create_app
from hexcity.commerce import (
    CommerceService,
    CommerceSettings,
    OrderWriter,
    build_commerce_router,
    build_commerce_service,
)
from hexcity.infra.auth import AuthSettings, Role, mint_demo_token
from hexcity.infra.bus import InProcessBus
from hexcity.infra.sql import make_engine
from hexcity.platform import ModuleRuntime
from hexcity.routing import Limits, RoutingService

AUTH = AuthSettings(jwt_secret="commerce-http-test-" + "s" * 40, demo_mode=True)


def token(role: Role, subject: str, tenant: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_demo_token(AUTH, role, subject, tenant)}"}


SHOP = token(Role.MERCHANT, "m1", "shop1")
OTHER_SHOP = token(Role.MERCHANT, "m2", "shop2")
ALICE, BOB = token(Role.RIDER, "alice"), token(Role.RIDER, "bob")
ADMIN = token(Role.ADMIN, "ops")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, CommerceService]]:
    clock = FakeClock()
    bus = InProcessBus()
    settings = CommerceSettings(user_capacity=3, user_refill_per_s=0.5, persist_flush_s=0.01)
    service = build_commerce_service(
        settings, sql_engine=make_engine(f"sqlite:///{tmp_path / 'c.db'}"), bus=bus, clock=clock
    )
    writer = OrderWriter(service.store, bus, batch_size=10, flush_s=0.01)

    @asynccontextmanager
    async def lifespan() -> Any:
        await writer.start()
        await service.start(reconcile=False)
        yield
        await writer.stop()
        await service.stop()
        await bus.close()

    module = ModuleRuntime("commerce", [build_commerce_router(service)], lifespan)
    app = create_app(RoutingService(Limits()), AUTH, None, [module])
    with TestClient(app) as c:
        yield c, service


def seed(c: TestClient, sale_stock: int = 2) -> None:
    assert (
        c.post("/commerce/v1/merchants", json={"merchant_id": "shop1", "name": "S"}, headers=SHOP).status_code
        == 201
    )
    product = {"product_id": "p1", "merchant_id": "shop1", "name": "Phone"}
    assert c.post("/commerce/v1/products", json=product, headers=SHOP).status_code == 201
    sku = {
        "sku_id": "sku1",
        "product_id": "p1",
        "merchant_id": "shop1",
        "price_minor": 500,
        "currency": "EUR",
        "stock": 50,
    }
    assert c.post("/commerce/v1/skus", json=sku, headers=SHOP).status_code == 201
    campaign = {
        "campaign_id": "sale1",
        "sku_id": "sku1",
        "merchant_id": "shop1",
        "starts_at_s": T0 - 1,
        "ends_at_s": T0 + 600,
        "sale_price_minor": 99,
        "currency": "EUR",
        "sale_stock": sale_stock,
        "per_user_limit": 1,
        "shards": 2,
    }
    r = c.post("/commerce/v1/campaigns", json=campaign, headers=SHOP)
    assert r.status_code == 201, r.text


def wait_order(c: TestClient, order_id: str, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(200):
        r = c.get(f"/commerce/v1/orders/{order_id}", headers=headers)
        if r.status_code == 200:
            body: dict[str, Any] = r.json()
            return body
        asyncio.run(asyncio.sleep(0.01))
    raise AssertionError(f"order {order_id} never appeared")


def test_flash_sale_through_the_api(client: tuple[TestClient, CommerceService]) -> None:
    c, service = client
    seed(c)
    r = c.post(
        "/commerce/v1/campaigns/sale1/purchase",
        json={"quantity": 1},
        headers=ALICE | {"Idempotency-Key": "k1"},
    )
    assert r.status_code == 202 and r.json()["status"] == "received" and r.json()["amount_minor"] == 99
    order_id = r.json()["order_id"]
    replay = c.post(
        "/commerce/v1/campaigns/sale1/purchase",
        json={"quantity": 1},
        headers=ALICE | {"Idempotency-Key": "k1"},
    )
    assert replay.json()["order_id"] == order_id and replay.json()["replayed"] is True
    limited = c.post("/commerce/v1/campaigns/sale1/purchase", json={"quantity": 1}, headers=ALICE)
    assert (limited.status_code, limited.json()["code"]) == (409, "LimitExceeded")
    assert wait_order(c, order_id, ALICE)["status"] == "received"
    assert c.get(f"/commerce/v1/orders/{order_id}", headers=BOB).status_code == 403
    assert c.get(f"/commerce/v1/orders/{order_id}", headers=SHOP).status_code == 200
    assert c.get(f"/commerce/v1/orders/{order_id}", headers=OTHER_SHOP).status_code == 403
    assert c.post(f"/commerce/v1/orders/{order_id}/pay", headers=BOB).status_code == 403
    paid = c.post(f"/commerce/v1/orders/{order_id}/pay", headers=ALICE)
    assert paid.status_code == 200 and paid.json()["status"] == "confirmed"
    assert (
        c.post("/commerce/v1/campaigns/sale1/purchase", json={"quantity": 1}, headers=BOB).status_code == 202
    )
    gone = c.post(
        "/commerce/v1/campaigns/sale1/purchase", json={"quantity": 1}, headers=token(Role.RIDER, "carol")
    )
    assert (gone.status_code, gone.json()["code"]) == (409, "SoldOut")
    body = c.get("/commerce/v1/campaigns/sale1", headers=ALICE).json()
    assert body["remaining"] == 0 and body["sale_stock"] == 2
    report = c.post("/commerce/v1/admin/campaigns/sale1/reconcile", headers=ADMIN)
    assert report.status_code == 200 and report.json()["snapshot"]["confirmed"] == 1
    assert c.post("/commerce/v1/admin/campaigns/sale1/reconcile", headers=ALICE).status_code == 403
    heated = c.post("/commerce/v1/admin/campaigns/sale1/preheat", headers=ADMIN).json()
    assert (heated["initial"], heated["remaining"], heated["confirmed"]) == (
        2,
        0,
        1,
    )  # already loaded: unchanged
    assert service.store.get_sku("sku1").stock == 48


def test_permissions_bad_input_and_rate_limit(client: tuple[TestClient, CommerceService]) -> None:
    c, _ = client
    r = c.post("/commerce/v1/merchants", json={"merchant_id": "shop1", "name": "S"}, headers=OTHER_SHOP)
    assert r.status_code == 403
    assert (
        c.post(
            "/commerce/v1/merchants", json={"merchant_id": "shop1", "name": "S"}, headers=ALICE
        ).status_code
        == 403
    )
    seed(c, sale_stock=20)
    bad = c.post("/commerce/v1/campaigns/sale1/purchase", json={"quantity": -1}, headers=ALICE)
    assert (bad.status_code, bad.json()["code"]) == (400, "InvalidCommerceInput")
    assert (
        c.post("/commerce/v1/campaigns/nosuch/purchase", json={"quantity": 1}, headers=ALICE).status_code
        == 404
    )
    codes = [
        c.post("/commerce/v1/campaigns/sale1/purchase", json={"quantity": 5}, headers=BOB) for _ in range(4)
    ]
    assert [r.status_code for r in codes] == [409, 409, 409, 429]  # limit 1/user: 409, then out of tokens
    assert codes[-1].headers["Retry-After"] == "2" and codes[-1].json()["code"] == "RateLimited"
    rate = c.put("/commerce/v1/admin/waiting-room/rate", json={"admissions_per_s": 50}, headers=ADMIN)
    assert rate.json() == {"admissions_per_s": 50.0}
    assert c.get("/commerce/v1/campaigns", headers=ALICE).json()["campaigns"][0]["campaign_id"] == "sale1"
