"""The router: graph search for personal, multi-entity or aggregate questions, plain RAG otherwise.

Rule (requirements §8): two or more linked entities, an aggregate cue ("which", "all", "list"),
a record id or a personal cue ("my order") → graph; everything else → plain retrieval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hexcity.assistant.domain.text import normalize

PLAIN, GRAPH = "plain", "graph"
_AGGREGATE = re.compile(r"\b(which|all|list|every|overview|summar\w*|what kinds?)\b")
_PERSONAL = re.compile(
    r"\bmy (?:\w+ )?(orders?|rides?|trips?|refunds?|payments?|parcels?|shipments?|packages?|deliver\w*)\b"
)
RECORD_ID = re.compile(r"\b(?:ORD|SHP|TRP|PAY|RFD)-[A-Z0-9]{1,20}\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Route:
    arm: str  # PLAIN | GRAPH
    reason: str
    aggregate: bool
    personal: bool


def route(question: str, linked_entities: int) -> Route:
    """The arm for ``question`` given how many glossary entities it links."""
    text = normalize(question)
    aggregate = bool(_AGGREGATE.search(text))
    personal = bool(_PERSONAL.search(text) or RECORD_ID.search(question))
    if personal:
        return Route(GRAPH, "personal record", aggregate, personal)
    if aggregate:
        return Route(GRAPH, "aggregate cue", aggregate, personal)
    if linked_entities >= 2:
        return Route(GRAPH, f"{linked_entities} linked entities", aggregate, personal)
    return Route(PLAIN, "single topic", aggregate, personal)
