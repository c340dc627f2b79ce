"""Dense retrieval pieces: the deterministic hashed n-gram embedder, a numpy brute-force index, RRF.

The hashed embedder (feature hashing of word unigrams/bigrams and character trigrams, blake2b,
signed buckets, L2-normalised) is the offline fallback when no packaged model is installed: it
needs no weights and is byte-identical across machines. Fusion is Reciprocal Rank Fusion
(Cormack, Clarke & Büttcher 2009, k = 60), with zero-score lexical hits dropped first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from hexcity.assistant.domain.text import normalize, tokenize

FloatMatrix = npt.NDArray[np.float32]
RRF_K = 60


class HashedNgramEmbedder:
    """Feature-hashing embedder: deterministic, offline, no model weights."""

    name = "hashed-ngram-v1"

    def __init__(self, dimensions: int = 512) -> None:
        if not 16 <= dimensions <= 8192:
            raise ValueError("dimensions must be within 16..8192")
        self.dimensions = dimensions

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """One L2-normalised row per text (a zero row for a text without features)."""
        matrix = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, weight in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                sign = 1.0 if value & 1 else -1.0
                matrix[row, (value >> 1) % self.dimensions] += sign * weight
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        norms[norms == 0.0] = 1.0
        normalised: FloatMatrix = (matrix / norms).astype(np.float32)
        return normalised

    @staticmethod
    def _features(text: str) -> list[tuple[str, float]]:
        words = tokenize(text)
        features = [(f"w:{word}", 1.0) for word in words]
        features += [(f"b:{a} {b}", 0.7) for a, b in pairwise(words)]
        for word in words:
            padded = f" {normalize(word)} "
            features += [(f"c:{padded[i : i + 3]}", 0.25) for i in range(len(padded) - 2)]
        return features


class VectorIndex:
    """Row-normalised vectors in one numpy matrix; cosine by brute force (fine up to ~10k chunks)."""

    def __init__(self, vectors: FloatMatrix) -> None:
        if vectors.ndim != 2:
            raise ValueError("vectors must be a 2-D matrix")
        self.vectors = vectors

    def scores(self, query_vector: FloatMatrix) -> npt.NDArray[np.float32]:
        """Cosine similarity of every row with ``query_vector`` (shape ``(dims,)``)."""
        if len(self.vectors) == 0:
            return np.zeros(0, dtype=np.float32)
        return (self.vectors @ query_vector).astype(np.float32)


def ranked(scores: Mapping[str, float], *, drop_zero: bool) -> list[str]:
    """Ids by descending score, ties by id; zero (or lower) scores dropped when ``drop_zero``."""
    items = [(key, value) for key, value in scores.items() if value > 0.0 or not drop_zero]
    return [key for key, _ in sorted(items, key=lambda item: (-item[1], item[0]))]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], *, k: int = RRF_K) -> dict[str, float]:
    """RRF score per id: the sum over rankings of ``1 / (k + rank)`` (rank from 1)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused
