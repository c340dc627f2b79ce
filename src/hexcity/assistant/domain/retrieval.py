"""Plain retrieval over help chunks: BM25 and dense cosine, fused by RRF, access-filtered first.

The access rule of every chunk is applied BEFORE ranking (requirements §10), so a restricted
chunk never takes a rank, a fused score or a place in the context budget. Re-indexing re-embeds
only chunks whose content hash changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hexcity.assistant.domain.acl import Viewer, for_audience
from hexcity.assistant.domain.bm25 import Bm25Index
from hexcity.assistant.domain.documents import Chunk
from hexcity.assistant.domain.text import expand_query, tokenize
from hexcity.assistant.domain.vectors import FloatMatrix, ranked, reciprocal_rank_fusion

HYBRID, LEXICAL, DENSE = "hybrid", "bm25", "dense"
MAX_K = 100


class Embedder(Protocol):
    """Texts → L2-normalised float32 rows (the port of the embedding adapters)."""

    name: str

    def embed(self, texts: Sequence[str]) -> FloatMatrix: ...


@dataclass(frozen=True, slots=True)
class Hit:
    chunk: Chunk
    score: float  # fused RRF score (or the single arm's score)
    lexical_score: float
    dense_score: float


class KnowledgeIndex:
    """Chunks with a BM25 index and an embedding matrix; rebuilt per document change."""

    def __init__(self, embedder: Embedder, synonyms: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.embedder = embedder
        self.synonyms = dict(synonyms or {})
        self.chunks: list[Chunk] = []
        self._vector_cache: dict[str, FloatMatrix] = {}
        self._vectors: FloatMatrix = np.zeros((0, 1), dtype=np.float32)
        self._bm25 = Bm25Index([])
        self.embedded_total = 0  # how many chunk texts were embedded so far (re-embedding check)

    def replace(self, chunks: Iterable[Chunk]) -> None:
        """Index exactly ``chunks`` (sorted by id); embeds only content hashes not seen before."""
        self.chunks = sorted(chunks, key=lambda chunk: chunk.chunk_id)
        missing = [chunk for chunk in self.chunks if chunk.content_hash not in self._vector_cache]
        if missing:
            vectors = self.embedder.embed([_embedding_text(chunk) for chunk in missing])
            self.embedded_total += len(missing)
            for chunk, vector in zip(missing, vectors, strict=True):
                self._vector_cache[chunk.content_hash] = vector
        live = {chunk.content_hash for chunk in self.chunks}
        self._vector_cache = {key: value for key, value in self._vector_cache.items() if key in live}
        if self.chunks:
            self._vectors = np.stack([self._vector_cache[chunk.content_hash] for chunk in self.chunks])
        else:
            self._vectors = np.zeros((0, 1), dtype=np.float32)
        self._bm25 = Bm25Index([tokenize(_embedding_text(chunk)) for chunk in self.chunks])

    def query_tokens(self, question: str) -> list[str]:
        return expand_query(tokenize(question), self.synonyms)

    def search(self, question: str, viewer: Viewer, *, k: int = 5, arm: str = HYBRID) -> list[Hit]:
        """The ``k`` best chunks ``viewer`` may read, by ``arm`` (hybrid RRF, bm25 or dense)."""
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be within 1..{MAX_K}")
        if arm not in (HYBRID, LEXICAL, DENSE):
            raise ValueError(f"unknown arm {arm!r}")
        allowed = [i for i, chunk in enumerate(self.chunks) if for_audience(chunk.audience).allows(viewer)]
        if not allowed:
            return []
        lexical_all = self._bm25.scores(self.query_tokens(question))
        query_vector = self.embedder.embed([question])[0]
        dense_all = (
            self._vectors[allowed] @ query_vector if self._vectors.shape[1] == query_vector.shape[0] else None
        )
        lexical = {self.chunks[i].chunk_id: lexical_all[i] for i in allowed}
        dense = {
            self.chunks[i].chunk_id: float(dense_all[n]) if dense_all is not None else 0.0
            for n, i in enumerate(allowed)
        }
        if arm == LEXICAL:
            scores = {key: value for key, value in lexical.items() if value > 0.0}
        elif arm == DENSE:
            scores = dense
        else:
            scores = reciprocal_rank_fusion([ranked(lexical, drop_zero=True), ranked(dense, drop_zero=False)])
        by_id = {chunk.chunk_id: chunk for chunk in self.chunks}
        return [
            Hit(by_id[key], scores[key], lexical[key], dense[key])
            for key in ranked(scores, drop_zero=False)[:k]
        ]


def _embedding_text(chunk: Chunk) -> str:
    return " ".join(chunk.heading_path) + ". " + chunk.text
