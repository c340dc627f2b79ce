"""Allocation on PostgreSQL: real threads racing for scarce stock, holds all-or-nothing, outbox rows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from tests.conftest import require_service
from tests.unit.fulfillment.test_allocation_service import CUSTOMER, make_service

from hexcity.fulfillment.adapters.sql_store import metadata as fulfillment_metadata
from hexcity.fulfillment.domain.batch import BatchParams
from hexcity.fulfillment.domain.network import Order
from hexcity.fulfillment.service import AllocationService
from hexcity.infra.sql import make_engine, outbox

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
pytestmark = pytest.mark.integration


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AllocationService]:
    engine = make_engine(PG_URL)
    try:
        with engine.connect() as c:
            c.execute(text("select 1"))
    except Exception as exc:
        require_service("PostgreSQL", False, f"{PG_URL}: {exc}")
    fulfillment_metadata.drop_all(engine, checkfirst=True)
    engine.dispose()
    svc = make_service(tmp_path, url=PG_URL)
    try:
        yield svc
    finally:
        svc.store.engine.dispose()  # type: ignore[attr-defined]


def test_racing_orders_never_over_reserve_on_postgres(service: AllocationService) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def place(i: int) -> None:
        stored = service.place_order(Order.create(f"pg{i}", [("tea", 1)], CUSTOMER, "standard"))
        with lock:
            results.append(stored.status)

    threads = [threading.Thread(target=place, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("allocated") == 7  # 2 at north + 5 at south
    assert results.count("unallocated") == 5
    for position in service.store.stock().values():
        assert 0 <= position["reserved"] <= position["on_hand"]
        assert position["on_hand"] == position["atp"] + position["reserved"]
    engine = service.store.engine  # type: ignore[attr-defined]
    with engine.connect() as c:
        allocated_events = c.execute(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.key.like("pg%") & (outbox.c.topic == "fulfillment.orders"))
        ).scalar_one()
    assert allocated_events >= 12  # one event per order (allocated or unallocated), same transaction


def test_reoptimise_on_postgres_keeps_stock_consistent(service: AllocationService) -> None:
    for i in range(4):
        service.place_order(Order.create(f"r{i}", [("tea", 1)], CUSTOMER, "standard", 100 + i))
    before = service.store.stock()
    report = service.reoptimise(BatchParams(time_limit_s=5, seed=0))
    assert report["status"] in {"OPTIMAL", "KEPT"}
    after = service.store.stock()
    total_reserved = sum(v["reserved"] for v in after.values())
    assert total_reserved == sum(v["reserved"] for v in before.values()) == 4
    assert report["after"]["total_minor"] <= report["before"]["total_minor"]
