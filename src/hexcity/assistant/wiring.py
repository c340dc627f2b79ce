"""Builds the assistant from its settings (called from bootstrap; no I/O at import)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import httpx

from hexcity.assistant.adapters.corpus import load_shipped_articles
from hexcity.assistant.adapters.llm_gateway import OpenAiCompatibleGateway
from hexcity.assistant.domain.retrieval import Embedder
from hexcity.assistant.domain.vectors import HashedNgramEmbedder
from hexcity.assistant.ports import RecordReader
from hexcity.assistant.service import AssistantService
from hexcity.assistant.settings import AssistantSettings
from hexcity.infra.logging import get_logger

if TYPE_CHECKING:
    from hexcity.dispatch import TripQueries
    from hexcity.fulfillment import SqlAllocationStore
    from hexcity.payments import CustomerPayments

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


def build_record_reader(
    *,
    fulfillment_store: SqlAllocationStore | None = None,
    orders_of: Callable[[str], Sequence[str]] | None = None,
    trips: TripQueries | None = None,
    payments: CustomerPayments | None = None,
    per_source: int = 50,
) -> RecordReader | None:
    """The customer's live records from every module given (None when none is): fulfillment
    orders and shipments (``orders_of`` says which orders are the customer's), dispatch trips,
    payments and refunds, merged by :class:`CompositeRecordReader`."""
    from hexcity.assistant.adapters.composite_records import (  # noqa: PLC0415
        CompositeRecordReader,
        LinkingRecordReader,
    )

    readers: list[RecordReader] = []
    if fulfillment_store is not None:
        from hexcity.assistant.adapters.fulfillment_records import FulfillmentRecordReader  # noqa: PLC0415

        store = fulfillment_store
        readers.append(
            FulfillmentRecordReader(
                store, orders_of or (lambda customer: store.orders_of_customer(customer, 20))
            )
        )
    if trips is not None:
        from hexcity.assistant.adapters.trip_records import TripRecordReader  # noqa: PLC0415

        readers.append(TripRecordReader(trips))
    linking: list[LinkingRecordReader] = []
    if payments is not None:
        from hexcity.assistant.adapters.payment_records import PaymentRecordReader  # noqa: PLC0415

        linking.append(PaymentRecordReader(payments))
    if not readers and not linking:
        return None
    return CompositeRecordReader(readers, linking, per_source=per_source)
