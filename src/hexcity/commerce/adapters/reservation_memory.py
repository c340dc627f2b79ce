"""In-process ``ReservationEngine``: the embedded default, same semantics as the Redis engine.

Every method runs without an ``await`` between its reads and writes, so on one event loop each
call is atomic exactly like one Lua script. Not shared between processes, not durable.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hexcity.commerce.domain.reservation import (
    ConfirmStatus,
    Hold,
    HoldState,
    ReserveResult,
    ReserveStatus,
    StockSnapshot,
    draw,
    split_stock,
    start_shard,
    validate_id,
    validate_preheat,
    validate_quantity,
    validate_ttl,
)

__all__ = ["MemoryReservationEngine"]


@dataclass(slots=True)
class _Sku:
    initial: int
    shards: list[int]
    per_user_limit: int
    held: int = 0
    confirmed: int = 0
    users: dict[str, int] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    expiry: list[tuple[int, str]] = field(default_factory=list)  # heap of (expires_at_ms, id)
    idempotency: dict[str, ReserveResult] = field(default_factory=dict)


class MemoryReservationEngine:
    """Dict-backed holds; ``clock`` returns seconds (inject a fake in tests)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._skus: dict[str, _Sku] = {}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def preheat(self, sku_id: str, stock: int, *, shards: int, per_user_limit: int) -> bool:
        validate_id("sku_id", sku_id)
        validate_preheat(stock, shards, per_user_limit)
        if sku_id in self._skus:
            return False
        self._skus[sku_id] = _Sku(stock, split_stock(stock, shards), per_user_limit)
        return True

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
        validate_id("sku_id", sku_id)
        validate_id("user_id", user_id)
        validate_id("reservation_id", reservation_id)
        validate_quantity(quantity)
        ttl_ms = validate_ttl(ttl_s)
        if idempotency_key is not None:
            validate_id("idempotency_key", idempotency_key)
        sku = self._skus.get(sku_id)
        if sku is None:
            return ReserveResult(ReserveStatus.NOT_STOCKED, None, 0)
        idem = f"{user_id}|{idempotency_key}" if idempotency_key is not None else None
        if idem is not None and idem in sku.idempotency:
            return replace(sku.idempotency[idem], replayed=True)
        result = self._reserve(sku, sku_id, user_id, quantity, reservation_id, ttl_ms)
        if idem is not None:
            sku.idempotency[idem] = result
        return result

    def _reserve(
        self, sku: _Sku, sku_id: str, user_id: str, quantity: int, reservation_id: str, ttl_ms: int
    ) -> ReserveResult:
        remaining = sum(sku.shards)
        if reservation_id in sku.holds:
            return ReserveResult(ReserveStatus.RESERVED, reservation_id, remaining)
        if remaining == 0:  # sold out comes before the buyer's limit (the Redis script's fast path)
            return ReserveResult(ReserveStatus.SOLD_OUT, None, 0)
        if sku.users.get(user_id, 0) + quantity > sku.per_user_limit:
            return ReserveResult(ReserveStatus.LIMIT_EXCEEDED, None, remaining)
        allocation = draw(sku.shards, start_shard(user_id, len(sku.shards)), quantity)
        if allocation is None:
            status = ReserveStatus.SOLD_OUT if remaining == 0 else ReserveStatus.INSUFFICIENT
            return ReserveResult(status, None, remaining)
        for shard, units in allocation:
            sku.shards[shard] -= units
        now_ms = self._now_ms()
        hold = Hold(
            reservation_id,
            sku_id,
            user_id,
            quantity,
            tuple(allocation),
            HoldState.HELD,
            now_ms,
            now_ms + ttl_ms,
        )
        sku.holds[reservation_id] = hold
        sku.users[user_id] = sku.users.get(user_id, 0) + quantity
        sku.held += quantity
        heapq.heappush(sku.expiry, (hold.expires_at_ms, reservation_id))
        return ReserveResult(ReserveStatus.RESERVED, reservation_id, remaining - quantity)

    async def confirm(self, sku_id: str, reservation_id: str) -> ConfirmStatus:
        sku = self._skus.get(sku_id)
        hold = sku.holds.get(reservation_id) if sku else None
        if sku is None or hold is None:
            return ConfirmStatus.UNKNOWN
        if hold.state is HoldState.CONFIRMED:
            return ConfirmStatus.ALREADY_CONFIRMED
        if hold.state is HoldState.RELEASED or hold.expires_at_ms <= self._now_ms():
            return ConfirmStatus.EXPIRED
        sku.holds[reservation_id] = replace(hold, state=HoldState.CONFIRMED)
        sku.held -= hold.quantity
        sku.confirmed += hold.quantity
        return ConfirmStatus.CONFIRMED

    async def release(self, sku_id: str, reservation_id: str) -> bool:
        sku = self._skus.get(sku_id)
        hold = sku.holds.get(reservation_id) if sku else None
        if sku is None or hold is None or hold.state is not HoldState.HELD:
            return False
        for shard, units in hold.allocation:
            sku.shards[shard] += units
        sku.users[hold.user_id] -= hold.quantity
        sku.held -= hold.quantity
        sku.holds[reservation_id] = replace(hold, state=HoldState.RELEASED)
        return True

    async def expire_due(self, sku_id: str, *, limit: int = 1000) -> list[str]:
        sku = self._skus.get(sku_id)
        if sku is None:
            return []
        now_ms = self._now_ms()
        released: list[str] = []
        while sku.expiry and sku.expiry[0][0] <= now_ms and len(released) < limit:
            _, reservation_id = heapq.heappop(sku.expiry)
            if await self.release(sku_id, reservation_id):
                released.append(reservation_id)
        return released

    async def get(self, sku_id: str, reservation_id: str) -> Hold | None:
        sku = self._skus.get(sku_id)
        return sku.holds.get(reservation_id) if sku else None

    async def held(self, sku_id: str, *, limit: int = 1000) -> list[Hold]:
        sku = self._skus.get(sku_id)
        if sku is None:
            return []
        live = [h for h in sku.holds.values() if h.state is HoldState.HELD]
        live.sort(key=lambda h: (h.expires_at_ms, h.reservation_id))
        return live[:limit]

    async def snapshot(self, sku_id: str) -> StockSnapshot | None:
        sku = self._skus.get(sku_id)
        if sku is None:
            return None
        return StockSnapshot(
            sku_id,
            sku.initial,
            sum(sku.shards),
            sku.held,
            sku.confirmed,
            tuple(sku.shards),
            sku.per_user_limit,
        )

    async def drop(self, sku_id: str) -> None:
        self._skus.pop(sku_id, None)
