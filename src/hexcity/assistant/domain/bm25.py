"""Okapi BM25 over pre-tokenised documents (Robertson & Zaragoza 2009), k1 = 1.5, b = 0.75.

Idf uses the Lucene variant ``ln(1 + (N - df + 0.5) / (df + 0.5))`` so it is never negative.
Scores are exact and deterministic; ties are broken by document index in the callers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bm25Params:
    k1: float = 1.5
    b: float = 0.75


class Bm25Index:
    """An immutable BM25 index; build a new one when documents change (cheap: ~1 ms per 100 chunks)."""

    def __init__(self, documents: Sequence[Sequence[str]], params: Bm25Params | None = None) -> None:
        self.params = params or Bm25Params()
        self._term_counts = [Counter(doc) for doc in documents]
        self._lengths = [len(doc) for doc in documents]
        self._average_length = (sum(self._lengths) / len(documents)) if documents else 0.0
        document_frequency: Counter[str] = Counter()
        for counts in self._term_counts:
            document_frequency.update(counts.keys())
        total = len(documents)
        self._idf = {
            term: math.log(1.0 + (total - df + 0.5) / (df + 0.5)) for term, df in document_frequency.items()
        }

    def __len__(self) -> int:
        return len(self._term_counts)

    def scores(self, query: Sequence[str]) -> list[float]:
        """BM25 score of every document for ``query`` (0.0 for a document sharing no term)."""
        k1, b = self.params.k1, self.params.b
        result = [0.0] * len(self._term_counts)
        terms = [term for term in dict.fromkeys(query) if term in self._idf]
        for index, counts in enumerate(self._term_counts):
            norm = k1 * (1.0 - b + b * self._lengths[index] / (self._average_length or 1.0))
            total = 0.0
            for term in terms:
                frequency = counts.get(term, 0)
                if frequency:
                    total += self._idf[term] * frequency * (k1 + 1.0) / (frequency + norm)
            result[index] = total
        return result
