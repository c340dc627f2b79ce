"""GraphRAG retrieval: seeds → access-filtered bounded expansion → chunks via MENTIONS, re-ranked.

Seeds are the glossary entities linked from the question, record ids named in it (``ORD-…``) and,
for personal questions naming no record id ("my order"), the asker's own records of the kinds
the question names. The subgraph is the viewer's view
(every node and edge checked). Chunks mentioned by subgraph entities get a proximity bonus on top
of their plain retrieval score; aggregate questions also draw from the best community summaries.
The context budget (``k`` chunks) is the same as plain retrieval's, for a fair comparison.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hexcity.assistant.domain.acl import Viewer
from hexcity.assistant.domain.communities import Community
from hexcity.assistant.domain.extraction import entity_ids, link_entities
from hexcity.assistant.domain.graph import KnowledgeGraph, Node
from hexcity.assistant.domain.retrieval import MAX_K, Hit, KnowledgeIndex
from hexcity.assistant.domain.router import RECORD_ID
from hexcity.assistant.domain.text import normalize

PROXIMITY_BONUS = 0.008  # half an RRF rank-1 contribution (1/61 = 0.0164), for a chunk mentioning a seed
COMMUNITY_BONUS = 0.006
_PREFIX_KIND = {"ORD": "order", "SHP": "shipment", "TRP": "trip", "PAY": "payment", "RFD": "refund"}
_KIND_WORDS = {
    "order": ("order", "parcel", "package", "shipment", "deliver", "split"),
    "trip": ("ride", "trip", "driver", "drove", "fare", "surge"),
    "payment": ("pay", "charge", "paid", "refund"),
    "refund": ("refund", "money back"),
    "shipment": ("shipment", "parcel", "package", "deliver", "split", "courier"),
}
MAX_PERSONAL_SEEDS = 10


@dataclass(frozen=True, slots=True)
class GraphResult:
    hits: list[Hit]
    seeds: tuple[str, ...]
    records: tuple[Node, ...]  # personal questions: the records and shared nodes reached, by hop then id
    hops: dict[str, int]


def seed_nodes(graph: KnowledgeGraph, viewer: Viewer, question: str, *, personal: bool) -> list[str]:
    """Graph node ids the question starts from (unfiltered; the search filters them)."""
    seeds = entity_ids(link_entities(question))
    named = [match.group(0).upper() for match in RECORD_ID.finditer(question)]
    seeds += [f"{_PREFIX_KIND[record_id[:3]]}:{record_id}" for record_id in named]
    if personal and not named:  # "my trip" without an id: the asker's records of the kinds named
        text = normalize(question)
        wanted = {
            kind for kind, words in _KIND_WORDS.items() if any(re.search(rf"\b{w}", text) for w in words)
        }
        own = [
            other
            for edge in graph.visible_edges(f"customer:{viewer.subject}", viewer)
            if (other := edge.target) != f"customer:{viewer.subject}" and other.split(":", 1)[0] in wanted
        ]
        seeds += own[:MAX_PERSONAL_SEEDS]
    return sorted(set(seeds))


def graph_retrieve(
    index: KnowledgeIndex,
    graph: KnowledgeGraph,
    viewer: Viewer,
    question: str,
    *,
    k: int,
    personal: bool,
    aggregate: bool,
    communities: Sequence[Community] = (),
    hops: int = 2,
    max_nodes: int = 50,
) -> GraphResult:
    """The ``k`` best chunks for ``question`` by graph proximity plus plain score, and the records reached."""
    seeds = seed_nodes(graph, viewer, question, personal=personal)
    subgraph = graph.local_search(viewer, seeds, hops=hops, max_nodes=max_nodes)
    base = {hit.chunk.chunk_id: hit for hit in index.search(question, viewer, k=MAX_K)}
    bonus: dict[str, float] = {}
    for node_id, hop in subgraph.hops.items():
        if not node_id.startswith("entity:"):
            continue
        for edge in graph.visible_edges(node_id, viewer):
            if edge.relation == "MENTIONS":
                chunk_id = edge.source.removeprefix("chunk:")
                bonus[chunk_id] = max(bonus.get(chunk_id, 0.0), PROXIMITY_BONUS / (1 + hop))
    if aggregate and communities:
        for community in _best_communities(communities, base, limit=3):
            for chunk_id in community.chunk_ids:
                bonus[chunk_id] = bonus.get(chunk_id, 0.0) + COMMUNITY_BONUS
    scored = {
        key: (base[key].score if key in base else 0.0) + bonus.get(key, 0.0) for key in set(base) | set(bonus)
    }
    order = sorted((key for key in scored if key in base), key=lambda key: (-scored[key], key))[:k]
    hits = [
        Hit(base[key].chunk, scored[key], base[key].lexical_score, base[key].dense_score) for key in order
    ]
    records: tuple[Node, ...] = ()
    if personal:  # the records the question is about and what they link to, apart from the
        # knowledge nodes (so the node cap spent on policy entities and chunks never hides a
        # refund two hops from a trip), from record seeds only and not through the customer
        # node or a policy entity (either would bring every record of the asker into an answer
        # about one of them)
        record_seeds = [seed for seed in seeds if is_record_node(seed)]
        reached = graph.local_search(
            viewer, record_seeds, hops=hops, max_nodes=max_nodes, through=is_record_node
        )
        records = tuple(
            graph.nodes[node_id]
            for node_id, _ in sorted(reached.hops.items(), key=lambda item: (item[1], item[0]))
            if is_record_node(node_id)
        )
    return GraphResult(hits, tuple(seeds), records, dict(subgraph.hops))


def is_record_node(node_id: str) -> bool:
    """A platform record or a shared place/person: not a glossary entity, chunk or customer."""
    return not node_id.startswith(("entity:", "chunk:", "customer:"))


def _best_communities(
    communities: Sequence[Community], base: dict[str, Hit], *, limit: int
) -> list[Community]:
    def strength(community: Community) -> float:
        return sum(base[key].score for key in community.chunk_ids if key in base)

    return sorted(communities, key=lambda c: (-strength(c), c.community_id))[:limit]
