"""The ports of the commerce module: what the service needs from Redis, SQL and payments."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from hexcity.commerce.domain.admission import Ticket
from hexcity.commerce.domain.reservation import ConfirmStatus, Hold, ReserveResult, StockSnapshot


class ReservationEngine(Protocol):
    """Atomic stock holds for flash sales (Redis in production, in-process by default).

    Every method is one atomic step. Implementations raise ``SystemBusy`` when their store is
    unreachable; they never answer from another source of stock.
    """

    async def preheat(self, sku_id: str, stock: int, *, shards: int, per_user_limit: int) -> bool:
        """Load the sale stock; False (nothing changed) if the SKU is already loaded."""

    async def reserve(
        self,
        sku_id: str,
        user_id: str,
        quantity: int,
        *,
        reservation_id: str,
        idempotency_key: str | None = None,
        ttl_s: float = 900.0,
    ) -> ReserveResult:
        """Hold ``quantity`` units for ``user_id``. A repeated ``idempotency_key`` (per SKU and
        user) returns the first result and changes nothing."""

    async def confirm(self, sku_id: str, reservation_id: str) -> ConfirmStatus:
        """Turn a live hold into a sale (after payment). Refused once the TTL has passed."""

    async def release(self, sku_id: str, reservation_id: str) -> bool:
        """Give a held reservation's units back; False if it is not held (idempotent)."""

    async def expire_due(self, sku_id: str, *, limit: int = 1000) -> list[str]:
        """Release up to ``limit`` holds past their TTL; their reservation ids."""

    async def get(self, sku_id: str, reservation_id: str) -> Hold | None:
        """The stored reservation (any state), or None."""

    async def held(self, sku_id: str, *, limit: int = 1000) -> list[Hold]:
        """Up to ``limit`` live holds, oldest expiry first."""

    async def snapshot(self, sku_id: str) -> StockSnapshot | None:
        """Counters of the SKU, or None if it is not loaded."""

    async def drop(self, sku_id: str) -> None:
        """Forget everything about the SKU (tests, a cancelled sale)."""


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after_s: float


class RateLimiter(Protocol):
    """Token buckets (capacity, refill rate per second); time is the store's, not the caller's."""

    async def acquire(self, key: str, *, capacity: int, refill_per_s: float, tokens: int = 1) -> RateDecision:
        """Take ``tokens`` from bucket ``key`` if it holds them."""


class WaitingRoomPort(Protocol):
    """FIFO admission per campaign with signed tokens (in-process, or shared by processes in Redis)."""

    @property
    def admissions_per_s(self) -> float:
        """The admission rate in force (as this process last saw it)."""

    async def set_rate(self, admissions_per_s: float) -> None:
        """Change the admission rate at run time."""

    async def join(self, campaign_id: str, user_id: str, now_s: float, remaining: int) -> Ticket:
        """The buyer's place (the same one on every reconnect) and a fresh signed token."""

    async def rejoin(
        self, token_text: str, campaign_id: str, user_id: str, now_s: float, remaining: int
    ) -> Ticket:
        """Reconnect with a valid token: keeps its position."""

    async def check_admitted(
        self, token_text: str, campaign_id: str, user_id: str, now_s: float, remaining: int
    ) -> None:
        """Raise ``AdmissionRequired``/``NotAdmittedYet`` unless the buyer's turn has come."""

    async def finished(self, campaign_id: str) -> None:
        """An admitted buyer's attempt completed."""

    async def admitted(self, campaign_id: str) -> int:
        """Positions admitted so far."""


class PaymentStatus(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class PaymentResult:
    status: PaymentStatus
    payment_id: str
    reason: str = ""


class PaymentGateway(Protocol):
    """What the checkout saga needs from payments (the payments module implements it later).

    Every call is idempotent on ``idempotency_key`` (``<order_id>:<attempt>``).
    """

    async def authorize(
        self, order_id: str, amount_minor: int, currency: str, *, idempotency_key: str
    ) -> PaymentResult:
        """Reserve the buyer's money."""

    async def capture(self, payment_id: str, *, idempotency_key: str) -> PaymentResult:
        """Take the authorised money."""

    async def void(self, payment_id: str, *, idempotency_key: str) -> None:
        """Cancel an authorisation that will not be captured (e.g. the hold expired meanwhile)."""
