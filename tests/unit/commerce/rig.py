"""A commerce service on the embedded defaults (memory engine, SQLite file, InProcessBus, fake clock)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexcity.commerce import (
    ApprovingGateway,
    Campaign,
    CommerceService,
    CommerceSettings,
    OrderWriter,
    PaymentGateway,
    Sku,
    build_commerce_service,
)
from hexcity.infra.bus import InProcessBus
from hexcity.infra.sql import make_engine

T0 = 1_800_000_000.0


class FakeClock:
    def __init__(self, now_s: float = T0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


@dataclass
class Rig:
    service: CommerceService
    bus: InProcessBus
    writer: OrderWriter
    clock: FakeClock

    async def close(self) -> None:
        await self.writer.stop()
        await self.service.stop()
        await self.bus.close()

    async def drain(self) -> None:
        """Wait until every published order is written (bounded)."""
        for _ in range(400):
            if (
                self.bus.lag("commerce.orders.received", "commerce-order-writer") == 0
                and not self.writer._pending
            ):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("orders were not written within 4 s")


async def make_rig(
    tmp_path: Path,
    *,
    payments: PaymentGateway | None = None,
    batch_size: int = 20,
    **overrides: Any,
) -> Rig:
    values: dict[str, Any] = {
        "persist_batch_size": batch_size,
        "persist_flush_s": 0.02,
        "reconcile_grace_s": 0,
    }
    values.update(overrides)
    settings = CommerceSettings(**values)
    clock = FakeClock()
    bus = InProcessBus(sleep=lambda _: asyncio.sleep(0))
    service = build_commerce_service(
        settings,
        sql_engine=make_engine(f"sqlite:///{tmp_path / 'commerce.db'}"),
        bus=bus,
        payments=payments or ApprovingGateway(),
        clock=clock,
    )
    writer = OrderWriter(service.store, bus, batch_size=batch_size, flush_s=0.02, max_attempts=3)
    await writer.start()
    await service.start(reconcile=False)
    return Rig(service, bus, writer, clock)


async def seed(rig: Rig, *, sale_stock: int = 10, per_user_limit: int = 1, shards: int = 2) -> Campaign:
    s = rig.service
    await s.add_merchant("shop1", "Shop One")
    await s.add_product("p1", "shop1", "Phone")
    await s.add_sku(Sku("sku1", "p1", "shop1", 49_900, "EUR", 1_000))
    return await s.schedule_campaign(
        Campaign("sale1", "sku1", "shop1", T0 - 10, T0 + 3600, 100, "EUR", sale_stock, per_user_limit, shards)
    )
