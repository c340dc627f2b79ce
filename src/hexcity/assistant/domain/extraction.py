"""Rule-based graph extraction from help-article chunks (gazetteer + regexes, no model).

Each chunk becomes a ``DocumentChunk`` node, ``MENTIONS`` edges to the glossary entities it names
(aliases matched on normalised text at word boundaries; CamelCase error codes by regex) and
relations between the entities it mentions together. Every item carries the chunk's access rule
(or the stricter entity rule) and the chunk id as its source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import combinations

from hexcity.assistant.domain.acl import PUBLIC, Access, for_audience
from hexcity.assistant.domain.documents import Chunk
from hexcity.assistant.domain.glossary import ENTRIES, GlossaryEntry
from hexcity.assistant.domain.graph import EdgeSpec, NodeSpec
from hexcity.assistant.domain.text import normalize

_ERROR_CODE = re.compile(r"\b([A-Z][a-z]+(?:[A-Z][a-z]+)+)\b")
_PATTERNS: tuple[tuple[GlossaryEntry, re.Pattern[str]], ...] = tuple(
    (
        entry,
        re.compile(
            "|".join(rf"(?<![a-z0-9]){re.escape(normalize(alias))}(?![a-z0-9])" for alias in entry.aliases)
        ),
    )
    for entry in ENTRIES
)


def _relation(kind_a: str, kind_b: str) -> str:
    kinds = {kind_a, kind_b}
    if "ErrorCode" in kinds:
        return "RESOLVED_BY"
    if "Fee" in kinds:
        return "CHARGES"
    if "Promo" in kinds or "PaymentMethod" in kinds:
        return "ELIGIBLE_FOR"
    return "APPLIES_TO"


def link_entities(text: str) -> list[GlossaryEntry]:
    """Glossary entities named in ``text`` (plus its error codes), sorted by id."""
    normalized = normalize(text)
    found = {entry.entity_id: entry for entry, pattern in _PATTERNS if pattern.search(normalized)}
    for code in _ERROR_CODE.findall(text):
        entity_id = f"error:{code}"
        found[entity_id] = GlossaryEntry(entity_id, "ErrorCode", code, (code,))
    return [found[key] for key in sorted(found)]


def entity_access(entry: GlossaryEntry) -> Access:
    return PUBLIC if entry.audiences == PUBLIC.audiences else Access(entry.audiences)


def chunk_to_graph(chunk: Chunk) -> tuple[list[NodeSpec], list[EdgeSpec]]:
    """The nodes and edges one chunk states (its source id is ``chunk.chunk_id``)."""
    chunk_access = for_audience(chunk.audience)
    chunk_node = NodeSpec(
        f"chunk:{chunk.chunk_id}",
        "DocumentChunk",
        " > ".join(chunk.heading_path),
        chunk_access,
        {"doc_id": chunk.doc_id, "version": str(chunk.version)},
    )
    entities = link_entities(chunk.text)
    nodes = [chunk_node] + [
        NodeSpec(f"entity:{e.entity_id}", e.kind, e.name, entity_access(e)) for e in entities
    ]
    edges = [
        EdgeSpec(chunk_node.node_id, f"entity:{e.entity_id}", "MENTIONS", chunk_access) for e in entities
    ]
    for first, second in combinations(entities, 2):
        edges.append(
            EdgeSpec(
                f"entity:{first.entity_id}",
                f"entity:{second.entity_id}",
                _relation(first.kind, second.kind),
                chunk_access,
            )
        )
    return nodes, edges


def chunks_by_entity(chunks: Sequence[Chunk]) -> dict[str, list[str]]:
    """Entity node id → ids of the chunks that mention it (for tests and summaries)."""
    index: dict[str, list[str]] = {}
    for chunk in chunks:
        for entry in link_entities(chunk.text):
            index.setdefault(f"entity:{entry.entity_id}", []).append(chunk.chunk_id)
    return index


def entity_ids(entries: Iterable[GlossaryEntry]) -> list[str]:
    return [f"entity:{entry.entity_id}" for entry in entries]
