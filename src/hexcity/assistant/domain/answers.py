"""Deterministic extractive answers in the support template, with citations, or a handoff.

Template (house style): greeting, the answer (sentences extracted from the best chunks), the
asker's own records when the graph found them, numbered citations (doc id, chunk id, version),
an escalation offer. Same input → byte-identical text: no clock, no randomness, ties by id.
When retrieval is weak the answer says it does not know and hands the question to an agent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from hexcity.assistant.domain.graph import Node
from hexcity.assistant.domain.retrieval import Hit
from hexcity.assistant.domain.text import split_sentences, tokenize

GREETING = "Hi, thanks for reaching out."
ESCALATION = "If this does not solve it, reply 'agent' and a support agent will take over."
DONT_KNOW = (
    "I'm sorry, I don't know the answer to that from our help center, and I don't want to guess. "
    "I've passed your question to a support agent, who will reply in this chat."
)
_PAN = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_PHONE = re.compile(r"(?<![\w-])(?:\+\d[\d ()-]{7,}\d|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4})(?![\w-])")


@dataclass(frozen=True, slots=True)
class AnswerParams:
    max_sentences: int = 3
    max_source_chunks: int = 2
    # weak retrieval = best BM25 below min_lexical_score (or too few question words in the best hit) AND
    # best cosine below min_dense_score. Set on the dev split of the QA set (hashed embedder): dev
    # unanswerables score BM25 0.0, dev answerables >= 5.4; see docs/assistant.md.
    min_lexical_score: float = 4.0
    min_dense_score: float = 0.45
    min_query_coverage: float = 0.15  # share of the question's content words found in the best hit


@dataclass(frozen=True, slots=True)
class Citation:
    number: int
    doc_id: str
    chunk_id: str
    version: int
    heading: str


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    citations: tuple[Citation, ...]
    handoff: bool
    arm: str
    facts: tuple[str, ...] = ()
    records: tuple[str, ...] = field(default=())  # node ids of the asker's records used


def redact(text: str) -> str:
    """Card numbers (13–19 digits) and phone numbers replaced before text leaves or reaches an LLM."""
    return _PHONE.sub("[phone]", _PAN.sub("[card]", text))


def is_weak(question: str, hits: Sequence[Hit], params: AnswerParams) -> bool:
    """True when the best hit is neither lexically nor semantically convincing."""
    if not hits:
        return True
    best = hits[0]
    words = set(tokenize(question))
    coverage = len(words & set(tokenize(best.chunk.text + " " + " ".join(best.chunk.heading_path)))) / max(
        len(words), 1
    )
    lexical_ok = best.lexical_score >= params.min_lexical_score and coverage >= params.min_query_coverage
    return not (lexical_ok or best.dense_score >= params.min_dense_score)


def compose(
    question: str,
    hits: Sequence[Hit],
    *,
    arm: str,
    records: Sequence[Node] = (),
    params: AnswerParams | None = None,
    query_tokens: Sequence[str] | None = None,
) -> Answer:
    """The support answer for ``question`` from ``hits`` (best first) and the asker's ``records``.

    ``query_tokens``: the question's tokens after glossary expansion (default: its plain tokens),
    used to pick the sentences to quote.
    """
    params = params or AnswerParams()
    facts = tuple(describe_record(node) for node in records if describe_record(node))
    if is_weak(question, hits, params) and not facts:
        return Answer(f"{GREETING} {DONT_KNOW}", (), True, arm)
    sources = list(hits[: params.max_source_chunks])
    words = set(query_tokens) if query_tokens is not None else set(tokenize(question))
    sentences = _pick_sentences(words, sources, params.max_sentences)
    citations = tuple(
        Citation(
            n, hit.chunk.doc_id, hit.chunk.chunk_id, hit.chunk.version, " > ".join(hit.chunk.heading_path)
        )
        for n, hit in enumerate(sources, start=1)
    )
    lines = [GREETING]
    if facts:
        lines.append("Here is what I see on your account:")
        lines += [f"- {fact}" for fact in facts]
    if sentences:
        lines.append(" ".join(f"{text} [{number}]" for number, text in sentences))
    if citations:
        lines.append(
            "Sources: "
            + "; ".join(f"[{c.number}] {c.heading} ({c.chunk_id}, v{c.version})" for c in citations)
        )
    lines.append(ESCALATION)
    record_ids = tuple(node.node_id for node in records)
    return Answer(redact("\n".join(lines)), citations, False, arm, facts, record_ids)


def describe_record(node: Node) -> str:
    """One line about a record or shared node reached by the graph ("" for other kinds)."""
    attrs = node.attrs
    if node.kind == "Order":
        return f"Order {node.name}: {attrs.get('status', 'unknown')}" + _suffix(
            attrs, "shipments", " shipment(s)"
        )
    if node.kind == "Shipment":
        text = f"Shipment {node.name}: {attrs.get('status', 'unknown')}"
        if attrs.get("warehouse"):
            text += f", from warehouse {attrs['warehouse']}"
        if attrs.get("eta"):
            text += f", estimated delivery {attrs['eta']}"
        if attrs.get("split_reason"):
            text += f"; split because {attrs['split_reason']}"
        return text
    if node.kind == "Trip":
        text = f"Trip {node.name}: {attrs.get('status', 'unknown')}" + _suffix(attrs, "fare", "")
        if attrs.get("surge") and attrs["surge"] not in ("1x", "1.0x"):
            text += f" (surge {attrs['surge']})"
        if attrs.get("driver"):
            text += f", driven by {attrs['driver']}"
        return text
    if node.kind == "Payment":
        text = f"Payment {node.name}: {attrs.get('status', 'unknown')}" + _suffix(attrs, "amount", "")
        if attrs.get("paid_for"):
            text += f", for {attrs['paid_for']}"
        return text
    if node.kind == "Refund":
        return f"Refund {node.name}: {attrs.get('status', 'unknown')}" + _suffix(attrs, "amount", "")
    return ""


def _suffix(attrs: dict[str, str], key: str, unit: str) -> str:
    return f", {key} {attrs[key]}{unit}" if key in attrs else ""


def _pick_sentences(words: set[str], hits: Sequence[Hit], limit: int) -> list[tuple[int, str]]:
    """Up to ``limit`` sentences sharing the most words with the question, in reading order.

    The best hit always contributes its best sentence (its first one when none overlaps): it was
    ranked first, possibly by meaning rather than by shared words.
    """
    candidates: list[tuple[float, int, int, str]] = []
    for number, hit in enumerate(hits, start=1):
        for position, (start, end) in enumerate(split_sentences(hit.chunk.text)):
            sentence = hit.chunk.text[start:end].strip()
            overlap = len(words & set(tokenize(sentence)))
            candidates.append((overlap * (1.0 if number == 1 else 0.5), number, position, sentence))
    if not candidates:
        return []
    ordered = sorted(candidates, key=lambda c: (-c[0], c[1], c[2]))
    lead = next(c for c in ordered if c[1] == 1)
    chosen = [lead, *[c for c in ordered if c is not lead and c[0] > 0.0][: limit - 1]]
    return [(c[1], c[3]) for c in sorted(chosen, key=lambda c: (c[1], c[2]))]
