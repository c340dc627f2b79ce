"""Plans and deliveries on PostgreSQL: stored, re-planned, and racing deliveries recorded once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from tests.conftest import require_service
from tests.unit.fulfillment.test_allocation_service import CUSTOMER, make_service
from tests.unit.fulfillment.test_delivery import plan, stop_of

from hexcity.fulfillment.adapters.sql_store import metadata as fulfillment_metadata
from hexcity.fulfillment.domain.delivery import Delivery
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


def test_plan_replan_and_racing_deliveries_on_postgres(service: AllocationService) -> None:
    for oid in ("p1", "p2"):
        service.place_order(Order.create(oid, [("tea", 1)], CUSTOMER, "2h", 36_000))
    first = plan(service, "north")
    second = plan(service, "north")
    assert service.store.get_stop(stop_of(first, "p1").id).status == "replanned"
    stored = service.store.get_plan(second[0].id)
    assert stored == second[0]
    service.store.mark_picked("p1")
    target = stop_of(second, "p1")
    before = _delivered_events(service)
    results: list[Delivery] = []
    lock = threading.Lock()

    def deliver() -> None:
        d = service.deliver(target.id, target.eta_s, "north-c1")
        with lock:
            results.append(d)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert sum(1 for d in results if not d.repeated) == 1
    assert {(d.order_status, d.delivered_at_s, d.on_time) for d in results} == {
        ("delivered", target.eta_s, True)
    }
    assert _delivered_events(service) == before + 1  # the outbox outlives the module's tables
    assert [h.status for h in service.store.order_history("p1")][-2:] == ["parcel_delivered", "delivered"]
    assert service.store.get_order("p1").status == "delivered"
    assert service.store.get_plan(second[0].id).status == "active"  # p2 is still on the route


def _delivered_events(service: AllocationService) -> int:
    engine = service.store.engine  # type: ignore[attr-defined]
    with engine.connect() as c:
        return int(
            c.execute(
                select(func.count()).select_from(outbox).where(outbox.c.topic == "fulfillment.delivered")
            ).scalar_one()
        )
