"""Surge: sigmoid values, EWMA step, neighbour smoothing, TTL, anti-gaming freeze, quotes in cents."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal

import h3
import pytest

from hexcity.dispatch.domain.surge import SurgeModel, SurgeParams, Tariff, sigmoid_multiplier
from hexcity.dispatch.errors import DispatchError

P = SurgeParams()
CELL = h3.latlng_to_cell(49.41, 8.69, 7)
RING = sorted(c for c in h3.grid_ring(CELL, 1) if c != CELL)


def load(model: SurgeModel, cell: str, supply: int, demand: int, t: float = 0.0) -> None:
    for i in range(supply):
        model.observe_driver(f"{cell}-d{i}", cell, t)
    for _ in range(demand):
        model.observe_request(cell, t)


def test_sigmoid_exact_points_and_cap() -> None:
    assert sigmoid_multiplier(0.85, P) == 2.25  # 1 + 2.5/2
    assert sigmoid_multiplier(1.5, P) == 1.0
    assert sigmoid_multiplier(7.0, P) == 1.0
    assert sigmoid_multiplier(0.0, P) <= 3.5
    assert sigmoid_multiplier(1e-9, P) == pytest.approx(1 + 2.5 / (1 + math.exp(3.5 * (1e-9 - 0.85))))
    xs = [i / 100 for i in range(150)]
    ms = [sigmoid_multiplier(x, P) for x in xs]
    assert all(a >= b for a, b in itertools.pairwise(ms))  # S/D: rises as SDR falls
    assert all(1.0 <= m <= 3.5 for m in ms)


def test_ewma_step_exact() -> None:
    m = SurgeModel(SurgeParams(beta=0.0))
    load(m, CELL, supply=2, demand=4)
    sdr1 = (2 + 1e-4) / (4 + 1e-4)
    assert m.recompute(1.0)[CELL] == sigmoid_multiplier(sdr1, P)
    m.observe_driver("new-a", CELL, 5.0)  # 2 more distinct drivers: S=4, D=4
    m.observe_driver("new-b", CELL, 5.0)
    m.observe_driver(f"{CELL}-d0", CELL, 5.0)  # re-seen driver is not counted twice
    assert m.supply_demand(CELL, 10.0) == (4, 4)
    sdr2 = (4 + 1e-4) / (4 + 1e-4)
    ewma = 0.15 * sdr2 + 0.85 * sdr1
    assert m.recompute(10.0)[CELL] == sigmoid_multiplier(ewma, P)


def test_windows_slide() -> None:
    m = SurgeModel()
    m.observe_request(CELL, 0.0)
    m.observe_driver("a", CELL, 0.0)
    assert m.supply_demand(CELL, 299.0) == (1, 1)
    assert m.supply_demand(CELL, 300.0) == (1, 0)  # demand window 5 min
    assert m.supply_demand(CELL, 600.0) == (0, 0)  # supply window 10 min


def test_neighbour_smoothing_on_seven_cells() -> None:
    m = SurgeModel()
    load(m, CELL, supply=1, demand=4)
    loads = {RING[0]: (2, 2), RING[1]: (0, 3), RING[2]: (5, 1)}  # RING[3:] have no data
    for c, (s, d) in loads.items():
        load(m, c, s, d)
    out = m.recompute(1.0)

    def raw(s: int, d: int) -> float:
        return sigmoid_multiplier((s + 1e-4) / (d + 1e-4), P)

    nb = [raw(*loads[c]) if c in loads else 1.0 for c in h3.grid_ring(CELL, 1) if c != CELL]
    expected = 0.8 * raw(1, 4) + 0.2 * (sum(nb) / 6)
    assert out[CELL] == pytest.approx(expected, rel=1e-12, abs=0)
    assert raw(5, 1) == 1.0  # SDR ≥ 1.5 → 1.0
    assert m.multiplier(CELL, 1.0) == out[CELL]
    assert set(out) == {CELL, *loads}


def test_ttl_fallback() -> None:
    m = SurgeModel()
    load(m, CELL, supply=1, demand=5)
    v = m.recompute(0.0)[CELL]
    assert v > 1.0
    assert m.multiplier(CELL, 59.9) == v
    assert m.multiplier(CELL, 60.0) == 1.0  # not recomputed for 60 s
    m.recompute(60.0)
    assert m.multiplier(CELL, 60.0) > 1.0
    assert m.multiplier(RING[0], 1.0) == 1.0  # never seen


def _disconnect(m: SurgeModel, n: int, t0: float, spacing_s: float) -> list[bool]:
    return [m.observe_disconnect(f"g{i}", CELL, t0 + i * spacing_s) for i in range(n)]


def test_freeze_after_50_disconnects_within_60s_not_49() -> None:
    m = SurgeModel()
    load(m, CELL, supply=60, demand=50)
    before = m.recompute(0.0)[CELL]
    assert not any(_disconnect(m, 49, 1.0, 1.0))
    assert not m.is_frozen(CELL, 50.0)
    assert m.observe_disconnect("g49", CELL, 50.0)
    assert m.is_frozen(CELL, 50.0) and CELL in m.flagged
    # demand spikes, but the frozen multiplier holds for 10 min
    load(m, CELL, supply=0, demand=500, t=400.0)
    m.recompute(410.0)
    assert m.multiplier(CELL, 410.0) == before
    assert m.multiplier(CELL, 649.0) == before
    m.recompute(650.0)
    assert not m.is_frozen(CELL, 650.0)
    assert m.multiplier(CELL, 650.0) > before


def test_no_freeze_when_spread_or_repeated() -> None:
    m = SurgeModel()
    assert not any(_disconnect(m, 60, 0.0, 1.25))  # 50 events span 61.25 s > 60 s
    assert not any(m.observe_disconnect("same", CELL, float(t)) for t in range(100))
    assert not m.is_frozen(CELL, 100.0)


def test_quote_in_cents_exact() -> None:
    m = SurgeModel(SurgeParams(delta=0.0, epsilon=0.0, beta=0.0))
    load(m, CELL, supply=17, demand=20)  # SDR = 0.85 exactly → M = 2.25
    assert m.recompute(0.0)[CELL] == 2.25
    tariff = Tariff(base_cents=250, per_km_cents=120, per_min_cents=30, minimum_cents=700)
    q = m.quote(5300.0, 780.0, CELL, 1.0, tariff)  # 250 + 636 + 390 = 1276 → ×2.25 = 2871
    assert (q.amount_cents, q.multiplier, q.currency) == (2871, Decimal("2.25"), "EUR")
    assert isinstance(q.amount_cents, int)
    assert q.expires_at_s == 61.0 and q.is_valid(60.9) and not q.is_valid(61.0)
    half = m.quote(5300.0, 780.0, CELL, 1.0, Tariff(252, 120, 30, 700))  # 1278 × 2.25 = 2875.5 → 2876
    assert half.amount_cents == 2876
    short = m.quote(100.0, 60.0, RING[0], 1.0, tariff)  # 292 < minimum 700, no surge
    assert (short.amount_cents, short.multiplier) == (700, Decimal("1.00"))


def test_rejects_bad_input() -> None:
    m = SurgeModel()
    with pytest.raises(DispatchError):
        m.observe_request(h3.latlng_to_cell(49.41, 8.69, 8), 0.0)
    with pytest.raises(DispatchError):
        Tariff(1.5, 1, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(DispatchError):
        m.quote(-1.0, 0.0, CELL, 0.0, Tariff(1, 1, 1, 1))


def test_injectable_clock() -> None:
    now = [100.0]
    m = SurgeModel(clock=lambda: now[0])
    load(m, CELL, supply=1, demand=3, t=100.0)
    v = m.recompute()[CELL]
    now[0] = 150.0
    assert m.multiplier(CELL) == v
    now[0] = 161.0
    assert m.multiplier(CELL) == 1.0
