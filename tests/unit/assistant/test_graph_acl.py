from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexcity.assistant.domain.acl import PUBLIC, STAFF_ONLY, Access, Viewer, for_audience, owned_by
from hexcity.assistant.domain.graph import EdgeSpec, GraphInvariantBroken, KnowledgeGraph, NodeSpec
from hexcity.assistant.domain.records import InvalidRecord, PlatformRecord, record_to_graph

ALICE = Viewer("alice", "customer")
BOB = Viewer("bob", "customer")
STAFF = Viewer("agent-1", "staff")


def test_access_rules() -> None:
    assert PUBLIC.allows(ALICE)
    assert not STAFF_ONLY.allows(ALICE) and STAFF_ONLY.allows(STAFF)
    assert owned_by("alice").allows(ALICE) and not owned_by("alice").allows(BOB)
    assert owned_by("alice").allows(STAFF)
    assert not for_audience("driver").allows(ALICE)
    assert for_audience("driver").allows(Viewer("d1", "driver"))
    with pytest.raises(ValueError, match="unknown audience"):
        Viewer("x", "pirate")
    with pytest.raises(ValueError, match="owner"):
        owned_by()


def _node(node_id: str, access: Access = PUBLIC) -> NodeSpec:
    return NodeSpec(node_id, "Thing", node_id, access)


def test_edge_survives_while_another_source_backs_it() -> None:
    graph = KnowledgeGraph()
    graph.upsert_source("doc-a", [_node("x"), _node("y")], [EdgeSpec("x", "y", "APPLIES_TO", PUBLIC)])
    graph.upsert_source(
        "doc-b",
        [_node("x"), _node("y"), _node("z")],
        [EdgeSpec("x", "y", "APPLIES_TO", PUBLIC), EdgeSpec("y", "z", "APPLIES_TO", PUBLIC)],
    )
    graph.remove_source("doc-a")
    assert set(graph.edges) == {("x", "y", "APPLIES_TO"), ("y", "z", "APPLIES_TO")}
    assert graph.edges[("x", "y", "APPLIES_TO")].sources == {"doc-b"}
    graph.upsert_source("doc-b", [_node("x"), _node("y")], [])  # doc-b edited: its edges are gone
    assert graph.edges == {}
    graph.remove_source("doc-b")
    assert graph.nodes == {}


def test_edges_need_nodes_and_owners_never_widen() -> None:
    graph = KnowledgeGraph()
    with pytest.raises(GraphInvariantBroken, match="not a node"):
        graph.upsert_source("s", [_node("x")], [EdgeSpec("x", "missing", "R", PUBLIC)])
    graph.upsert_source("s1", [_node("o", owned_by("alice", "driver-1"))], [])
    graph.upsert_source("s2", [_node("o", owned_by("alice"))], [])
    assert graph.nodes["o"].access.owners == frozenset({"alice"})
    with pytest.raises(GraphInvariantBroken, match="disjoint owners"):
        graph.upsert_source("s3", [_node("o", owned_by("bob"))], [])


def test_path_through_a_restricted_node_is_never_taken() -> None:
    graph = KnowledgeGraph()
    graph.upsert_source(
        "s",
        [_node("seed"), _node("secret", STAFF_ONLY), _node("public-behind")],
        [EdgeSpec("seed", "secret", "R", PUBLIC), EdgeSpec("secret", "public-behind", "R", PUBLIC)],
    )
    assert set(graph.local_search(ALICE, ["seed"], hops=3).hops) == {"seed"}
    assert set(graph.local_search(STAFF, ["seed"], hops=3).hops) == {"seed", "secret", "public-behind"}
    graph.upsert_source("t", [_node("a"), _node("b")], [EdgeSpec("a", "b", "R", owned_by("bob"))])
    assert set(graph.local_search(ALICE, ["a"]).hops) == {"a"}  # public ends, private edge


def test_local_search_bounds() -> None:
    graph = KnowledgeGraph()
    nodes = [_node(f"n{i}") for i in range(10)]
    edges = [EdgeSpec(f"n{i}", f"n{i + 1}", "R", PUBLIC) for i in range(9)]
    graph.upsert_source("chain", nodes, edges)
    assert graph.local_search(ALICE, ["n0"], hops=2).hops == {"n0": 0, "n1": 1, "n2": 2}
    assert len(graph.local_search(ALICE, ["n0"], hops=9, max_nodes=4).hops) == 4
    with pytest.raises(ValueError):
        graph.local_search(ALICE, ["n0"], hops=-1)


def test_record_validation() -> None:
    with pytest.raises(InvalidRecord, match="kind"):
        PlatformRecord("invoice", "I-1", "alice")
    with pytest.raises(InvalidRecord, match="empty"):
        PlatformRecord("order", "", "alice")
    with pytest.raises(InvalidRecord, match="link kind"):
        PlatformRecord("order", "O-1", "alice", links=(("R", "planet", "P", ""),))


CUSTOMERS = ["c0", "c1", "c2"]


@st.composite
def platforms(draw: st.DrawFn) -> list[PlatformRecord]:
    records = []
    for index in range(draw(st.integers(1, 12))):
        customer = draw(st.sampled_from(CUSTOMERS))
        kind = draw(st.sampled_from(["order", "shipment", "trip", "payment", "refund"]))
        links = []
        if draw(st.booleans()):
            links.append(("SHIPS_FROM", "warehouse", draw(st.sampled_from(["W1", "W2"])), "Warehouse"))
        if draw(st.booleans()):
            links.append(("DRIVEN_BY", "driver", draw(st.sampled_from(["D1", "D2"])), "Driver"))
        records.append(PlatformRecord(kind, f"R{index}", customer, {"status": "x"}, tuple(links)))
    return records


@settings(max_examples=150, deadline=None)
@given(
    platforms(),
    st.sampled_from(CUSTOMERS),
    st.lists(
        st.sampled_from(
            [
                "warehouse:W1",
                "warehouse:W2",
                "driver:D1",
                "driver:D2",
                *[f"order:R{i}" for i in range(12)],
                *[f"customer:{c}" for c in CUSTOMERS],
            ]
        ),
        max_size=6,
    ),
    st.integers(0, 4),
)
def test_no_path_ever_reaches_another_customers_data(
    records: list[PlatformRecord], asker: str, seeds: list[str], hops: int
) -> None:
    graph = KnowledgeGraph()
    entities = frozenset[str]()
    for record in records:
        nodes, edges = record_to_graph(record, linked_entities=entities)
        graph.upsert_source(record.source_id, nodes, edges)
    viewer = Viewer(asker, "customer")
    found = graph.local_search(viewer, seeds, hops=hops, max_nodes=50)
    for node_id in found.hops:
        node = graph.nodes[node_id]
        assert node.access.allows(viewer)
        assert not node.access.owners or asker in node.access.owners
    for edge in found.edges:
        assert edge.access.allows(viewer)
        assert not edge.access.owners or asker in edge.access.owners
    others = {r.node_id for r in records if r.customer_id != asker}
    assert not others & set(found.hops)
