from __future__ import annotations

import pytest

from hexcity.assistant import (
    AssistantService,
    HashedNgramEmbedder,
    InMemoryRecords,
    PlatformRecord,
    load_shipped_articles,
)


def demo_records() -> list[PlatformRecord]:
    """Alice has a split order; Bob has an order from the same warehouse and a refund."""
    split = "no single warehouse had every item"
    return [
        PlatformRecord("order", "ORD-1042", "alice", {"status": "shipped", "shipments": "2"}),
        PlatformRecord(
            "shipment",
            "SHP-1",
            "alice",
            {
                "status": "shipped",
                "warehouse": "Heidelberg Nord",
                "eta": "2026-11-26T14:00",
                "split_reason": split,
            },
            (("PART_OF", "order", "ORD-1042", ""), ("SHIPS_FROM", "warehouse", "W-NORD", "Heidelberg Nord")),
        ),
        PlatformRecord(
            "shipment",
            "SHP-2",
            "alice",
            {"status": "processing", "warehouse": "Heidelberg Sued", "split_reason": split},
            (("PART_OF", "order", "ORD-1042", ""), ("SHIPS_FROM", "warehouse", "W-SUED", "Heidelberg Sued")),
        ),
        PlatformRecord("order", "ORD-2000", "bob", {"status": "delivered"}),
        PlatformRecord(
            "shipment",
            "SHP-9",
            "bob",
            {"status": "delivered", "warehouse": "Heidelberg Nord"},
            (("PART_OF", "order", "ORD-2000", ""), ("SHIPS_FROM", "warehouse", "W-NORD", "Heidelberg Nord")),
        ),
        PlatformRecord(
            "refund",
            "RFD-7",
            "bob",
            {"status": "booked", "amount": "12.50"},
            (("REFUNDS", "order", "ORD-2000", ""),),
        ),
    ]


def build_service() -> AssistantService:
    records = InMemoryRecords(demo_records())
    service = AssistantService(load_shipped_articles(), HashedNgramEmbedder(), records=records)
    for record in records.all():
        service.upsert_record(record)
    return service


@pytest.fixture
def service() -> AssistantService:
    return build_service()
