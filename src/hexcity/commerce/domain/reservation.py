"""The reservation model shared by every ``ReservationEngine`` (commerce.md §2.5–2.6, §2.10).

A SKU on sale holds ``initial`` units split over ``shards`` counters. A reservation draws
``quantity`` units starting at shard ``crc32(user_id) % shards`` and falls back to the next shards
when one is short, so a buyer hears "sold out" only when every shard is empty. It is a *hold*
with a TTL (default 900 s): ``confirm`` (after payment) turns it into a sale, ``release`` (payment
failure, expiry, cancellation) puts its units back on the shards they came from. Every hold counts
against the buyer's per-SKU limit until it is released.

Invariant, checked by the reconciler: ``initial == remaining + held + confirmed`` and every counter
is ≥ 0.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from enum import StrEnum

from hexcity.commerce.errors import InvalidCommerceInput

DEFAULT_HOLD_TTL_S = 900.0
MAX_SHARDS = 64
MAX_QUANTITY = 1_000
MAX_STOCK = 1_000_000_000
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class ReserveStatus(StrEnum):
    RESERVED = "reserved"
    SOLD_OUT = "sold_out"  # every shard is empty
    INSUFFICIENT = "insufficient"  # some stock left, less than asked
    LIMIT_EXCEEDED = "limit_exceeded"
    NOT_STOCKED = "not_stocked"  # never pre-heated (or dropped)


class HoldState(StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    RELEASED = "released"


class ConfirmStatus(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"
    EXPIRED = "expired"  # past its TTL (the sweep releases it) or already released
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """What one reserve call decided. ``remaining`` is the SKU's total stock after the call."""

    status: ReserveStatus
    reservation_id: str | None
    remaining: int
    replayed: bool = False  # True when an idempotency key returned an earlier result

    @property
    def reserved(self) -> bool:
        return self.status is ReserveStatus.RESERVED


@dataclass(frozen=True, slots=True)
class Hold:
    """One reservation as stored by an engine."""

    reservation_id: str
    sku_id: str
    user_id: str
    quantity: int
    allocation: tuple[tuple[int, int], ...]  # (shard, units) it drew
    state: HoldState
    created_at_ms: int
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class StockSnapshot:
    """The engine's counters for one SKU."""

    sku_id: str
    initial: int
    remaining: int
    held: int
    confirmed: int
    shards: tuple[int, ...]
    per_user_limit: int

    @property
    def balanced(self) -> bool:
        """``initial == remaining + held + confirmed`` and nothing negative."""
        parts = (self.remaining, self.held, self.confirmed, *self.shards)
        return self.initial == self.remaining + self.held + self.confirmed and min(parts) >= 0


def validate_id(name: str, value: str) -> str:
    """Ids are 1–64 chars of ``[A-Za-z0-9_.:-]`` (they become parts of Redis keys)."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidCommerceInput(f"{name} must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return value


def validate_quantity(quantity: int) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidCommerceInput(f"quantity must be an integer in 1..{MAX_QUANTITY}")
    return quantity


def validate_preheat(stock: int, shards: int, per_user_limit: int) -> None:
    if isinstance(stock, bool) or not isinstance(stock, int) or not 0 <= stock <= MAX_STOCK:
        raise InvalidCommerceInput(f"stock must be an integer in 0..{MAX_STOCK}")
    if not 1 <= shards <= MAX_SHARDS:
        raise InvalidCommerceInput(f"shards must be in 1..{MAX_SHARDS}")
    if not 1 <= per_user_limit <= MAX_QUANTITY:
        raise InvalidCommerceInput(f"per_user_limit must be in 1..{MAX_QUANTITY}")


def validate_ttl(ttl_s: float) -> int:
    """The hold TTL in whole milliseconds (1 ms .. 1 day)."""
    if not 0.001 <= ttl_s <= 86_400:
        raise InvalidCommerceInput("hold ttl_s must be in 0.001..86400")
    return round(ttl_s * 1000)


def split_stock(stock: int, shards: int) -> list[int]:
    """``stock`` over ``shards`` counters as evenly as possible (first shards get the extra unit)."""
    base, extra = divmod(stock, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


def start_shard(user_id: str, shards: int) -> int:
    """The first shard a buyer tries: ``crc32(user_id) % shards`` (stable across processes)."""
    return zlib.crc32(user_id.encode("utf-8")) % shards


def draw(shards: list[int], start: int, quantity: int) -> list[tuple[int, int]] | None:
    """Which (shard, units) to take for ``quantity``, trying shards from ``start``; None if short.

    The same algorithm runs in the Redis Lua script; this is the reference the in-process engine
    uses and the tests compare against.
    """
    if sum(shards) < quantity:
        return None
    allocation: list[tuple[int, int]] = []
    need = quantity
    n = len(shards)
    for step in range(n):
        i = (start + step) % n
        take = min(shards[i], need)
        if take > 0:
            allocation.append((i, take))
            need -= take
        if need == 0:
            break
    return allocation


def encode_allocation(allocation: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> str:
    return ",".join(f"{shard}:{units}" for shard, units in allocation)


def decode_allocation(text: str) -> tuple[tuple[int, int], ...]:
    if not text:
        return ()
    pairs = (part.split(":") for part in text.split(","))
    return tuple((int(shard), int(units)) for shard, units in pairs)
