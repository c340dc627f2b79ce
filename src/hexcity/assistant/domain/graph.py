"""The knowledge graph: typed nodes and edges, each with its sources and access rule.

Provenance rules (GraphRAG freshness, requirements §9): every node and edge keeps the set of
source ids that back it; re-ingesting a source replaces its contribution; an edge (or node) is
deleted only when its source set becomes empty, so a fact still backed by another document or
record survives the deletion of one of them.

Traversal (local search, requirements §6) filters every node and every edge by the viewer
BEFORE expanding, so a path can never run through an item the viewer may not see.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hexcity.assistant.domain.acl import Access, Viewer


class GraphInvariantBroken(ValueError):
    """An edge would point at a node that does not exist, or a source id is empty."""


@dataclass(slots=True)
class Node:
    node_id: str
    kind: str
    name: str
    access: Access
    stated: dict[str, dict[str, str]] = field(default_factory=dict)  # source id → attributes it states

    @property
    def sources(self) -> set[str]:
        return set(self.stated)

    @property
    def attrs(self) -> dict[str, str]:
        """Attributes merged over the backing sources (in source id order), so a withdrawn or
        replaced statement never leaves a stale attribute behind."""
        merged: dict[str, str] = {}
        for source in sorted(self.stated):
            merged.update(self.stated[source])
        return merged


@dataclass(slots=True)
class Edge:
    source: str
    target: str
    relation: str
    access: Access
    sources: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.target, self.relation)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node as a source states it (the graph merges sources of equal ids)."""

    node_id: str
    kind: str
    name: str
    access: Access
    attrs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    source: str
    target: str
    relation: str
    access: Access


@dataclass(frozen=True, slots=True)
class Subgraph:
    """The result of a local search: visible nodes with their hop distance, and visible edges."""

    hops: dict[str, int]
    edges: tuple[Edge, ...]


def _stricter(current: Access, stated: Access, node_id: str) -> Access:
    """The intersection of two rules; two owner sets with nobody in common is a broken link."""
    if current == stated:
        return current
    owners = current.owners or stated.owners
    if current.owners and stated.owners:
        owners = current.owners & stated.owners
        if not owners:
            raise GraphInvariantBroken(f"node {node_id!r} is stated with disjoint owners")
    return Access(current.audiences & stated.audiences, owners)


