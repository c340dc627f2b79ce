"""Access and provenance of live records in the graph: refused statements change nothing, linked
records are backed by every record naming them, record-only traversal, and a driver shared by two
riders never leads from one rider's trip to the other's."""

from __future__ import annotations

import pytest

from hexcity.assistant.domain.acl import PUBLIC, Viewer, owned_by
from hexcity.assistant.domain.graph import EdgeSpec, GraphInvariantBroken, KnowledgeGraph, NodeSpec
from hexcity.assistant.domain.graph_search import is_record_node
from hexcity.assistant.domain.records import PlatformRecord, record_to_graph

ALICE, BOB = Viewer("alice", "customer"), Viewer("bob", "customer")


def put(graph: KnowledgeGraph, record: PlatformRecord) -> None:
    nodes, edges = record_to_graph(record, linked_entities=frozenset(graph.nodes))
    graph.upsert_source(record.source_id, nodes, edges)


def trip(trip_id: str, rider: str, driver: str) -> PlatformRecord:
    return PlatformRecord(
        "trip", trip_id, rider, {"status": "completed"}, (("DRIVEN_BY", "driver", driver, driver),)
    )


def test_a_record_linking_to_another_customers_record_is_refused_and_changes_nothing() -> None:
    graph = KnowledgeGraph()
    put(graph, PlatformRecord("order", "ORD-1", "alice", {"status": "shipped"}))
    nodes_before, edges_before = dict(graph.nodes), dict(graph.edges)
    planted = PlatformRecord(
        "payment", "pay_m", "mallory", {"status": "succeeded"}, (("PAID_FOR", "order", "ORD-1", ""),)
    )
    with pytest.raises(GraphInvariantBroken, match="disjoint owners"):
        put(graph, planted)
    assert graph.nodes == nodes_before and graph.edges == edges_before
    assert "customer:mallory" not in graph.nodes and "payment:pay_m" not in graph.nodes
    assert graph.nodes["order:ORD-1"].access == owned_by("alice")


def test_an_edge_end_only_the_replaced_statement_held_is_refused_before_any_change() -> None:
    graph = KnowledgeGraph()
    graph.upsert_source("s1", [NodeSpec("x", "Thing", "x", PUBLIC)], [])
    with pytest.raises(GraphInvariantBroken, match="'x' is not a node"):
        graph.upsert_source("s1", [NodeSpec("y", "Thing", "y", PUBLIC)], [_edge("y", "x")])
    assert set(graph.nodes) == {"x"} and graph.nodes["x"].sources == {"s1"}


def _edge(source: str, target: str) -> EdgeSpec:
    return EdgeSpec(source, target, "APPLIES_TO", PUBLIC)


def test_a_linked_record_is_the_customers_while_any_record_names_it() -> None:
    graph = KnowledgeGraph()
    put(graph, trip("t1", "alice", "d1"))
    payment = PlatformRecord(
        "payment", "ride:t1", "alice", {"status": "captured"}, (("PAID_FOR", "trip", "t1", ""),)
    )
    put(graph, payment)
    refund = PlatformRecord(
        "refund", "ref_1", "alice", {"status": "succeeded"}, (("REFUNDS", "payment", "ride:t1", ""),)
    )
    put(graph, refund)
    assert graph.edges[("customer:alice", "trip:t1", "HAS")].sources == {
        "record:trip:t1",
        "record:payment:ride:t1",
    }
    assert graph.edges[("customer:alice", "payment:ride:t1", "HAS")].sources == {
        "record:payment:ride:t1",
        "record:refund:ref_1",
    }
    graph.remove_source("record:payment:ride:t1")  # the refund still names the payment
    assert graph.nodes["payment:ride:t1"].attrs == {} and graph.nodes["payment:ride:t1"].access == owned_by(
        "alice"
    )
    assert ("payment:ride:t1", "trip:t1", "PAID_FOR") not in graph.edges
    graph.remove_source("record:refund:ref_1")
    assert "payment:ride:t1" not in graph.nodes
    assert ("customer:alice", "payment:ride:t1", "HAS") not in graph.edges


def test_a_shared_driver_never_leads_to_another_riders_trip() -> None:
    graph = KnowledgeGraph()
    put(graph, trip("t-alice", "alice", "d1"))
    put(graph, trip("t-bob", "bob", "d1"))
    assert graph.nodes["driver:d1"].access == PUBLIC and graph.nodes["driver:d1"].attrs == {}
    for seeds in (["driver:d1"], ["customer:alice"], ["trip:t-alice"], ["trip:t-bob", "customer:bob"]):
        reached = graph.local_search(ALICE, seeds, hops=4, max_nodes=100)
        assert "trip:t-bob" not in reached.hops and "customer:bob" not in reached.hops
        assert all(edge.access.owners <= {"alice"} for edge in reached.edges)
    assert set(graph.local_search(ALICE, ["customer:alice"], hops=4).hops) == {
        "customer:alice",
        "trip:t-alice",
        "driver:d1",
    }
    assert set(graph.local_search(BOB, ["driver:d1"], hops=4).hops) == {
        "driver:d1",
        "trip:t-bob",
        "customer:bob",
    }


def test_record_only_traversal_skips_knowledge_nodes() -> None:
    graph = KnowledgeGraph()
    graph.upsert_source("chunk-1", [NodeSpec("entity:service:ride", "Service", "ride", PUBLIC)], [])
    put(graph, trip("t1", "alice", "d1"))  # GOVERNED_BY the ride service entity
    everything = graph.local_search(ALICE, ["trip:t1"], hops=2)
    assert "entity:service:ride" in everything.hops
    records = graph.local_search(ALICE, ["trip:t1"], hops=2, through=is_record_node)
    assert set(records.hops) == {"trip:t1", "driver:d1"}
    assert is_record_node("payment:ride:t1") and is_record_node("driver:d1")
    assert not is_record_node("chunk:refunds#0") and not is_record_node("customer:alice")
