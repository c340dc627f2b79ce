"""Builds the assistant from its settings (called from bootstrap; no I/O at import)."""

from __future__ import annotations

import httpx

from hexcity.assistant.adapters.corpus import load_shipped_articles
from hexcity.assistant.adapters.llm_gateway import OpenAiCompatibleGateway
from hexcity.assistant.domain.retrieval import Embedder
from hexcity.assistant.domain.vectors import HashedNgramEmbedder
from hexcity.assistant.ports import RecordReader
from hexcity.assistant.service import AssistantService
from hexcity.assistant.settings import AssistantSettings
from hexcity.infra.logging import get_logger

log = get_logger(__name__)


def build_embedder(settings: AssistantSettings) -> Embedder:
    """The configured embedder; ``minilm`` falls back to hashed (logged) when the wheel is missing."""
    if settings.embedder == "minilm":
        from hexcity.assistant.adapters.minilm import MiniLmEmbedder, ModelUnavailable  # noqa: PLC0415

        try:
            return MiniLmEmbedder.from_package()
        except ModelUnavailable as error:
            log.warning("assistant.minilm_unavailable", detail=str(error))
    return HashedNgramEmbedder(settings.embedding_dimensions)


def build_assistant_service(
    settings: AssistantSettings,
    *,
    records: RecordReader | None = None,
    http_client: httpx.Client | None = None,
) -> AssistantService:
    """The service over the shipped corpus; with ``llm_base_url`` set, answers go through the gateway."""
    generator = None
    if settings.llm_base_url:
        client = http_client or httpx.Client(base_url=settings.llm_base_url, timeout=settings.llm_timeout_s)
        generator = OpenAiCompatibleGateway(
            client,
            model=settings.llm_model,
            response_format=settings.llm_response_format,
            max_tokens=settings.llm_max_tokens,
            timeout_s=settings.llm_timeout_s,
            api_key=settings.llm_api_key,
        )
    return AssistantService(
        load_shipped_articles(),
        build_embedder(settings),
        settings=settings,
        records=records,
        generator=generator,
    )
