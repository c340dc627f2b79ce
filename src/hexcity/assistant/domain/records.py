"""Platform records (orders, shipments, trips, payments, refunds) as graph facts.

A record is personal data: its node and every edge it states are owned by its customer (plus
``also_visible_to``, empty for every record the module readers build). Shared places and people
(warehouses, couriers, drivers) are public nodes holding only a display name, so reaching them
reveals nothing; reaching ANOTHER customer's record through them is impossible because that
record's node and edges are owned (a driver node has edges to every rider's trip, each owned by
that trip's rider).

A link to another record of the same customer (a payment's trip, a refund's payment) states that
record's node and a ``customer → record`` ``HAS`` edge too, so the edge has two sources when the
record itself is indexed: it disappears only when the record AND every record linking to it are
withdrawn (provenance rule of :mod:`graph`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hexcity.assistant.domain.acl import PUBLIC, owned_by
from hexcity.assistant.domain.graph import EdgeSpec, NodeSpec

RECORD_KINDS = frozenset({"order", "shipment", "trip", "payment", "refund"})
SHARED_KINDS = {"warehouse": "Warehouse", "courier": "Courier", "driver": "Driver"}

# record kind → glossary entity its node is linked to (so graph search reaches the policy texts)
_POLICY_LINKS: dict[str, tuple[str, ...]] = {
    "order": ("entity:service:shop",),
    "shipment": ("entity:service:delivery",),
    "trip": ("entity:service:ride",),
    "payment": ("entity:payment:wallet",),
    "refund": ("entity:policy:refund",),
}


class InvalidRecord(ValueError):
    """A platform record with an unknown kind, empty ids or a link to an unknown kind."""


@dataclass(frozen=True, slots=True)
class PlatformRecord:
    """One record read from a business module, with the caller-independent facts about it.

    ``links``: (relation, kind, id, display name) — e.g. ("PART_OF", "order", "ORD-1", "") or
    ("SHIPS_FROM", "warehouse", "W-NORD", "Heidelberg Nord").
    """

    kind: str
    record_id: str
    customer_id: str
    attrs: Mapping[str, str] = field(default_factory=dict)
    links: tuple[tuple[str, str, str, str], ...] = ()
    also_visible_to: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in RECORD_KINDS:
            raise InvalidRecord(f"unknown record kind {self.kind!r}")
        if not self.record_id or not self.customer_id:
            raise InvalidRecord("record id and customer id must not be empty")
        for _, kind, target_id, _ in self.links:
            if kind not in RECORD_KINDS and kind not in SHARED_KINDS:
                raise InvalidRecord(f"unknown link kind {kind!r}")
            if not target_id:
                raise InvalidRecord("link target id must not be empty")

    @property
    def source_id(self) -> str:
        return f"record:{self.kind}:{self.record_id}"

    @property
    def node_id(self) -> str:
        return f"{self.kind}:{self.record_id}"


def record_to_graph(
    record: PlatformRecord, *, linked_entities: frozenset[str]
) -> tuple[list[NodeSpec], list[EdgeSpec]]:
    """Nodes and edges stated by ``record``; policy links only to entities in ``linked_entities``."""
    access = owned_by(record.customer_id, *record.also_visible_to)
    customer = NodeSpec(
        f"customer:{record.customer_id}", "Customer", record.customer_id, owned_by(record.customer_id)
    )
    node = NodeSpec(record.node_id, record.kind.capitalize(), record.record_id, access, dict(record.attrs))
    nodes = [customer, node]
    edges = [EdgeSpec(customer.node_id, node.node_id, "HAS", access)]
    for relation, kind, target_id, name in record.links:
        target = f"{kind}:{target_id}"
        if kind in SHARED_KINDS:
            nodes.append(NodeSpec(target, SHARED_KINDS[kind], name or target_id, PUBLIC))
        else:  # another record of the same customer: stated as a node so the edge has both ends,
            # and as the customer's (so it stays reachable while any of its records backs it)
            nodes.append(NodeSpec(target, kind.capitalize(), target_id, owned_by(record.customer_id)))
            edges.append(EdgeSpec(customer.node_id, target, "HAS", owned_by(record.customer_id)))
        edges.append(EdgeSpec(node.node_id, target, relation, access))
    for entity in _POLICY_LINKS[record.kind]:
        if entity in linked_entities:
            edges.append(EdgeSpec(node.node_id, entity, "GOVERNED_BY", access))
    if record.attrs.get("split_reason") and "entity:policy:split" in linked_entities:
        edges.append(EdgeSpec(node.node_id, "entity:policy:split", "GOVERNED_BY", access))
    return nodes, edges
