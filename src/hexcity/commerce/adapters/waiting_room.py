"""Waiting rooms (commerce.md §2.2): in-process (the default) and shared across API processes in Redis.

Both sign the same admission tokens (:class:`AdmissionSigner`; every process of a deployment needs
the same ``admission_secret``) and follow the same rules as the pure :class:`WaitingRoom`: FIFO
positions per campaign (the same one on every reconnect), ``admitted_through`` advancing at
``admissions_per_s`` but never past ``finished + k × remaining`` nor past the queue length.

:class:`RedisWaitingRoom` keeps per campaign ``c`` (hash tag ``{c}``, one Cluster slot):

* ``p{c}:wr`` — HASH ``n`` (positions handed out), ``through`` (admitted up to, a float advanced by
  elapsed Redis ``TIME`` × rate inside the script, so every process sees the same admissions),
  ``finished``, ``updated`` (ms);
* ``p{c}:wrpos`` — HASH user → position.

Both keys have a sliding TTL (``queue_ttl_s``, default 1 day). The rate is ONE value for the
deployment (``p:wr:rate``, written by :meth:`RedisWaitingRoom.set_rate`); each process re-reads it at
most every ``rate_refresh_s`` (default 1 s) and passes it to the script, so a change reaches every
process within that time and the scripts never touch a key outside the campaign's slot. Redis
unreachable → ``SystemBusy`` (fail closed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from hexcity.commerce.domain.admission import (
    DEFAULT_ADMISSION_TTL_S,
    AdmissionSigner,
    AdmissionToken,
    Ticket,
    WaitingRoom,
)
from hexcity.commerce.domain.reservation import validate_id
from hexcity.commerce.errors import AdmissionRequired, InvalidCommerceInput, NotAdmittedYet, SystemBusy

__all__ = ["ADVANCE_LUA", "MemoryWaitingRoom", "RedisWaitingRoom"]

T = TypeVar("T")


class MemoryWaitingRoom:
    """The in-process :class:`WaitingRoom` behind the async port (one API process only)."""

    def __init__(self, room: WaitingRoom) -> None:
        self.room = room

    @property
    def admissions_per_s(self) -> float:
        return self.room.admissions_per_s

    async def set_rate(self, admissions_per_s: float) -> None:
        self.room.set_rate(admissions_per_s)

    async def join(self, campaign_id: str, user_id: str, now_s: float, remaining: int) -> Ticket:
        return self.room.join(campaign_id, user_id, now_s, remaining)

    async def rejoin(
        self, token_text: str, campaign_id: str, user_id: str, now_s: float, remaining: int
    ) -> Ticket:
        return self.room.rejoin(token_text, campaign_id, user_id, now_s, remaining)

    async def check_admitted(
        self, token_text: str, campaign_id: str, user_id: str, now_s: float, remaining: int
    ) -> None:
        self.room.check_admitted(token_text, campaign_id, user_id, now_s, remaining)

    async def finished(self, campaign_id: str) -> None:
        self.room.finished(campaign_id)

    async def admitted(self, campaign_id: str) -> int:
        return self.room.admitted(campaign_id)


# KEYS: queue hash, positions hash; ARGV: mode ('join' | 'rejoin' | 'check'), user, token position,
# rate per s, stock multiple, remaining, max queue, queue ttl ms.
# Returns {position (-1: queue full), admitted_through as a string}.
ADVANCE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000  -- ms with µs resolution
local q = redis.call('HMGET', KEYS[1], 'n', 'through', 'finished', 'updated')
local n = tonumber(q[1]) or 0
local through = tonumber(q[2]) or 0
local finished = tonumber(q[3]) or 0
local updated = tonumber(q[4]) or (now - 1000)
local mode = ARGV[1]
local pos = tonumber(ARGV[3])
if mode == 'join' then
  pos = tonumber(redis.call('HGET', KEYS[2], ARGV[2]))
  if not pos then
    if n >= tonumber(ARGV[7]) then return {-1, tostring(through)} end
    n = n + 1
    pos = n
    redis.call('HSET', KEYS[2], ARGV[2], pos)
  end
elseif mode == 'rejoin' then
  -- a token from before a Redis loss keeps its place: the queue is at least that long again
  if redis.call('HSETNX', KEYS[2], ARGV[2], pos) == 1 and pos > n then n = pos end
end
local grown = through + math.max(0, now - updated) / 1000 * tonumber(ARGV[4])
local cap = finished + tonumber(ARGV[5]) * math.max(0, tonumber(ARGV[6]))
through = math.max(through, math.min(grown, cap, n))
local fmt = string.format
redis.call('HSET', KEYS[1], 'n', n, 'through', fmt('%.6f', through), 'updated', fmt('%.3f', now))
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
return {pos, string.format('%.6f', through)}
"""

_BUSY = (
    redis_errors.MaxConnectionsError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    OSError,
)


