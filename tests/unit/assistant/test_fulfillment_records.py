from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from hexcity.assistant import AssistantService, HashedNgramEmbedder, Viewer, load_shipped_articles
from hexcity.assistant.adapters.fulfillment_records import FulfillmentRecordReader, records_from_stored_order
from hexcity.fulfillment import Allocation, Order, SqlAllocationStore, StoredOrder
from hexcity.fulfillment.domain.allocation import Option, Package
from hexcity.kernel import LatLng

REASON = (
    "no single warehouse is cheaper: 2 parcels incl. split penalty 500 "
    "is the cheapest way within the standard SLA"
)


def split_order() -> StoredOrder:
    order = Order.create("ORD-77", [("kettle", 1), ("toaster", 1)], LatLng(49.41, 8.69), "standard")
    option = Option(
        "split",
        (Package("W-NORD", (("kettle", 1),), 300, 100), Package("W-SUED", (("toaster", 1),), 320, 100)),
        split_penalty_minor=500,
    )
    return StoredOrder(order, "picked", Allocation("ORD-77", option, [REASON]), None, {})


class FakeStore:
    def __init__(self, orders: Sequence[StoredOrder]) -> None:
        self.orders = {stored.order.id: stored for stored in orders}

    def find_order(self, order_id: str) -> StoredOrder | None:
        return self.orders.get(order_id)


def test_stored_order_becomes_order_and_parcels() -> None:
    records = records_from_stored_order(split_order(), "carol")
    assert [(r.kind, r.record_id) for r in records] == [
        ("order", "ORD-77"),
        ("shipment", "ORD-77-P1"),
        ("shipment", "ORD-77-P2"),
    ]
    assert records[0].attrs == {"status": "shipped", "shipments": "2", "sla": "standard"}
    assert records[1].attrs == {"status": "shipped", "warehouse": "W-NORD", "split_reason": REASON}
    assert all(r.customer_id == "carol" for r in records)


def test_reader_feeds_a_why_split_answer() -> None:
    store: Any = FakeStore([split_order()])
    reader = FulfillmentRecordReader(
        cast(SqlAllocationStore, store), lambda customer: ["ORD-77"] if customer == "carol" else []
    )
    service = AssistantService(load_shipped_articles(), HashedNgramEmbedder(), records=reader)
    answer = service.answer("why was my order split?", Viewer("carol", "customer")).answer
    assert answer.facts[0] == "Order ORD-77: shipped, shipments 2 shipment(s)"
    assert f"Shipment ORD-77-P1: shipped, from warehouse W-NORD; split because {REASON}" in answer.facts
    assert answer.citations[0].doc_id == "split-shipments"
    other = service.answer("why was my order split?", Viewer("dave", "customer")).answer
    assert not other.facts