class KnowledgeGraph:
    """In-memory adjacency with provenance; the indexes are rebuilt incrementally per source."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[str, str, str], Edge] = {}
        self._adjacent: dict[str, set[tuple[str, str, str]]] = {}
        self._by_source: dict[str, tuple[set[str], set[tuple[str, str, str]]]] = {}

    def upsert_source(self, source_id: str, nodes: Iterable[NodeSpec], edges: Iterable[EdgeSpec]) -> None:
        """Replace everything ``source_id`` states with ``nodes`` and ``edges``."""
        if not source_id:
            raise GraphInvariantBroken("source id must not be empty")
        nodes, edges = list(nodes), list(edges)
        self._check_statement(source_id, nodes, edges)  # a refused statement changes nothing
        self.remove_source(source_id)
        node_ids: set[str] = set()
        for spec in nodes:
            node = self.nodes.get(spec.node_id)
            if node is None:
                node = Node(spec.node_id, spec.kind, spec.name, spec.access)
                self.nodes[spec.node_id] = node
                self._adjacent.setdefault(spec.node_id, set())
            elif not node.stated:  # kept only by other sources' edges: this statement defines it
                node.access, node.kind, node.name = spec.access, spec.kind, spec.name
            else:  # the latest statement wins for the fields; access only ever gets stricter
                node.access = _stricter(node.access, spec.access, spec.node_id)
                node.kind, node.name = spec.kind, spec.name
            node.stated[source_id] = dict(spec.attrs)
            node_ids.add(spec.node_id)
        edge_keys: set[tuple[str, str, str]] = set()
        for edge_spec in edges:
            for end in (edge_spec.source, edge_spec.target):
                if end not in self.nodes:
                    raise GraphInvariantBroken(f"edge end {end!r} is not a node")
            key = (edge_spec.source, edge_spec.target, edge_spec.relation)
            edge = self.edges.get(key)
            if edge is None:
                edge = Edge(edge_spec.source, edge_spec.target, edge_spec.relation, edge_spec.access)
                self.edges[key] = edge
                self._adjacent[edge.source].add(key)
                self._adjacent[edge.target].add(key)
            edge.sources.add(source_id)
            edge_keys.add(key)
        self._by_source[source_id] = (node_ids, edge_keys)

    def _check_statement(self, source_id: str, nodes: list[NodeSpec], edges: list[EdgeSpec]) -> None:
        """Raise :class:`GraphInvariantBroken` before any change if the statement cannot apply: a
        node stated with owners disjoint from its other sources', or an edge end nobody states."""
        stated: dict[str, Access] = {}
        for spec in nodes:
            current = stated.get(spec.node_id)
            node = self.nodes.get(spec.node_id)
            if current is None and node is not None and set(node.stated) - {source_id}:
                current = node.access
            stated[spec.node_id] = (
                spec.access if current is None else _stricter(current, spec.access, spec.node_id)
            )
        for edge_spec in edges:
            for end in (edge_spec.source, edge_spec.target):
                if end not in stated and not self._survives(end, source_id):
                    raise GraphInvariantBroken(f"edge end {end!r} is not a node")

    def _survives(self, node_id: str, source_id: str) -> bool:
        """Whether ``node_id`` is still a node once ``source_id`` is withdrawn."""
        node = self.nodes.get(node_id)
        if node is None:
            return False
        return bool(set(node.stated) - {source_id}) or any(
            self.edges[key].sources - {source_id} for key in self._adjacent.get(node_id, ())
        )

    def remove_source(self, source_id: str) -> None:
        """Withdraw ``source_id``; delete only the edges and nodes no other source still backs."""
        node_ids, edge_keys = self._by_source.pop(source_id, (set(), set()))
        for key in edge_keys:
            edge = self.edges.get(key)
            if edge is None:
                continue
            edge.sources.discard(source_id)
            if not edge.sources:
                del self.edges[key]
                self._adjacent[edge.source].discard(key)
                self._adjacent[edge.target].discard(key)
        for node_id in node_ids:
            node = self.nodes.get(node_id)
            if node is None:
                continue
            node.stated.pop(source_id, None)
            if not node.stated and not self._adjacent.get(node_id):
                del self.nodes[node_id]
                self._adjacent.pop(node_id, None)

    def visible_edges(self, node_id: str, viewer: Viewer) -> list[Edge]:
        """Edges at ``node_id`` the viewer may see and whose other end they may see, sorted."""
        result = []
        for key in sorted(self._adjacent.get(node_id, ())):
            edge = self.edges[key]
            other = self.nodes.get(edge.target if edge.source == node_id else edge.source)
            if other is not None and edge.access.allows(viewer) and other.access.allows(viewer):
                result.append(edge)
        return result

    def local_search(
        self,
        viewer: Viewer,
        seeds: Iterable[str],
        *,
        hops: int = 2,
        max_nodes: int = 50,
        through: Callable[[str], bool] | None = None,
    ) -> Subgraph:
        """Breadth-first expansion from the visible ``seeds``, through visible edges and nodes only.

        At most ``hops`` hops and ``max_nodes`` nodes (seeds first, then by hop and id). With
        ``through``, only nodes it accepts are entered beyond the seeds (e.g. records only).
        """
        if hops < 0 or max_nodes < 1:
            raise ValueError("hops must be >= 0 and max_nodes >= 1")
        distance: dict[str, int] = {}
        queue: deque[str] = deque()
        for seed in sorted(set(seeds)):
            node = self.nodes.get(seed)
            if node is not None and node.access.allows(viewer) and len(distance) < max_nodes:
                distance[seed] = 0
                queue.append(seed)
        kept: dict[tuple[str, str, str], Edge] = {}
        while queue:
            current = queue.popleft()
            if distance[current] >= hops:
                continue
            for edge in self.visible_edges(current, viewer):
                other = edge.target if edge.source == current else edge.source
                if other not in distance:
                    if len(distance) >= max_nodes or (through is not None and not through(other)):
                        continue
                    distance[other] = distance[current] + 1
                    queue.append(other)
                kept[edge.key] = edge
        edges = tuple(
            edge for key, edge in sorted(kept.items()) if edge.source in distance and edge.target in distance
        )
        return Subgraph(distance, edges)
