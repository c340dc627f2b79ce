"""Communities of the entity graph and their extractive summaries, for global questions.

Louvain modularity (Blondel et al. 2008) with a fixed seed, as networkx's Leiden needs a
non-default backend; Microsoft GraphRAG uses Leiden. Communities are computed per audience on the
graph as that audience sees it, so a summary never quotes a chunk its reader may not see. The
summary is extractive: the community's entity names and the ids of the chunks that mention the
most of them (top-k summaries by similarity answer a global question, requirements §7).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import networkx as nx

from hexcity.assistant.domain.acl import Viewer
from hexcity.assistant.domain.graph import KnowledgeGraph

COMMUNITY_SEED = 7


@dataclass(frozen=True, slots=True)
class Community:
    community_id: str
    entity_ids: tuple[str, ...]
    chunk_ids: tuple[str, ...]  # chunks mentioning its entities, most entities first
    summary: str


def detect_communities(graph: KnowledgeGraph, viewer: Viewer, *, max_chunks: int = 6) -> list[Community]:
    """Communities of the entities ``viewer`` may see, linked by edges they may see; deterministic."""
    entity_graph: nx.Graph[str] = nx.Graph()
    mentions: dict[str, Counter[str]] = {}
    for node_id in sorted(graph.nodes):
        node = graph.nodes[node_id]
        if (
            node.kind == "DocumentChunk"
            or not node_id.startswith("entity:")
            or not node.access.allows(viewer)
        ):
            continue
        entity_graph.add_node(node_id)
        for edge in graph.visible_edges(node_id, viewer):
            other = edge.target if edge.source == node_id else edge.source
            if edge.relation == "MENTIONS":
                mentions.setdefault(node_id, Counter())[other.removeprefix("chunk:")] += 1
            elif other.startswith("entity:"):
                weight = entity_graph.get_edge_data(node_id, other, {"weight": 0})["weight"]
                entity_graph.add_edge(node_id, other, weight=weight + 1)
    if entity_graph.number_of_nodes() == 0:
        return []
    groups = nx.community.louvain_communities(entity_graph, weight="weight", seed=COMMUNITY_SEED)
    ordered = sorted((tuple(sorted(group)) for group in groups), key=lambda members: (-len(members), members))
    communities = []
    for index, members in enumerate(ordered):
        chunk_counts: Counter[str] = Counter()
        for member in members:
            chunk_counts.update(mentions.get(member, Counter()).keys())
        chunk_ids = tuple(
            key for key, _ in sorted(chunk_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_chunks]
        )
        names = ", ".join(graph.nodes[member].name for member in members)
        communities.append(
            Community(f"community:{viewer.audience}:{index}", members, chunk_ids, f"Topics: {names}.")
        )
    return communities