class RedisWaitingRoom:
    """FIFO admission per campaign shared by every API process on the same Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        signer: AdmissionSigner,
        *,
        prefix: str = "hexcity:commerce:",
        admissions_per_s: float = 500.0,
        stock_multiple: float = 2.0,
        token_ttl_s: float = DEFAULT_ADMISSION_TTL_S,
        max_queue: int = 1_000_000,
        rate_refresh_s: float = 1.0,
        queue_ttl_s: float = 86_400.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_rate(admissions_per_s)
        if not 0 <= rate_refresh_s <= 60 or not 60 <= queue_ttl_s <= 30 * 86_400:
            raise InvalidCommerceInput("rate_refresh_s must be in 0..60 and queue_ttl_s in 60..30 days")
        self._redis = client
        self._signer = signer
        self._prefix = prefix
        self._default_rate = admissions_per_s
        self._multiple = stock_multiple
        self._ttl_s = token_ttl_s
        self._max_queue = max_queue
        self._refresh_s = rate_refresh_s
        self._queue_ttl_ms = int(queue_ttl_s * 1000)
        self._monotonic = monotonic
        self._advance = client.register_script(ADVANCE_LUA)
        self._rate = admissions_per_s
        self._rate_read_at: float | None = None

    @property
    def rate_key(self) -> str:
        return self._prefix + "wr:rate"

    @property
    def admissions_per_s(self) -> float:
        """The rate this process last saw (at most ``rate_refresh_s`` old)."""
        return self._rate

    async def _call(self, step: Callable[[], Awaitable[T]]) -> T:
        try:
            return await step()
        except _BUSY as exc:
            raise SystemBusy(f"waiting room store unreachable: {type(exc).__name__}") from exc

    async def set_rate(self, admissions_per_s: float) -> None:
        """Change the rate of every process (each sees it within ``rate_refresh_s``)."""
        _check_rate(admissions_per_s)
        await self._call(lambda: self._redis.set(self.rate_key, repr(float(admissions_per_s))))
        self._rate = float(admissions_per_s)
        self._rate_read_at = self._monotonic()

    async def current_rate(self) -> float:
        now = self._monotonic()
        if self._rate_read_at is None or now - self._rate_read_at >= self._refresh_s:
            found: Any = await self._call(lambda: self._redis.get(self.rate_key))
            self._rate = float(found) if found is not None else self._default_rate
            self._rate_read_at = now
        return self._rate

    def _keys(self, campaign_id: str) -> list[str]:
        base = f"{self._prefix}{{{campaign_id}}}:"
        return [base + "wr", base + "wrpos"]

    async def _run(
        self, mode: str, campaign_id: str, user_id: str, position: int, remaining: int
    ) -> tuple[int, float]:
        rate = await self.current_rate()
        args: list[Any] = [
            mode,
            user_id,
            position,
            repr(rate),
            repr(float(self._multiple)),
            max(0, remaining),
            self._max_queue,
            self._queue_ttl_ms,
        ]
        keys = self._keys(campaign_id)
        found: list[Any] = await self._call(lambda: self._advance(keys=keys, args=args))
        return int(found[0]), float(found[1])

    def _ticket(self, campaign_id: str, user_id: str, position: int, through: float, now_s: float) -> Ticket:
        token = AdmissionToken(campaign_id, user_id, position, now_s + self._ttl_s)
        admitted = position <= math.floor(through)
        eta_s = 0.0 if admitted else self._eta_s(position, through)
        return Ticket(self._signer.sign(token), position, admitted, eta_s)

    def _eta_s(self, position: int, through: float) -> float:
        if self._rate <= 0:
            return 60.0
        return max(0.001, (position - through) / self._rate)

    async def join(self, campaign_id: str, user_id: str, now_s: float, remaining: int) -> Ticket:
        """The buyer's place (the same one on every reconnect, from any process) and a fresh token."""
        validate_id("campaign_id", campaign_id)
        validate_id("user_id", user_id)
        position, through = await self._run("join", campaign_id, user_id, 0, remaining)
        if position < 0:
            raise SystemBusy("the waiting room is full")
        return self._ticket(campaign_id, user_id, position, through, now_s)

    async def rejoin(
        self, token_text: str, campaign_id: str, user_id: str, now_s: float, remaining: int
    ) -> Ticket:
        """Reconnect with a valid token: keeps its position (also after a Redis or server restart)."""
        token = self._verify(token_text, campaign_id, user_id, now_s)
        _, through = await self._run("rejoin", campaign_id, user_id, token.position, remaining)
        return self._ticket(campaign_id, user_id, token.position, through, now_s)

    async def check_admitted(
        self, token_text: str, campaign_id: str, user_id: str, now_s: float, remaining: int
    ) -> None:
        """Raise unless the token is valid for this campaign and buyer and its turn has come."""
        token = self._verify(token_text, campaign_id, user_id, now_s)
        _, through = await self._run("check", campaign_id, user_id, token.position, remaining)
        if token.position > math.floor(through):
            eta_s = self._eta_s(token.position, through)
            raise NotAdmittedYet(f"queue position {token.position} not admitted yet", retry_after_s=eta_s)

    async def finished(self, campaign_id: str) -> None:
        """An admitted buyer's attempt completed: frees room under the ``k × remaining`` cap."""
        key = self._keys(campaign_id)[0]
        await self._call(lambda: self._redis.hincrby(key, "finished", 1))

    async def admitted(self, campaign_id: str) -> int:
        key = self._keys(campaign_id)[0]
        found: Any = await self._call(lambda: self._redis.hget(key, "through"))
        return math.floor(float(found)) if found is not None else 0

    def _verify(self, token_text: str, campaign_id: str, user_id: str, now_s: float) -> AdmissionToken:
        token = self._signer.verify(token_text, now_s)
        if token.campaign_id != campaign_id or token.user_id != user_id:
            raise AdmissionRequired("admission token belongs to another campaign or buyer")
        return token


def _check_rate(admissions_per_s: float) -> None:
    if not 0 <= admissions_per_s <= 1_000_000:
        raise InvalidCommerceInput("admissions_per_s must be in 0..1e6")
