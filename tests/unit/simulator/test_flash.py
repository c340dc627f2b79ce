"""The flash-sale crowd against the real commerce API (in-process app on a loopback port)."""

from __future__ import annotations

import asyncio
import random
import socket
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from hexcity.api import create_app
from hexcity.commerce import CommerceSettings, OrderWriter, build_commerce_router, build_commerce_service
from hexcity.infra.auth import AuthSettings, Role, mint_demo_token
from hexcity.infra.bus import InProcessBus
from hexcity.infra.sql import make_engine
from hexcity.platform import ModuleRuntime
from hexcity.routing import Limits, RoutingService
from hexcity.simulator import SimClock
from hexcity.simulator.flash import FlashParams, FlashSale, plan_buyers

AUTH = AuthSettings(jwt_secret="simulator-flash-test-" + "s" * 40, demo_mode=True)


def tokens(role: str, subject: str) -> str:
    return mint_demo_token(AUTH, Role(role), subject)


def test_the_crowd_is_seeded_and_arrives_around_the_opening() -> None:
    params = FlashParams(at_s=100, buyers=200, arrival_spread_s=30)
    a = plan_buyers(params, random.Random("flash:1"))
    assert a == plan_buyers(params, random.Random("flash:1"))
    assert a != plan_buyers(params, random.Random("flash:2"))
    assert len({b.buyer_id for b in a}) == 200
    assert all(97 <= b.at_s <= 130 for b in a)
    assert [b.at_s for b in a] == sorted(b.at_s for b in a)
    assert 5 <= sum(b.at_s < 100 for b in a) <= 40  # a few early birds (10 % of the spread)


@pytest.mark.parametrize(
    "kwargs",
    [{"units": 0}, {"buyers": -1}, {"sale_price_minor": 30_000}, {"duration_s": 0}, {"max_attempts": 0}],
)
def test_params_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FlashParams(**kwargs)


def test_kpis_are_null_before_set_up() -> None:
    sale = FlashSale("http://127.0.0.1:9", tokens, FlashParams())
    assert sale.kpis() == {"flash_sale_units": None, "flash_sale_sold": None, "flash_sale_oversold": None}
    assert sale.state == "not set up"


async def _sale(tmp_path: Path, params: FlashParams) -> FlashSale:
    bus = InProcessBus()
    settings = CommerceSettings(persist_flush_s=0.01, reconcile_grace_s=0)
    service = build_commerce_service(
        settings, sql_engine=make_engine(f"sqlite:///{tmp_path / 'c.db'}"), bus=bus
    )
    writer = OrderWriter(service.store, bus, batch_size=50, flush_s=0.01)

    @asynccontextmanager
    async def lifespan() -> Any:
        await writer.start()
        await service.start(reconcile=False)
        yield
        await writer.stop()
        await service.stop()
        await bus.close()

    app = create_app(
        RoutingService(Limits()),
        AUTH,
        None,
        [ModuleRuntime("commerce", [build_commerce_router(service)], lifespan)],
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    sale = FlashSale(f"http://127.0.0.1:{sock.getsockname()[1]}", tokens, params, seed=3, clock=SimClock(20))
    stop = asyncio.Event()
    running = asyncio.create_task(sale.run(stop))
    try:
        async with asyncio.timeout(30):
            while sale.stats.buyers_done < params.buyers:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
        server.should_exit = True
        await serving
        sock.close()
    return sale


def test_a_stampede_sells_out_exactly(tmp_path: Path) -> None:
    params = FlashParams(at_s=10, duration_s=600, units=20, buyers=60, arrival_spread_s=20)
    sale = asyncio.run(_sale(tmp_path, params))
    s = sale.stats
    assert s.errors == []
    assert sale.kpis() == {"flash_sale_units": 20, "flash_sale_sold": 20, "flash_sale_oversold": 0}
    assert s.confirmed == s.receipts == 20
    assert s.buyers_done == 60
    assert s.sold_out + s.gave_up == 40
    assert sale.state == "sold out"
    assert sale.reconciliation is not None
    snap = sale.reconciliation["snapshot"]
    assert (snap["initial"], snap["remaining"], snap["held"], snap["confirmed"]) == (20, 0, 0, 20)
