"""The shop plan (seeded orders, SLA mix, stock layout, prices) and the dashboard's figures."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest

from hexcity.api import create_app
from hexcity.fulfillment import (
    AllocationService,
    FulfillmentApi,
    FulfillmentSettings,
    LastMilePlanner,
    PyVrpSolver,
    SqlAllocationStore,
    StraightLineMatrix,
    VrpService,
    build_fulfillment_router,
)
from hexcity.infra.auth import AuthSettings, Role, mint_demo_token
from hexcity.infra.sql import make_engine
from hexcity.kernel import LatLng, haversine_m
from hexcity.platform import ModuleRuntime
from hexcity.routing import Limits, RoutingService
from hexcity.simulator.drivers import SimClock
from hexcity.simulator.kpis import DeliveryOutcome, delivery_kpis
from hexcity.simulator.shop import (
    ShopParams,
    ShopSim,
    deadline_s,
    plan_orders,
    sku_holders,
    sku_price_minor,
)
from hexcity.web.panels import flash_sale_figures, ledger_figures, money

CENTER = LatLng(42.5078, 1.5211)
AUTH = AuthSettings(jwt_secret="shop-sim-test-" + "s" * 40, demo_mode=True)


def test_same_seed_same_orders() -> None:
    params = ShopParams(CENTER, orders_per_hour=600)
    a = plan_orders(params, random.Random(7), 3600)
    b = plan_orders(params, random.Random(7), 3600)
    c = plan_orders(params, random.Random(8), 3600)
    assert a == b
    assert a != c
    assert [o.order_id for o in a[:2]] == ["order-00000", "order-00001"]


def test_orders_respect_the_plan_rules() -> None:
    params = ShopParams(CENTER, radius_m=2000, orders_per_hour=3600, skus=8)
    orders = plan_orders(params, random.Random(1), 3600)
    assert 3000 < len(orders) < 4200  # Poisson, mean 3600
    assert all(0 < o.at_s < 3600 for o in orders)
    assert [o.at_s for o in orders] == sorted(o.at_s for o in orders)
    for o in orders:
        skus = [s for s, _ in o.lines]
        assert 1 <= len(skus) <= 3 and skus == sorted(set(skus))
        assert all(1 <= q <= 2 for _, q in o.lines)
        assert haversine_m(CENTER, o.destination) <= 2000 * 1.001
    shares = {sla: sum(o.sla == sla for o in orders) / len(orders) for sla in ("2h", "same_day", "standard")}
    assert shares["2h"] == pytest.approx(0.5, abs=0.04)
    assert shares["same_day"] == pytest.approx(0.35, abs=0.04)
    assert shares["standard"] == pytest.approx(0.15, abs=0.03)


def test_no_orders_at_zero_rate() -> None:
    assert plan_orders(ShopParams(CENTER, orders_per_hour=0), random.Random(1), 3600) == []


def test_stock_layout_forces_some_splits() -> None:
    assert sku_holders(0, 3) == {0, 1}
    assert sku_holders(1, 3) == {0}
    assert sku_holders(3, 3) == {1}
    assert sku_holders(4, 3) == {1, 2}
    assert sku_holders(5, 3) == {2}
    assert sku_holders(2, 1) == {0}


def test_prices_and_deadlines() -> None:
    assert sku_price_minor("sku-000") == 490
    assert sku_price_minor("sku-007") == 2240
    assert deadline_s("2h", 30_000) == 37_200
    assert deadline_s("same_day", 30_000) == 86_400
    assert deadline_s("standard", 30_000) == 3 * 86_400


@pytest.mark.parametrize(
    ("field", "value"),
    [("radius_m", 50.0), ("orders_per_hour", -1.0), ("warehouses", 0), ("skus", 500),
     ("couriers_per_warehouse", 0), ("plan_every_s", 1.0), ("start_hour", 24.0), ("pick_time_s", -1)],
)  # fmt: skip
def test_params_are_validated(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field.split("_", maxsplit=1)[0]):
        ShopParams(CENTER, **{field: value})  # type: ignore[arg-type]


def test_money_is_exact() -> None:
    assert money(0, "EUR") == "0.00 EUR"
    assert money(-58_689, "EUR") == "-586.89 EUR"
    assert money(5, "EUR") == "0.05 EUR"


def test_ledger_figures_visibly_balance() -> None:
    figures = ledger_figures(
        {"external_settlement": -1600, "wallet": 400, "merchant": 1150, "platform_revenue": 50}, "EUR", 4
    )
    assert figures == {
        "accounts": 4,
        "outside world (cards, banks)": "-16.00 EUR",
        "customer and rider wallets": "4.00 EUR",
        "shops": "11.50 EUR",
        "platform revenue": "0.50 EUR",
        "sum of all balances": "0.00 EUR",
        "balanced": "yes",
    }
    assert ledger_figures({"wallet": 1}, "EUR", 1)["balanced"] == "NO"
    assert ledger_figures({"odd_kind": 1, "wallet": -1}, "EUR", 2)["odd_kind"] == "0.01 EUR"


def test_flash_sale_figures() -> None:
    assert flash_sale_figures(None, None, None, "not running") == {"state": "not running"}
    assert flash_sale_figures(100, 40, 0, "open") == {
        "state": "open", "units": 100, "sold": 40, "left": 60, "oversold": 0,
    }  # fmt: skip


def test_couriers_drive_the_stored_plan_and_deliveries_come_from_the_api(tmp_path: Path) -> None:
    asyncio.run(_drive_one_order(tmp_path))


async def _drive_one_order(tmp_path: Path) -> None:
    road = StraightLineMatrix(speed_m_s=10.0)
    store = SqlAllocationStore(make_engine(f"sqlite:///{tmp_path / 'f.db'}"))
    store.create_schema()
    api = FulfillmentApi(
        VrpService(FulfillmentSettings(), PyVrpSolver(), road),
        AllocationService(store, road),
        LastMilePlanner(road, PyVrpSolver()),
    )
    app = create_app(
        RoutingService(Limits()), AUTH, None, [ModuleRuntime("fulfillment", [build_fulfillment_router(api)])]
    )

    def tokens(role: str, subject: str) -> str:
        return mint_demo_token(AUTH, Role(role), subject)

    params = ShopParams(CENTER, warehouses=1, skus=2, couriers_per_warehouse=1, plan_time_limit_s=0.3)
    sim = ShopSim("http://shop.test", tokens, params, clock=SimClock(1000.0), horizon_s=0)
    admin = {"Authorization": f"Bearer {tokens('admin', 'test')}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as http:
        sim._http, sim._admin, sim._stop_event = http, admin, asyncio.Event()
        site = {"location": {"lat": CENTER.lat + 0.01, "lng": CENTER.lng}}
        assert (
            await http.put("/fulfillment/v1/warehouses/wh-01", json=site, headers=admin)
        ).status_code == 200
        stock = {"on_hand": 5}
        assert (
            await http.put("/fulfillment/v1/warehouses/wh-01/stock/sku-000", json=stock, headers=admin)
        ).is_success
        placed_at_s = int(sim.day_s())
        order = {
            "id": "order-00000",
            "lines": [{"sku": "sku-000", "qty": 1}],
            "sla": "2h",
            "destination": {"lat": CENTER.lat, "lng": CENTER.lng},
            "placed_at_s": placed_at_s,
        }
        assert (await http.post("/fulfillment/v1/orders", json=order, headers=admin)).status_code == 201
        sim.packages["order-00000"] = ("wh-01",)
        sim.outcomes["order-00000"] = DeliveryOutcome("order-00000", 1, deadline_s("2h", placed_at_s))
        await sim.plan_round()
        assert (sim.stats.plan_rounds, sim.stats.orders_picked, sim.stats.errors) == (1, 1, [])
        assert delivery_kpis(sim.delivery_outcomes(), 1e9)["orders_delivered"] == 0  # out, not delivered
        assert len(sim._deliveries) == 1
        await asyncio.wait_for(asyncio.gather(*sim._deliveries), 30)
        assert (sim.stats.deliveries_posted, sim.stats.orders_delivered, sim.stats.orders_on_time) == (
            1,
            1,
            1,
        )
        assert sim.stats.errors == []
        explained = (await http.get("/fulfillment/v1/orders/order-00000", headers=admin)).json()
    assert explained["status"] == "delivered"
    (shipment,) = explained["shipments"]
    assert shipment["stop"]["courier_id"] == "wh-01-courier-1"
    assert shipment["stop"]["delivered_at_s"] == shipment["stop"]["eta_s"]
    (outcome,) = sim.delivery_outcomes()
    assert outcome.etas_s == (float(shipment["stop"]["eta_s"]),)
    kpis = delivery_kpis(sim.delivery_outcomes(), shipment["stop"]["eta_s"])
    assert (kpis["orders_delivered"], kpis["orders_on_time_rate"]) == (1, 1.0)
