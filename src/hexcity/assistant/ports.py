"""Ports of the assistant: where live records come from, the optional answer generator, and the
support actions it may trigger through the business modules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hexcity.assistant.domain.answers import Answer
from hexcity.assistant.domain.records import PlatformRecord
from hexcity.assistant.domain.retrieval import Embedder, Hit

__all__ = ["AnswerGenerator", "Embedder", "RecordReader", "RefundResult", "SupportActions"]


class RecordReader(Protocol):
    """The asker's own records, read through the business modules' public services."""

    def records_for(self, customer_id: str, *, limit: int) -> Sequence[PlatformRecord]: ...


class AnswerGenerator(Protocol):
    """Turns the extractive answer and its evidence into a final answer (LLM gateway or identity)."""

    def generate(self, question: str, hits: Sequence[Hit], extractive: Answer) -> Answer: ...


@dataclass(frozen=True, slots=True)
class RefundResult:
    """The outcome of a refund request: the refund's id in payments, what it gave back, and whether
    it is the stored result of an earlier identical request (same idempotency key)."""

    refund_id: str
    order_id: str
    payment_id: str
    amount_cents: int
    currency: str
    status: str
    replayed: bool = False


class SupportActions(Protocol):
    """Actions the assistant may trigger for the asker, through the business modules' services.

    Every method checks that the asker owns what it names (another customer's order is reported
    like a missing one, ``RecordNotFound``) and raises a ``HexcityError`` with a stable code.
    """

    async def quote_ride(
        self, rider_id: str, pickup: tuple[float, float], dropoff: tuple[float, float], product: str
    ) -> dict[str, int | float | str]:
        """A real quote: ``quote_id``, ``product``, ``base_fare_cents`` (before surge),
        ``surge_multiplier``, ``total_cents``, ``platform_fee_cents``, ``valid_for_s``, ``currency``,
        ``distance_m``, ``duration_s``."""
        ...

    async def refundable_cents(self, customer_id: str, order_id: str) -> int:
        """What is left to refund of the payment of ``order_id`` (0 when nothing is refundable)."""
        ...

    async def request_refund(
        self,
        customer_id: str,
        order_id: str,
        reason: str,
        *,
        amount_cents: int = 0,
        idempotency_key: str | None = None,
    ) -> RefundResult:
        """Refund (part of, ``amount_cents``; 0 = all that is left) the payment of an order the
        customer owns. Idempotent per ``idempotency_key`` (default: per customer, order and
        reason): a repeat returns the first refund, never a second one."""
        ...
