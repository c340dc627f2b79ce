"""Payments on the platform's manual clock: the maintenance job (authorisation timeouts) runs when
``platform.advance`` passes its interval, never on wall time (issue 8 determinism)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from tests.unit.payments.conftest import outbox_events

from hexcity.bootstrap import build_payments
from hexcity.infra.bus.memory import InProcessBus
from hexcity.infra.sql import make_engine
from hexcity.payments import PaymentService, TopUp, driver_account, wallet_account
from hexcity.platform import Platform, PlatformSettings, default_idempotency

START = 1_767_600_000.0
W1 = "wallet:r1:EUR"


def manual_platform(db: Path) -> Platform:
    settings = PlatformSettings(clock="manual", clock_start_s=START, bus_url="memory://")
    return Platform(
        bus=InProcessBus(),
        idempotency=default_idempotency(settings),
        settings=settings,
        registry=CollectorRegistry(),
        engine=make_engine(f"sqlite:///{db}"),
    )


def fund(service: PaymentService) -> None:
    service.open_accounts([wallet_account("r1", "EUR"), driver_account("d1", "EUR")])
    assert service.execute(TopUp(W1, 2000, "EUR"), idempotency_key="fund", scope="r1").status_code == 201


def test_an_authorisation_expires_when_virtual_time_passes_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HEXCITY_PAYMENTS_MAINTENANCE_INTERVAL_S", raising=False)
    platform = manual_platform(tmp_path / "hexcity.db")
    module, service = build_payments(platform)
    lifespan = module.lifespan
    assert lifespan is not None

    async def main() -> None:
        async with platform, lifespan():
            fund(service)
            await platform.advance(5)
            auth = service.rides.authorize_fare("trip-1", "r1", "d1", 1500, "EUR", timeout_s=900)
            assert auth.status == "authorized" and auth.created_at_s == START + 5  # the virtual clock
            await asyncio.sleep(0.1)  # wall time does nothing: the worker runs no loop of its own
            await platform.advance(895)  # START + 900: timeout at START + 905 not reached
            assert service.payment("ride:trip-1").status == "authorized"
            assert service.account(W1).available_minor == 500
            report = await platform.advance(30)  # the 30 s maintenance job runs at START + 930
            assert report["now"] == START + 930
            expired = service.payment("ride:trip-1")
            assert (expired.status, expired.updated_at_s) == ("expired", START + 930)
            assert service.account(W1).available_minor == 2000
            assert [e["type"] for e in outbox_events(service)][-1] == "ride.expired"

    asyncio.run(main())


def test_the_wall_clock_platform_keeps_the_workers_own_loop(tmp_path: Path) -> None:
    settings = PlatformSettings(clock="system", bus_url="memory://")
    platform = Platform(
        bus=InProcessBus(),
        idempotency=default_idempotency(settings),
        settings=settings,
        registry=CollectorRegistry(),
        engine=make_engine(f"sqlite:///{tmp_path / 'hexcity.db'}"),
    )
    _, service = build_payments(platform)
    assert not platform.virtual and service.clock() > START  # time.time, not a virtual start
    assert platform._jobs == []  # nothing registered with the platform: the worker loops itself
