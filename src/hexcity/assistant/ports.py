"""Ports of the assistant: where live records come from, and the optional answer generator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hexcity.assistant.domain.answers import Answer
from hexcity.assistant.domain.records import PlatformRecord
from hexcity.assistant.domain.retrieval import Embedder, Hit

__all__ = ["AnswerGenerator", "Embedder", "RecordReader", "SupportActions"]


class RecordReader(Protocol):
    """The asker's own records, read through the business modules' public services."""

    def records_for(self, customer_id: str, *, limit: int) -> Sequence[PlatformRecord]: ...


class AnswerGenerator(Protocol):
    """Turns the extractive answer and its evidence into a final answer (LLM gateway or identity)."""

    def generate(self, question: str, hits: Sequence[Hit], extractive: Answer) -> Answer: ...


class SupportActions(Protocol):
    """Actions the assistant may trigger for the asker, through the business modules' services."""

    def quote_ride(
        self, rider_id: str, pickup: tuple[float, float], dropoff: tuple[float, float], product: str
    ) -> dict[str, int | float | str]:
        """A quote: ``quote_id``, ``product``, ``base_fare_cents``, ``surge_multiplier``, ``total_cents``,
        ``platform_fee_cents``, ``valid_for_s``."""
        ...

    def request_refund(self, customer_id: str, order_id: str, reason: str) -> str:
        """Submits a refund request for an order the customer owns; returns its id."""
        ...
