"""The layers in front of the reservation (commerce.md §2.2–2.4), pure and clock-driven.

* :class:`TokenBucket` — the reference token bucket (capacity, refill per second); the Redis
  limiter runs the same arithmetic in Lua with Redis ``TIME``.
* :class:`SoldOutFlags` — in-process per-SKU "sold out" flags with a short TTL (default 2 s),
  checked before any network call; cleared early when stock returns.
* :class:`PurchaseGate` — at most ``k × remaining`` purchase attempts in flight per SKU.
* :class:`WaitingRoom` — FIFO positions per campaign, admitted at a run-time adjustable rate and
  never more than ``k × remaining`` admitted-but-unfinished buyers; each buyer holds an HMAC-signed
  admission token carrying campaign, user, queue position and expiry (default 15 min).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections import OrderedDict
from dataclasses import dataclass, field

from hexcity.commerce.errors import AdmissionRequired, InvalidCommerceInput, NotAdmittedYet, SystemBusy

DEFAULT_FLAG_TTL_S = 2.0
DEFAULT_ADMISSION_TTL_S = 900.0


@dataclass(slots=True)
class TokenBucket:
    """``tokens`` in [0, capacity], refilled continuously at ``refill_per_s``."""

    capacity: int
    refill_per_s: float
    tokens: float
    updated_at_s: float

    def take(self, now_s: float, want: int = 1) -> tuple[bool, int, float]:
        """(allowed, whole tokens left, retry_after_s) — the Lua script returns the same triple."""
        elapsed_s = max(0.0, now_s - self.updated_at_s)
        self.tokens = min(float(self.capacity), self.tokens + elapsed_s * self.refill_per_s)
        self.updated_at_s = now_s
        if self.tokens >= want:
            self.tokens -= want
            return True, math.floor(self.tokens), 0.0
        return False, math.floor(self.tokens), (want - self.tokens) / self.refill_per_s


def validate_bucket(capacity: int, refill_per_s: float, tokens: int) -> None:
    if not 1 <= capacity <= 1_000_000 or not 0 < refill_per_s <= 1_000_000:
        raise InvalidCommerceInput("bucket capacity must be in 1..1e6 and refill_per_s in (0, 1e6]")
    if not 1 <= tokens <= capacity:
        raise InvalidCommerceInput("tokens asked must be in 1..capacity")


@dataclass(slots=True)
class SoldOutFlags:
    """Per-SKU flags that expire after ``ttl_s``; bounded to ``max_skus`` entries."""

    ttl_s: float = DEFAULT_FLAG_TTL_S
    max_skus: int = 100_000
    _until: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def is_sold_out(self, sku_id: str, now_s: float) -> bool:
        until = self._until.get(sku_id)
        if until is None:
            return False
        if until <= now_s:
            del self._until[sku_id]
            return False
        return True

    def mark(self, sku_id: str, now_s: float) -> None:
        self._until[sku_id] = now_s + self.ttl_s
        self._until.move_to_end(sku_id)
        while len(self._until) > self.max_skus:
            self._until.popitem(last=False)

    def clear(self, sku_id: str) -> None:
        self._until.pop(sku_id, None)


@dataclass(slots=True)
class PurchaseGate:
    """Lets at most ``max(1, multiple × remaining)`` attempts per SKU past it at the same time."""

    multiple: float = 2.0
    _in_flight: dict[str, int] = field(default_factory=dict)
    _remaining: dict[str, int] = field(default_factory=dict)

    def set_remaining(self, sku_id: str, remaining: int) -> None:
        """The latest stock the engine reported for the SKU."""
        self._remaining[sku_id] = max(0, remaining)

    def try_enter(self, sku_id: str) -> bool:
        remaining = self._remaining.get(sku_id)
        in_flight = self._in_flight.get(sku_id, 0)
        # at least one probe in flight, so returned stock is found again after the sold-out flag expires
        if remaining is not None and in_flight >= max(1.0, self.multiple * remaining):
            return False
        self._in_flight[sku_id] = in_flight + 1
        return True

    def leave(self, sku_id: str) -> None:
        left = self._in_flight.get(sku_id, 0) - 1
        if left > 0:
            self._in_flight[sku_id] = left
        else:
            self._in_flight.pop(sku_id, None)

    def remaining(self, sku_id: str) -> int | None:
        return self._remaining.get(sku_id)

    def in_flight(self, sku_id: str) -> int:
        return self._in_flight.get(sku_id, 0)


@dataclass(frozen=True, slots=True)
class AdmissionToken:
    campaign_id: str
    user_id: str
    position: int
    expires_at_s: float


class AdmissionSigner:
    """HMAC-SHA256 signed ``campaign|user|position|expires`` tokens (URL-safe base64)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise InvalidCommerceInput("the admission secret needs at least 16 bytes")
        self._secret = secret

    def sign(self, token: AdmissionToken) -> str:
        body = f"{token.campaign_id}|{token.user_id}|{token.position}|{token.expires_at_s:.3f}".encode()
        mac = hmac.new(self._secret, body, hashlib.sha256).digest()
        return _b64(body) + "." + _b64(mac)

    def verify(self, text: str, now_s: float) -> AdmissionToken:
        """The token if the signature holds and it has not expired; else :class:`AdmissionRequired`."""
        try:
            body_text, mac_text = text.split(".")
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (ValueError, UnicodeError):
            raise AdmissionRequired("malformed admission token") from None
        if not hmac.compare_digest(mac, hmac.new(self._secret, body, hashlib.sha256).digest()):
            raise AdmissionRequired("admission token signature is invalid")
        campaign_id, user_id, position, expires = body.decode().split("|")
        token = AdmissionToken(campaign_id, user_id, int(position), float(expires))
        if token.expires_at_s <= now_s:
            raise AdmissionRequired("admission token has expired; join the queue again")
        return token


