"""Platform records from the fulfillment module's stored orders (through ``hexcity.fulfillment`` only).

A stored order becomes an ``order`` record and one ``shipment`` record per parcel of its
allocation (id ``<order>-P<n>``), each linked to its warehouse, with the allocation's own reason
as ``split_reason`` when the order ships in more than one parcel. Who owns an order is not a
fulfillment fact: the caller passes ``orders_of(customer_id)`` (commerce knows it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hexcity.assistant.domain.records import PlatformRecord
from hexcity.fulfillment import SqlAllocationStore, StoredOrder

MAX_ORDERS_PER_CUSTOMER = 50


def records_from_stored_order(stored: StoredOrder, customer_id: str) -> list[PlatformRecord]:
    """The order and its parcels as records owned by ``customer_id``."""
    order_id = stored.order.id
    allocation = stored.allocation
    packages = allocation.chosen.packages if allocation is not None else ()
    attrs = {"status": _status(stored.status), "shipments": str(len(packages)), "sla": stored.order.sla.value}
    if allocation is None and stored.reason:
        attrs["reason"] = stored.reason
    records = [PlatformRecord("order", order_id, customer_id, attrs)]
    split_reason = (
        allocation.reasons[0] if allocation is not None and len(packages) > 1 and allocation.reasons else ""
    )
    for number, package in enumerate(packages, start=1):
        shipment_attrs = {"status": _status(stored.status), "warehouse": package.warehouse_id}
        if split_reason:
            shipment_attrs["split_reason"] = split_reason
        records.append(
            PlatformRecord(
                "shipment",
                f"{order_id}-P{number}",
                customer_id,
                shipment_attrs,
                (
                    ("PART_OF", "order", order_id, ""),
                    ("SHIPS_FROM", "warehouse", package.warehouse_id, package.warehouse_id),
                ),
            )
        )
    return records


def _status(stored_status: str) -> str:
    return {"allocated": "processing", "picked": "shipped", "unallocated": "pending"}.get(
        stored_status, stored_status
    )


class FulfillmentRecordReader:
    """:class:`~hexcity.assistant.ports.RecordReader` over :class:`SqlAllocationStore`."""

    def __init__(self, store: SqlAllocationStore, orders_of: Callable[[str], Sequence[str]]) -> None:
        self._store = store
        self._orders_of = orders_of

    def records_for(self, customer_id: str, *, limit: int) -> Sequence[PlatformRecord]:
        records: list[PlatformRecord] = []
        for order_id in list(self._orders_of(customer_id))[:MAX_ORDERS_PER_CUSTOMER]:
            stored = self._store.find_order(order_id)
            if stored is not None:
                records += records_from_stored_order(stored, customer_id)
            if len(records) >= limit:
                break
        return records[:limit]
