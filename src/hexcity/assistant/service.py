"""Use cases of the assistant: search, answer (plain / graph / routed), freshness, articles.

The service owns the chunk index and the knowledge graph of one process. Help articles and
platform records enter both incrementally: a changed article re-chunks and re-embeds only changed
chunks; a withdrawn source removes only what nothing else backs. ``index_version`` grows with
every change and ``last_event_ts`` is the time of the last applied change event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hexcity.assistant.domain.acl import Viewer, for_audience
from hexcity.assistant.domain.answers import Answer, AnswerParams, compose, redact
from hexcity.assistant.domain.communities import Community, detect_communities
from hexcity.assistant.domain.documents import (
    Article,
    ArticleFormatError,
    Chunk,
    chunk_article,
    parse_article,
)
from hexcity.assistant.domain.extraction import chunk_to_graph, link_entities
from hexcity.assistant.domain.glossary import SYNONYMS
from hexcity.assistant.domain.graph import GraphInvariantBroken, KnowledgeGraph, Node
from hexcity.assistant.domain.graph_search import graph_retrieve
from hexcity.assistant.domain.records import InvalidRecord, PlatformRecord, record_to_graph
from hexcity.assistant.domain.retrieval import Embedder, Hit, KnowledgeIndex
from hexcity.assistant.domain.router import GRAPH, PLAIN, Route, route
from hexcity.assistant.errors import ArticleNotFound, InvalidQuestion, RecordNotFound
from hexcity.assistant.ports import AnswerGenerator, RecordReader
from hexcity.assistant.settings import AssistantSettings
from hexcity.infra.logging import get_logger

ROUTED = "routed"
ARMS = (PLAIN, GRAPH, ROUTED)
MAX_RECORDS_PER_CUSTOMER = 200

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AnswerResult:
    answer: Answer
    route: Route
    hits: tuple[Hit, ...]
    index_version: int


class AssistantService:
    """Retrieval and answers for one process; not thread-safe for writes (one writer: the consumer)."""

    def __init__(
        self,
        articles: Iterable[Article],
        embedder: Embedder,
        *,
        settings: AssistantSettings | None = None,
        records: RecordReader | None = None,
        generator: AnswerGenerator | None = None,
        answer_params: AnswerParams | None = None,
    ) -> None:
        self.settings = settings or AssistantSettings()
        self.records = records
        self.generator = generator
        self.answer_params = answer_params or AnswerParams()
        self.index = KnowledgeIndex(embedder, SYNONYMS)
        self.graph = KnowledgeGraph()
        self.articles: dict[str, Article] = {}
        self._chunks_by_doc: dict[str, list[Chunk]] = {}
        self._communities: dict[str, list[Community]] = {}
        self.index_version = 0
        self.last_event_ts: float | None = None
        for article in articles:
            self._ingest_article(article)
        self._reindex()

    # -- knowledge changes ------------------------------------------------------------------------
    def publish_article(self, source: str, *, event_ts: float | None = None) -> Article:
        """Add or replace an article from its markdown; raises :class:`InvalidQuestion` if malformed."""
        try:
            article = parse_article(source)
        except ArticleFormatError as error:
            raise InvalidQuestion(f"invalid article: {error}") from error
        self._ingest_article(article)
        self._reindex(event_ts)
        return article

    def delete_article(self, doc_id: str, *, event_ts: float | None = None) -> None:
        """Withdraw an article; graph facts it alone backed disappear. Raises :class:`ArticleNotFound`."""
        if doc_id not in self.articles:
            raise ArticleNotFound(f"no article {doc_id!r}")
        for chunk in self._chunks_by_doc.pop(doc_id, []):
            self.graph.remove_source(chunk.chunk_id)
        del self.articles[doc_id]
        self._reindex(event_ts)

    def upsert_record(self, record: PlatformRecord, *, event_ts: float | None = None) -> None:
        """Add or replace one platform record's facts in the graph."""
        nodes, edges = record_to_graph(record, linked_entities=frozenset(self.graph.nodes))
        self.graph.upsert_source(record.source_id, nodes, edges)
        self._changed(event_ts)

    def delete_record(self, kind: str, record_id: str, *, event_ts: float | None = None) -> None:
        self.graph.remove_source(f"record:{kind}:{record_id}")
        self._changed(event_ts)

    def apply_change(self, payload: Mapping[str, Any], *, event_ts: float) -> None:
        """One change event: ``{"op": "upsert"|"delete", "record": {...}}`` or an article op.

        Article ops: ``{"op": "publish_article", "source": "..."}`` / ``{"op": "delete_article",
        "doc_id": "..."}``. Raises :class:`InvalidQuestion` (code InvalidQuestion) on a bad payload.
        """
        op = payload.get("op")
        try:
            if op == "upsert":
                self.upsert_record(record_from_payload(payload["record"]), event_ts=event_ts)
            elif op == "delete":
                record = payload["record"]
                self.delete_record(str(record["kind"]), str(record["record_id"]), event_ts=event_ts)
            elif op == "publish_article":
                self.publish_article(str(payload["source"]), event_ts=event_ts)
            elif op == "delete_article":
                self.delete_article(str(payload["doc_id"]), event_ts=event_ts)
            else:
                raise InvalidQuestion(f"unknown change op {op!r}")
        except (KeyError, TypeError, InvalidRecord) as error:
            raise InvalidQuestion(f"invalid change event: {error}") from error

    # -- reading ------------------------------------------------------------------------------------
    def search(self, question: str, viewer: Viewer, *, k: int = 5) -> list[Hit]:
        """Plain hybrid retrieval for ``viewer`` (access-filtered before ranking)."""
        return self.index.search(self._checked(question), viewer, k=k)

    def answer(self, question: str, viewer: Viewer, *, arm: str = ROUTED) -> AnswerResult:
        """The answer to ``question`` for ``viewer`` by ``arm`` (plain, graph or routed)."""
        if arm not in ARMS:
            raise InvalidQuestion(f"unknown arm {arm!r}; use one of {list(ARMS)}")
        question = self._checked(question)
        decision, hits, records = self.retrieve(question, viewer, arm=arm, k=self.settings.context_chunks)
        chosen = decision.arm if arm == ROUTED else arm
        answer = compose(
            question,
            hits,
            arm=chosen,
            records=records,
            params=self.answer_params,
            query_tokens=self.index.query_tokens(question),
        )
        if self.generator is not None and not answer.handoff:
            answer = self.generator.generate(question, hits, answer)
        return AnswerResult(answer, decision, tuple(hits), self.index_version)

    def own_record(self, viewer: Viewer, kind: str, record_id: str) -> tuple[Node, list[Node]]:
        """A record of ``viewer`` and the records/places linked to it; :class:`RecordNotFound` otherwise.

        Another customer's record is reported exactly like a missing one.
        """
        self._refresh_records(viewer)
        node = self.graph.nodes.get(f"{kind}:{record_id}")
        if node is None or not node.access.allows(viewer):
            raise RecordNotFound(f"no {kind} {record_id!r} on your account")
        linked = []
        for edge in self.graph.visible_edges(node.node_id, viewer):
            other = self.graph.nodes[edge.target if edge.source == node.node_id else edge.source]
            if not other.node_id.startswith(("entity:", "chunk:", "customer:")):
                linked.append(other)
        return node, linked

    def retrieve(
        self, question: str, viewer: Viewer, *, arm: str = ROUTED, k: int = 4
    ) -> tuple[Route, list[Hit], tuple[Node, ...]]:
        """The route, the ``k`` best chunks and (graph, personal) the records reached, for ``arm``."""
        if arm not in ARMS:
            raise InvalidQuestion(f"unknown arm {arm!r}; use one of {list(ARMS)}")
        question = self._checked(question)
        decision = route(question, len(link_entities(question)))
        chosen = decision.arm if arm == ROUTED else arm
        if chosen != GRAPH:
            return decision, self.index.search(question, viewer, k=k), ()
        if decision.personal:
            self._refresh_records(viewer)
        found = graph_retrieve(
            self.index,
            self.graph,
            viewer,
            question,
            k=k,
            personal=decision.personal,
            aggregate=decision.aggregate,
            communities=self.communities(viewer),
            hops=self.settings.graph_hops,
            max_nodes=self.settings.graph_max_nodes,
        )
        return decision, found.hits, found.records

    def communities(self, viewer: Viewer) -> list[Community]:
        """Communities as ``viewer``'s audience sees the public knowledge (cached per index version)."""
        audience_viewer = Viewer(f"audience:{viewer.audience}", viewer.audience)
        cached = self._communities.get(viewer.audience)
        if cached is None:
            cached = detect_communities(self.graph, audience_viewer)
            self._communities[viewer.audience] = cached
        return cached

    def article(self, doc_id: str, viewer: Viewer) -> Article:
        """One help article the viewer may read; raises :class:`ArticleNotFound` otherwise."""
        article = self.articles.get(doc_id)
        if article is None or not for_audience(article.audience).allows(viewer):
            raise ArticleNotFound(f"no article {doc_id!r}")
        return article

    def list_articles(self, viewer: Viewer) -> list[Article]:
        return [a for _, a in sorted(self.articles.items()) if for_audience(a.audience).allows(viewer)]

    # -- helpers ------------------------------------------------------------------------------------
    def _checked(self, question: str) -> str:
        text = question.strip()
        if not text:
            raise InvalidQuestion("question must not be empty")
        if len(text) > self.settings.max_question_chars:
            raise InvalidQuestion(f"question longer than {self.settings.max_question_chars} characters")
        return redact(text)

    def _ingest_article(self, article: Article) -> None:
        for chunk in self._chunks_by_doc.get(article.doc_id, []):
            self.graph.remove_source(chunk.chunk_id)
        chunks = chunk_article(article, max_tokens=self.settings.chunk_max_tokens)
        for chunk in chunks:
            nodes, edges = chunk_to_graph(chunk)
            self.graph.upsert_source(chunk.chunk_id, nodes, edges)
        self.articles[article.doc_id] = article
        self._chunks_by_doc[article.doc_id] = chunks

    def _reindex(self, event_ts: float | None = None) -> None:
        self.index.replace(chunk for chunks in self._chunks_by_doc.values() for chunk in chunks)
        self._changed(event_ts)

    def _changed(self, event_ts: float | None) -> None:
        self.index_version += 1
        self._communities.clear()
        if event_ts is not None:
            self.last_event_ts = event_ts

    def _refresh_records(self, viewer: Viewer) -> None:
        if self.records is None:
            return
        for record in self.records.records_for(viewer.subject, limit=MAX_RECORDS_PER_CUSTOMER):
            if record.customer_id == viewer.subject:  # a reader bug must never plant others' data
                nodes, edges = record_to_graph(record, linked_entities=frozenset(self.graph.nodes))
                try:
                    self.graph.upsert_source(record.source_id, nodes, edges)
                except GraphInvariantBroken:  # e.g. an id another customer owns: never merge, never fail
                    log.warning("assistant.record_skipped", source=record.source_id)


def record_from_payload(data: Mapping[str, Any]) -> PlatformRecord:
    """A :class:`PlatformRecord` from a change event's JSON (raises KeyError/TypeError/InvalidRecord)."""
    links = tuple(
        (str(link[0]), str(link[1]), str(link[2]), str(link[3]) if len(link) > 3 else "")
        for link in data.get("links", [])
    )
    return PlatformRecord(
        kind=str(data["kind"]),
        record_id=str(data["record_id"]),
        customer_id=str(data["customer_id"]),
        attrs={str(k): str(v) for k, v in dict(data.get("attrs", {})).items()},
        links=links,
        also_visible_to=tuple(str(x) for x in data.get("also_visible_to", [])),
    )