@dataclass(frozen=True, slots=True)
class Ticket:
    token: str
    position: int
    admitted: bool
    eta_s: float


@dataclass(slots=True)
class _Queue:
    positions: dict[str, int] = field(default_factory=dict)
    admitted_through: float = 0.0  # positions 1..floor(admitted_through) are admitted
    finished: int = 0  # admitted buyers whose purchase attempt completed
    updated_at_s: float | None = None


class WaitingRoom:
    """FIFO admission per campaign (in-process; positions survive reconnects through the token)."""

    def __init__(
        self,
        signer: AdmissionSigner,
        *,
        admissions_per_s: float = 500.0,
        stock_multiple: float = 2.0,
        token_ttl_s: float = DEFAULT_ADMISSION_TTL_S,
        max_queue: int = 1_000_000,
    ) -> None:
        self._signer = signer
        self._multiple = stock_multiple
        self._ttl_s = token_ttl_s
        self._max_queue = max_queue
        self._queues: dict[str, _Queue] = {}
        self.admissions_per_s = 0.0
        self.set_rate(admissions_per_s)

    def set_rate(self, admissions_per_s: float) -> None:
        """Change the admission rate now (driven by database CPU/latency)."""
        if not 0 <= admissions_per_s <= 1_000_000:
            raise InvalidCommerceInput("admissions_per_s must be in 0..1e6")
        self.admissions_per_s = admissions_per_s

    def join(self, campaign_id: str, user_id: str, now_s: float, remaining: int) -> Ticket:
        """The buyer's place (the same one on every reconnect) and a fresh signed token."""
        queue = self._queues.setdefault(campaign_id, _Queue())
        position = queue.positions.get(user_id)
        if position is None:
            if len(queue.positions) >= self._max_queue:
                raise SystemBusy("the waiting room is full")
            position = len(queue.positions) + 1
            queue.positions[user_id] = position
        return self._ticket(campaign_id, user_id, position, queue, now_s, remaining)

    def rejoin(self, token_text: str, campaign_id: str, user_id: str, now_s: float, remaining: int) -> Ticket:
        """Reconnect with a valid token: keeps its position (also after a server restart)."""
        token = self._signer.verify(token_text, now_s)
        if token.campaign_id != campaign_id or token.user_id != user_id:
            raise AdmissionRequired("admission token belongs to another campaign or buyer")
        queue = self._queues.setdefault(token.campaign_id, _Queue())
        queue.positions.setdefault(token.user_id, token.position)
        return self._ticket(token.campaign_id, token.user_id, token.position, queue, now_s, remaining)

    def check_admitted(
        self, token_text: str, campaign_id: str, user_id: str, now_s: float, remaining: int
    ) -> None:
        """Raise unless the token is valid for this campaign and buyer and its turn has come."""
        token = self._signer.verify(token_text, now_s)
        if token.campaign_id != campaign_id or token.user_id != user_id:
            raise AdmissionRequired("admission token belongs to another campaign or buyer")
        queue = self._queues.setdefault(campaign_id, _Queue())
        self._advance(queue, now_s, remaining)
        if token.position > int(queue.admitted_through):
            eta_s = self._eta_s(queue, token.position)
            raise NotAdmittedYet(f"queue position {token.position} not admitted yet", retry_after_s=eta_s)

    def finished(self, campaign_id: str) -> None:
        """An admitted buyer's attempt completed: frees room under the ``k × remaining`` cap."""
        queue = self._queues.get(campaign_id)
        if queue is not None:
            queue.finished += 1

    def admitted(self, campaign_id: str) -> int:
        queue = self._queues.get(campaign_id)
        return int(queue.admitted_through) if queue else 0

    def _ticket(
        self, campaign_id: str, user_id: str, position: int, queue: _Queue, now_s: float, remaining: int
    ) -> Ticket:
        self._advance(queue, now_s, remaining)
        token = AdmissionToken(campaign_id, user_id, position, now_s + self._ttl_s)
        admitted = position <= int(queue.admitted_through)
        eta_s = 0.0 if admitted else self._eta_s(queue, position)
        return Ticket(self._signer.sign(token), position, admitted, eta_s)

    def _advance(self, queue: _Queue, now_s: float, remaining: int) -> None:
        last_s = queue.updated_at_s if queue.updated_at_s is not None else now_s - 1.0
        grown = queue.admitted_through + max(0.0, now_s - last_s) * self.admissions_per_s
        cap = queue.finished + self._multiple * max(0, remaining)
        queue.admitted_through = max(queue.admitted_through, min(grown, cap, float(len(queue.positions))))
        queue.updated_at_s = now_s

    def _eta_s(self, queue: _Queue, position: int) -> float:
        if self.admissions_per_s <= 0:
            return 60.0
        return max(0.001, (position - queue.admitted_through) / self.admissions_per_s)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
