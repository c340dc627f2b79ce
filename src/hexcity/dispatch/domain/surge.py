"""Surge pricing per H3 res-7 cell, with anti-gaming (requirements dispatch.md §2.9, §2.10).

The model is exactly the one the requirements settle on (their conflicts resolved as in §2.9):

* per res-7 cell, a sliding window of **demand** (ride requests in the last ``demand_window_s``,
  5 min) and **supply** (distinct drivers *seen* in the last ``supply_window_s``, 10–15 min, not only
  those connected now: §2.10);
* ``SDR = (S + δ)/(D + ε)`` with δ = ε = 1e-4 (supply over demand: the multiplier rises as SDR
  falls, §5 pitfall 1);
* EWMA ``SDR̂ ← α·SDR + (1 − α)·SDR̂`` with α = 0.15 (first value: SDR̂ = SDR);
* ``M = 1 + (Mmax − 1)/(1 + e^{k(SDR̂ − SDR0)})`` with Mmax = 3.5, k = 3.5, SDR0 = 0.85, and
  M = 1.0 when SDR̂ ≥ 1.5;
* spatial smoothing ``M_final = (1 − β)·M + β·mean(M of the ring-1 neighbours)``, β = 0.20, a
  neighbour without data counting as 1.0;
* a published value lives ``ttl_s`` = 60 s (the Redis key's TTL): a cell not recomputed for 60 s
  reads 1.0;
* anti-gaming: when ``freeze_disconnects`` (50) distinct drivers disconnect within
  ``freeze_window_s`` (60 s) in one cell, its multiplier is frozen at the value it had for
  ``freeze_s`` (10 min) and the cell is flagged for fraud review.

Recompute every ``slide_s`` (10 s) — the caller's scheduler does that; each :meth:`recompute` is
one EWMA step. Bookkeeping is bounded per cell: demand and disconnects are timestamp deques with a
``maxlen``; supply is an insertion-ordered ``driver → last seen`` map (one entry per driver rather
than per ping), evicted from the front as it ages. Timestamps are seconds on the caller's clock
(injectable; ``time.monotonic`` by default).

Quotes lock the multiplier (rounded to 0.01) with an expiry; money is integer minor units (cents),
computed with :class:`decimal.Decimal` and rounded half-up once, never with floats.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import h3

from hexcity.dispatch.errors import DispatchError

__all__ = [
    "CellState",
    "Quote",
    "SurgeModel",
    "SurgeParams",
    "Tariff",
    "sigmoid_multiplier",
]

SURGE_RES = 7


@dataclass(frozen=True, slots=True)
class SurgeParams:
    demand_window_s: float = 300.0
    supply_window_s: float = 600.0  # §2.10: 10–15 min
    slide_s: float = 10.0
    delta: float = 1e-4
    epsilon: float = 1e-4
    alpha: float = 0.15
    m_max: float = 3.5
    k: float = 3.5
    sdr0: float = 0.85
    sdr_no_surge: float = 1.5
    beta: float = 0.20
    ttl_s: float = 60.0
    freeze_disconnects: int = 50
    freeze_window_s: float = 60.0
    freeze_s: float = 600.0
    quote_ttl_s: float = 60.0
    max_events_per_cell: int = 100_000

    def __post_init__(self) -> None:
        if not (0 < self.alpha <= 1) or not (0 <= self.beta <= 1) or self.m_max < 1:
            raise DispatchError(
                "SurgeParams: alpha in (0, 1], beta in [0, 1], m_max >= 1", code="InvalidInput"
            )
        if min(self.demand_window_s, self.supply_window_s, self.ttl_s, self.freeze_window_s) <= 0:
            raise DispatchError("SurgeParams: windows and TTL must be > 0", code="InvalidInput")
        if self.freeze_disconnects < 1 or self.max_events_per_cell < 1:
            raise DispatchError("SurgeParams: counts must be >= 1", code="InvalidInput")


def sigmoid_multiplier(sdr: float, p: SurgeParams) -> float:
    """M = 1 + (Mmax − 1)/(1 + e^{k(SDR − SDR0)}), forced to 1.0 when SDR ≥ ``sdr_no_surge``."""
    if sdr >= p.sdr_no_surge:
        return 1.0
    z = p.k * (sdr - p.sdr0)
    if z > 700.0:  # e^z overflows; the term is 0
        return 1.0
    return 1.0 + (p.m_max - 1.0) / (1.0 + math.exp(z))


@dataclass(slots=True)
class CellState:
    """Per-cell sliding windows and the last published multiplier."""

    demand_t: deque[float]
    disconnects: deque[tuple[float, str]]
    supply_seen: OrderedDict[str, float] = field(default_factory=OrderedDict)
    sdr_ewma: float | None = None
    m_raw: float = 1.0
    m_final: float = 1.0
    published_at_s: float | None = None
    frozen_until_s: float | None = None
    frozen_value: float = 1.0


@dataclass(frozen=True, slots=True)
class Tariff:
    """Fare components in minor units (cents): base + per km + per minute, with a minimum."""

    base_cents: int
    per_km_cents: int
    per_min_cents: int
    minimum_cents: int
    currency: str = "EUR"

    def __post_init__(self) -> None:
        vals = (self.base_cents, self.per_km_cents, self.per_min_cents, self.minimum_cents)
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in vals):
            raise DispatchError("Tariff amounts must be non-negative integer cents", code="InvalidInput")


@dataclass(frozen=True, slots=True)
class Quote:
    """A priced offer: the charged price equals the accepted quote while it is valid (§2.5)."""

    amount_cents: int
    currency: str
    multiplier: Decimal  # locked, two decimals
    cell: str
    issued_at_s: float
    expires_at_s: float

    def is_valid(self, now_s: float) -> bool:
        return self.issued_at_s <= now_s < self.expires_at_s


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


class SurgeModel:
    """Live S/D surge state for res-7 cells. Not thread-safe: one owner (the surge consumer)."""

    def __init__(
        self, params: SurgeParams | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.params = params or SurgeParams()
        self._clock = clock
        self._cells: dict[str, CellState] = {}
        self.flagged: dict[str, float] = {}  # cell -> time it was flagged for fraud review

    # ---- events -------------------------------------------------------------------------------
    def _state(self, cell: str) -> CellState:
        st = self._cells.get(cell)
        if st is None:
            if not h3.is_valid_cell(cell) or h3.get_resolution(cell) != SURGE_RES:
                raise DispatchError(f"not an H3 res-{SURGE_RES} cell: {cell!r}", code="InvalidInput")
            n = self.params.max_events_per_cell
            st = CellState(demand_t=deque(maxlen=n), disconnects=deque(maxlen=n))
            self._cells[cell] = st
        return st

    def _now(self, now_s: float | None) -> float:
        return self._clock() if now_s is None else now_s

    def observe_driver(self, driver_id: str, cell: str, now_s: float | None = None) -> None:
        """A driver was seen in ``cell`` (supply)."""
        t = self._now(now_s)
        seen = self._state(cell).supply_seen
        seen.pop(driver_id, None)
        seen[driver_id] = t
        if len(seen) > self.params.max_events_per_cell:
            seen.popitem(last=False)

    def observe_request(self, cell: str, now_s: float | None = None) -> None:
        """A (verified) ride request originated in ``cell`` (demand)."""
        self._state(cell).demand_t.append(self._now(now_s))

    def observe_disconnect(self, driver_id: str, cell: str, now_s: float | None = None) -> bool:
        """A driver disconnected in ``cell``; returns True when this event freezes the cell."""
        p = self.params
        t = self._now(now_s)
        st = self._state(cell)
        st.disconnects.append((t, driver_id))
        while st.disconnects and st.disconnects[0][0] <= t - p.freeze_window_s:
            st.disconnects.popleft()
        if st.frozen_until_s is not None and t < st.frozen_until_s:
            return False
        if len({d for _t, d in st.disconnects}) >= p.freeze_disconnects:
            st.frozen_value = self.multiplier(cell, t)
            st.frozen_until_s = t + p.freeze_s
            self.flagged[cell] = t
            return True
        return False

    # ---- model ----------------------------------------------------------------------------------
    def _evict(self, st: CellState, now_s: float) -> tuple[int, int]:
        p = self.params
        while st.demand_t and st.demand_t[0] <= now_s - p.demand_window_s:
            st.demand_t.popleft()
        seen = st.supply_seen
        while seen:
            oldest_id, oldest_t = next(iter(seen.items()))
            if oldest_t > now_s - p.supply_window_s:
                break
            del seen[oldest_id]
        return len(seen), len(st.demand_t)

    def recompute(self, now_s: float | None = None) -> dict[str, float]:
        """One slide: update every cell with data, publish ``M_final`` with a fresh TTL.

        Returns the published multipliers (frozen cells report their frozen value). A cell whose
        supply and demand windows are both empty is not recomputed (so it reads 1.0 once its TTL
        runs out, and it counts as "no data" for its neighbours); its state is dropped when it
        also has no recent disconnects and is not frozen.
        """
        p = self.params
        t = self._now(now_s)
        raw: dict[str, float] = {}
        for cell in list(self._cells):
            st = self._cells[cell]
            s, d = self._evict(st, t)
            if s == 0 and d == 0:  # no data: not published (reads 1.0 after the TTL)
                if not st.disconnects and not (st.frozen_until_s is not None and t < st.frozen_until_s):
                    del self._cells[cell]
                continue
            sdr = (s + p.delta) / (d + p.epsilon)
            st.sdr_ewma = sdr if st.sdr_ewma is None else p.alpha * sdr + (1.0 - p.alpha) * st.sdr_ewma
            st.m_raw = sigmoid_multiplier(st.sdr_ewma, p)
            raw[cell] = st.m_raw
        out: dict[str, float] = {}
        for cell, m in raw.items():
            st = self._cells[cell]
            nbrs = [c for c in h3.grid_ring(cell, 1) if c != cell]
            mean_n = sum(raw.get(c, 1.0) for c in nbrs) / len(nbrs) if nbrs else 1.0
            st.m_final = (1.0 - p.beta) * m + p.beta * mean_n
            st.published_at_s = t
            frozen = st.frozen_until_s is not None and t < st.frozen_until_s
            out[cell] = st.frozen_value if frozen else st.m_final
        return out

    def multiplier(self, cell: str, now_s: float | None = None) -> float:
        """The multiplier a quote would use now: frozen value, else the published one within TTL, else 1.0."""
        t = self._now(now_s)
        st = self._cells.get(cell)
        if st is None:
            return 1.0
        if st.frozen_until_s is not None and t < st.frozen_until_s:
            return st.frozen_value
        if st.published_at_s is None or t - st.published_at_s >= self.params.ttl_s:
            return 1.0
        return st.m_final

    def is_frozen(self, cell: str, now_s: float | None = None) -> bool:
        st = self._cells.get(cell)
        return st is not None and st.frozen_until_s is not None and self._now(now_s) < st.frozen_until_s

    def supply_demand(self, cell: str, now_s: float | None = None) -> tuple[int, int]:
        """(S, D) in the current windows (evicts old entries)."""
        st = self._cells.get(cell)
        return (0, 0) if st is None else self._evict(st, self._now(now_s))

    # ---- quotes ---------------------------------------------------------------------------------
    def quote(
        self, distance_m: float, duration_s: float, cell: str, now_s: float | None, tariff: Tariff
    ) -> Quote:
        """Price a trip: ``round_half_up(max(minimum, base + per_km·km + per_min·min) × M)`` cents.

        M is the cell's current multiplier rounded half-up to 0.01 and locked into the quote until
        ``quote_ttl_s`` later.
        """
        if not (math.isfinite(distance_m) and math.isfinite(duration_s)) or distance_m < 0 or duration_s < 0:
            raise DispatchError("quote needs finite, non-negative distance and duration", code="InvalidInput")
        t = self._now(now_s)
        m = _dec(self.multiplier(cell, t)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        metered = (
            Decimal(tariff.base_cents)
            + Decimal(tariff.per_km_cents) * _dec(distance_m) / Decimal(1000)
            + Decimal(tariff.per_min_cents) * _dec(duration_s) / Decimal(60)
        )
        fare = max(Decimal(tariff.minimum_cents), metered) * m
        cents = int(fare.quantize(Decimal(1), rounding=ROUND_HALF_UP))
        return Quote(cents, tariff.currency, m, cell, t, t + self.params.quote_ttl_s)
