from __future__ import annotations

import math

import numpy as np
import pytest

from hexcity.assistant.domain.bm25 import Bm25Index
from hexcity.assistant.domain.vectors import HashedNgramEmbedder, VectorIndex, ranked, reciprocal_rank_fusion


def test_bm25_matches_the_formula() -> None:
    index = Bm25Index([["refund", "wallet"], ["surge", "surge", "fare"], ["wallet"]])
    scores = index.scores(["surge"])
    idf = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    average = 6 / 3
    expected = idf * 2 * 2.5 / (2 + 1.5 * (1 - 0.75 + 0.75 * 3 / average))
    assert scores[0] == 0.0 and scores[2] == 0.0
    assert scores[1] == pytest.approx(expected, rel=1e-12)
    assert index.scores(["unknown"]) == [0.0, 0.0, 0.0]


def test_hashed_embedder_is_deterministic_and_normalised() -> None:
    embedder = HashedNgramEmbedder(64)
    first = embedder.embed(["refund to wallet", "surge pricing", ""])
    second = HashedNgramEmbedder(64).embed(["refund to wallet", "surge pricing", ""])
    assert first.dtype == np.float32 and first.shape == (3, 64)
    assert np.array_equal(first, second)
    assert np.linalg.norm(first[0]) == pytest.approx(1.0, abs=1e-6)
    assert not first[2].any()
    assert float(first[0] @ embedder.embed(["refunds to my wallet"])[0]) > float(first[0] @ first[1])
    with pytest.raises(ValueError, match="dimensions"):
        HashedNgramEmbedder(8)


def test_vector_index_scores_are_cosines() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert VectorIndex(vectors).scores(np.array([0.6, 0.8], dtype=np.float32)).tolist() == pytest.approx(
        [0.6, 0.8]
    )


def test_rrf_and_zero_dropping() -> None:
    assert ranked({"b": 1.0, "a": 1.0, "c": 0.0}, drop_zero=True) == ["a", "b"]
    assert ranked({"b": 1.0, "a": 1.0, "c": 0.0}, drop_zero=False) == ["a", "b", "c"]
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60)
    assert fused == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 62})
