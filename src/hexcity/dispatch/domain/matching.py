"""Batched rider–driver matching (requirements dispatch.md §2.6).

Each batching window is solved as a min-cost rectangular assignment, sharded per H3 res-6 zone
(candidates and the shard rule: :mod:`hexcity.dispatch.domain.sharding`):

* cost ``C_ij = w_eta·ETA_ij + w_bearing·mismatch_ij + w_cancel·risk_i − w_tier·bonus_j`` where the
  bearing mismatch is ``(1 − cos Δ)/2 ∈ [0, 1]`` between the driver's heading and the bearing from
  the driver to the rider (0 when the driver has no heading);
* an edge is **forbidden** when the ETA is unreachable (nan), over ``max_pickup_eta_s``, or the
  driver is not among the rider's ``candidates_per_rider`` nearest drivers (the client-side
  ranking of §2.4, by equirectangular distance). Forbidden edges get a large finite cost, larger
  than any sum of allowed costs, so the solver first maximises the number of allowed pairs and
  then minimises their cost; forbidden pairs are dropped after solving;
* the solver is ``scipy.optimize.linear_sum_assignment``: the Kuhn–Munkres (Hungarian) problem
  (Kuhn 1955, Munkres 1957) solved with the shortest-augmenting-path method of Jonker–Volgenant
  (LAPJV, 1987) as modified for rectangular matrices by Crouse (IEEE TAES 2016).

Riders left unmatched go into the next window (§2.7). The ETA comes from an :data:`EtaMatrix`
port, so this module does not import the router: the lead wires ``RoutingEngine.table``.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from hexcity.dispatch.domain.matching_model import (
    ZONE_RES,
    Assignment,
    BoolArray,
    Driver,
    EtaMatrix,
    FloatArray,
    IntArray,
    MatchParams,
    MatchStats,
    Rider,
    check_unique,
)
from hexcity.dispatch.domain.sharding import Shard, build_shards, plan_shards
from hexcity.dispatch.errors import DispatchError

__all__ = [
    "ZONE_RES",
    "AdaptiveWindow",
    "AdaptiveWindowParams",
    "Assignment",
    "Driver",
    "EtaMatrix",
    "MatchParams",
    "MatchStats",
    "Rider",
    "Shard",
    "build_shards",
    "greedy_match",
    "match_batch",
    "solve_assignment",
]


@dataclass(frozen=True, slots=True)
class _Batch:
    """Per-batch arrays gathered once (positions, heading, bonus terms)."""

    r_lat: FloatArray
    r_lng: FloatArray
    r_risk: FloatArray
    d_lat: FloatArray
    d_lng: FloatArray
    d_heading: FloatArray  # nan = unknown
    d_bonus: FloatArray

    @classmethod
    def of(cls, riders: Sequence[Rider], drivers: Sequence[Driver]) -> _Batch:
        f = np.float64
        return cls(
            r_lat=np.array([r.lat for r in riders], dtype=f),
            r_lng=np.array([r.lng for r in riders], dtype=f),
            r_risk=np.array([r.cancel_risk for r in riders], dtype=f),
            d_lat=np.array([d.lat for d in drivers], dtype=f),
            d_lng=np.array([d.lng for d in drivers], dtype=f),
            d_heading=np.array(
                [np.nan if d.bearing_deg is None else d.bearing_deg for d in drivers], dtype=f
            ),
            d_bonus=np.array([d.tier_bonus for d in drivers], dtype=f),
        )


def _initial_bearing_deg(
    d_lat: FloatArray, d_lng: FloatArray, r_lat: FloatArray, r_lng: FloatArray
) -> FloatArray:
    """Bearing from each driver (rows) to each rider (columns), degrees clockwise from north."""
    p1 = np.radians(d_lat)[:, None]
    p2 = np.radians(r_lat)[None, :]
    dl = np.radians(r_lng)[None, :] - np.radians(d_lng)[:, None]
    y = np.sin(dl) * np.cos(p2)
    x = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl)
    out: FloatArray = np.degrees(np.arctan2(y, x))
    return out


def _bearing_mismatch(b: _Batch, ri: IntArray, dj: IntArray) -> FloatArray:
    """(1 − cos Δ)/2 per (rider, driver); 0 for drivers without a heading."""
    to_rider = _initial_bearing_deg(b.d_lat[dj], b.d_lng[dj], b.r_lat[ri], b.r_lng[ri])
    mis = (1.0 - np.cos(np.radians(to_rider - b.d_heading[dj][:, None]))) / 2.0
    out: FloatArray = np.nan_to_num(mis, nan=0.0).T
    return out


def solve_assignment(cost: FloatArray, allowed: BoolArray) -> list[tuple[int, int]]:
    """Min-cost rectangular assignment over the allowed edges (Crouse's LAPJV via SciPy).

    Returns (row, col) pairs: the maximum number of allowed pairs and, among those, the minimum
    total cost. Forbidden edges get a finite cost larger than any sum of allowed costs and are
    dropped after solving. Raises :class:`DispatchError` ``InvalidInput`` on mismatched shapes or
    a non-finite allowed cost.
    """
    if cost.shape != allowed.shape or cost.ndim != 2:
        raise DispatchError("cost and allowed must be 2-D and of equal shape", code="InvalidInput")
    if cost.size == 0 or not allowed.any():
        return []
    finite = cost[allowed]
    if not np.all(np.isfinite(finite)):
        raise DispatchError("allowed edges must have finite costs", code="InvalidInput")
    lo = float(finite.min())
    shifted = np.where(allowed, cost - lo, 0.0)  # >= 0 on allowed edges, same optimum
    big = (float(shifted.max()) + 1.0) * (min(cost.shape) + 1)
    c = np.where(allowed, shifted, big)
    rows, cols = linear_sum_assignment(c)
    return [(int(r), int(k)) for r, k in zip(rows, cols, strict=True) if allowed[r, k]]


def _eta_matrix(
    eta: EtaMatrix,
    riders: Sequence[Rider],
    drivers: Sequence[Driver],
    ri: IntArray,
    dj: IntArray,
) -> FloatArray:
    """ETA port for a sub-problem, validated and transposed to (riders, drivers)."""
    etas = np.asarray(
        eta([drivers[j].latlng for j in dj.tolist()], [riders[i].latlng for i in ri.tolist()]),
        dtype=np.float64,
    )
    if etas.shape != (len(dj), len(ri)):
        raise DispatchError(
            f"ETA matrix has shape {etas.shape}, expected {(len(dj), len(ri))}", code="InvalidInput"
        )
    out: FloatArray = etas.T
    return out


def _costs(
    eta_rd: FloatArray, cand: BoolArray, b: _Batch, ri: IntArray, dj: IntArray, params: MatchParams
) -> tuple[FloatArray, BoolArray]:
    """The cost matrix C and the allowed-edge mask of §2.6 for riders ``ri`` × drivers ``dj``."""
    with np.errstate(invalid="ignore"):
        allowed = cand & np.isfinite(eta_rd) & (eta_rd <= params.max_pickup_eta_s)
    cost = params.w_eta * np.nan_to_num(eta_rd, nan=0.0, posinf=0.0)
    if params.w_bearing_s:
        cost = cost + params.w_bearing_s * _bearing_mismatch(b, ri, dj)
    if params.w_cancel_s:
        cost = cost + params.w_cancel_s * b.r_risk[ri][:, None]
    if params.w_tier_s:
        cost = cost - params.w_tier_s * b.d_bonus[dj][None, :]
    return cost, allowed


def _check_one_to_one(assignments: Sequence[Assignment]) -> None:
    riders = [a.rider_id for a in assignments]
    drivers = [a.driver_id for a in assignments]
    if len(set(riders)) != len(riders):
        raise DispatchError(
            "matching invariant: a rider got two drivers", code="MatchingInvariant", status=500
        )
    if len(set(drivers)) != len(drivers):
        raise DispatchError(
            "matching invariant: a driver got two riders", code="MatchingInvariant", status=500
        )


def _restrict(
    cand: BoolArray,
    rows: IntArray,
    cols: IntArray,
    riders: Sequence[Rider],
    drivers: Sequence[Driver],
    rider_ix: IntArray,
    driver_ix: IntArray,
    allowed: Mapping[str, Collection[str]],
) -> None:
    """Clear the candidate edges of listed riders whose driver is not among their allowed ones."""
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        ok = allowed.get(riders[rider_ix[r]].id)
        if ok is not None and drivers[driver_ix[c]].id not in ok:
            cand[r, c] = False


def match_batch(
    riders: Sequence[Rider],
    drivers: Sequence[Driver],
    eta: EtaMatrix,
    params: MatchParams | None = None,
    *,
    stats: MatchStats | None = None,
    allowed_drivers: Mapping[str, Collection[str]] | None = None,
) -> list[Assignment]:
    """Solve one batching window: shard, build C, solve each shard, return the allowed pairs.

    ``allowed_drivers`` (rider id → driver ids), when given, restricts a listed rider to those
    drivers (e.g. the ones the driver index proposed, minus those who declined the trip).
    The result is one-to-one (checked, :class:`DispatchError` ``MatchingInvariant`` otherwise) and
    ordered by shard (zone id, strip) and then by the rider's position in the shard. Raises
    ``InvalidInput`` on duplicate ids or an ETA matrix of the wrong shape.
    """
    p = params or MatchParams()
    t0 = time.perf_counter()
    plans = plan_shards(riders, drivers, p)
    batch = _Batch.of(riders, drivers)
    timing = MatchStats() if stats is None else stats
    timing.candidates_s += time.perf_counter() - t0
    timing.shards += len(plans)
    for sh in plans:
        timing.max_shard_riders = max(timing.max_shard_riders, len(sh.rider_ix))
        timing.max_shard_drivers = max(timing.max_shard_drivers, len(sh.driver_ix))
    out: list[Assignment] = []
    for sh in plans:
        if len(sh.driver_ix) == 0:
            continue
        t1 = time.perf_counter()
        eta_rd = _eta_matrix(eta, riders, drivers, sh.rider_ix, sh.driver_ix)
        t2 = time.perf_counter()
        cand = np.zeros(eta_rd.shape, dtype=np.bool_)
        cand[sh.edge_rows, sh.edge_cols] = True
        if allowed_drivers is not None:
            _restrict(
                cand, sh.edge_rows, sh.edge_cols, riders, drivers, sh.rider_ix, sh.driver_ix, allowed_drivers
            )
        cost, allowed = _costs(eta_rd, cand, batch, sh.rider_ix, sh.driver_ix, p)
        t3 = time.perf_counter()
        pairs = solve_assignment(cost, allowed)
        t4 = time.perf_counter()
        timing.eta_s += t2 - t1
        timing.cost_s += t3 - t2
        timing.solve_s += t4 - t3
        ri, dj = sh.rider_ix, sh.driver_ix
        out.extend(
            Assignment(riders[ri[i]].id, drivers[dj[j]].id, float(eta_rd[i, j]), float(cost[i, j]))
            for i, j in pairs
        )
    _check_one_to_one(out)
    return out


def greedy_match(
    riders: Sequence[Rider], drivers: Sequence[Driver], eta: EtaMatrix, params: MatchParams | None = None
) -> list[Assignment]:
    """Baseline: riders in request (list) order each take the free driver with the smallest ETA.

    Global (no sharding, no candidate cap); the max pickup ETA and unreachable pairs are honoured.
    ``cost`` is reported with the same formula as :func:`match_batch` for comparison. Raises
    ``InvalidInput`` on duplicate ids or an ETA matrix of the wrong shape.
    """
    p = params or MatchParams()
    check_unique(riders, drivers)
    if not riders or not drivers:
        return []
    ri = np.arange(len(riders), dtype=np.int64)
    dj = np.arange(len(drivers), dtype=np.int64)
    eta_rd = _eta_matrix(eta, riders, drivers, ri, dj)
    cost, allowed = _costs(
        eta_rd, np.ones(eta_rd.shape, dtype=np.bool_), _Batch.of(riders, drivers), ri, dj, p
    )
    masked = np.where(allowed, eta_rd, np.inf)
    free = np.ones(len(drivers), dtype=np.bool_)
    out: list[Assignment] = []
    for i, r in enumerate(riders):
        row = np.where(free, masked[i], np.inf)
        j = int(np.argmin(row))
        if not np.isfinite(row[j]):
            continue
        free[j] = False
        out.append(Assignment(r.id, drivers[j].id, float(eta_rd[i, j]), float(cost[i, j])))
    _check_one_to_one(out)
    return out


@dataclass(frozen=True, slots=True)
class AdaptiveWindowParams:
    t_min_s: float = 2.0
    t_max_s: float = 5.0
    k_target: float = 30.0
    alpha: float = 0.2


class AdaptiveWindow:
    """Batching window T = clamp(Tmin, K_target/λ̂, Tmax), λ̂ an EWMA of the arrival rate (§2.6).

    The first observation sets λ̂ to the observed rate; later ones apply
    ``λ̂ ← α·rate + (1 − α)·λ̂``. Before any observation, or while λ̂ = 0, T = Tmax.
    """

    def __init__(self, params: AdaptiveWindowParams | None = None) -> None:
        self.params = params or AdaptiveWindowParams()
        p = self.params
        if not (0 < p.t_min_s <= p.t_max_s) or not (0 < p.alpha <= 1) or p.k_target <= 0:
            raise DispatchError("AdaptiveWindowParams out of range", code="InvalidInput")
        self.rate_per_s: float | None = None

    def observe(self, arrivals: int, dt_s: float) -> None:
        if dt_s <= 0 or arrivals < 0:
            raise DispatchError("observe needs dt_s > 0 and arrivals >= 0", code="InvalidInput")
        rate = arrivals / dt_s
        if self.rate_per_s is None:
            self.rate_per_s = rate
        else:
            a = self.params.alpha
            self.rate_per_s = a * rate + (1.0 - a) * self.rate_per_s

    def window_s(self) -> float:
        p = self.params
        if not self.rate_per_s:
            return p.t_max_s
        return min(p.t_max_s, max(p.t_min_s, p.k_target / self.rate_per_s))
