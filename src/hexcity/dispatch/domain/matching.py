"""Batched rider–driver matching (requirements dispatch.md §2.6).

Each batching window is solved as a min-cost rectangular assignment, sharded per H3 res-6 zone:

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

**Shard rule** (§2.6 "our choice", written down here because the sources are silent):

1. Every rider belongs to the shard of its own res-6 zone, and its candidates are the
   ``candidates_per_rider`` nearest drivers among the drivers of its zone and its ring-1 zones.
2. A driver joins **at most one** shard per batch (the driver lock, so shards can be solved in
   parallel). With ``lock_rule="nearest_rider"`` (default) it joins the shard of the nearest rider
   that lists it as a candidate (ties: rider id); with ``lock_rule="own_zone"`` it joins the shard
   of its own zone if a rider there lists it, otherwise the neighbouring shard whose riders list it
   most often (ties: lowest zone id). The benchmark (benchmarks/results/dispatch-matching.md)
   shows ``own_zone`` loses most of the gain over greedy at zone borders. A driver nobody lists
   joins no shard. Candidate edges to a driver that went to another shard are dropped.
3. A shard over ``max_riders_per_shard`` riders is split deterministically into latitude strips
   (riders sorted by (lat, lng, id)) of at most that many riders; each driver of the shard goes to
   the strip holding its nearest candidate rider. A strip with more than ``max_drivers_per_shard``
   drivers keeps the nearest ones (distance to their nearest candidate rider, then id); the others
   stay free for the next window.

Riders left unmatched go into the next window (§2.7). The ETA comes from an :data:`EtaMatrix`
port, so this module does not import the router: the lead wires ``RoutingEngine.table``.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import h3
import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from hexcity.dispatch.errors import DispatchError
from hexcity.kernel import EARTH_RADIUS_M, LatLng

__all__ = [
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

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

EtaMatrix = Callable[[Sequence[LatLng], Sequence[LatLng]], NDArray[np.float64]]
"""Pickup ETA port: ``eta(drivers, riders)`` → seconds, shape (n_drivers, n_riders), nan = unreachable.

Drivers are the sources and riders the destinations, as in ``RoutingEngine.table(sources,
destinations).durations_s``.
"""

ZONE_RES = 6


def _check_coords(kind: str, id_: str, lat: float, lng: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lng) and -90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        raise DispatchError(f"{kind} {id_!r}: coordinates out of range ({lat}, {lng})", code="InvalidInput")


@dataclass(frozen=True, slots=True)
class Rider:
    """A ride request waiting in the current window; ``zone`` is its H3 res-6 cell."""

    id: str
    lat: float
    lng: float
    cancel_risk: float = 0.0
    zone: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        _check_coords("rider", self.id, self.lat, self.lng)
        object.__setattr__(self, "zone", h3.latlng_to_cell(self.lat, self.lng, ZONE_RES))

    @property
    def latlng(self) -> LatLng:
        return LatLng(self.lat, self.lng)


@dataclass(frozen=True, slots=True)
class Driver:
    """A free (unlocked) driver; ``bearing_deg`` is the heading (None when unknown)."""

    id: str
    lat: float
    lng: float
    bearing_deg: float | None = None
    tier_bonus: float = 0.0
    zone: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        _check_coords("driver", self.id, self.lat, self.lng)
        object.__setattr__(self, "zone", h3.latlng_to_cell(self.lat, self.lng, ZONE_RES))

    @property
    def latlng(self) -> LatLng:
        return LatLng(self.lat, self.lng)


@dataclass(frozen=True, slots=True)
class Assignment:
    rider_id: str
    driver_id: str
    eta_s: float
    cost: float


@dataclass(frozen=True, slots=True)
class MatchParams:
    """Weights and limits of §2.6 (all configurable).

    ``w_bearing_s`` is in seconds per unit of mismatch (mismatch ∈ [0, 1]), so with the default a
    driver heading straight away from the rider costs like 60 s of extra ETA.
    """

    w_eta: float = 1.0
    w_bearing_s: float = 60.0
    w_cancel_s: float = 0.0
    w_tier_s: float = 0.0
    max_pickup_eta_s: float = 600.0
    max_riders_per_shard: int = 50
    max_drivers_per_shard: int = 100
    candidates_per_rider: int = 30
    lock_rule: Literal["own_zone", "nearest_rider"] = "nearest_rider"

    def __post_init__(self) -> None:
        if self.max_pickup_eta_s <= 0 or self.w_eta < 0 or self.w_bearing_s < 0:
            raise DispatchError(
                "MatchParams: weights must be >= 0 and max_pickup_eta_s > 0", code="InvalidInput"
            )
        if min(self.max_riders_per_shard, self.max_drivers_per_shard, self.candidates_per_rider) < 1:
            raise DispatchError("MatchParams: shard caps and candidates must be >= 1", code="InvalidInput")


@dataclass(frozen=True, slots=True)
class Shard:
    """One independently solvable sub-problem; ``candidates[i]`` indexes into ``drivers``."""

    zone: str
    riders: tuple[Rider, ...]
    drivers: tuple[Driver, ...]
    candidates: tuple[frozenset[int], ...]


@dataclass(slots=True)
class MatchStats:
    """Where the time went in :func:`match_batch` (seconds), filled when a stats object is passed."""

    candidates_s: float = 0.0
    eta_s: float = 0.0
    solve_s: float = 0.0
    shards: int = 0
    max_shard_riders: int = 0
    max_shard_drivers: int = 0


def _local_distance_m(
    a_lat: FloatArray, a_lng: FloatArray, b_lat: FloatArray, b_lng: FloatArray
) -> FloatArray:
    """Equirectangular distance matrix (rows a, columns b), metres.

    Used only to rank candidates inside a zone and its ring (a few km), where it is within 0.1 % of
    the great-circle distance and several times cheaper than haversine.
    """
    coslat = np.cos(np.radians(a_lat))[:, None]
    dx = np.radians(b_lng[None, :] - a_lng[:, None]) * coslat
    dy = np.radians(b_lat[None, :] - a_lat[:, None])
    out: FloatArray = EARTH_RADIUS_M * np.sqrt(dx * dx + dy * dy)
    return out


def _check_unique(riders: Sequence[Rider], drivers: Sequence[Driver]) -> None:
    if len({r.id for r in riders}) != len(riders):
        raise DispatchError("duplicate rider id in batch", code="InvalidInput")
    if len({d.id for d in drivers}) != len(drivers):
        raise DispatchError("duplicate driver id in batch", code="InvalidInput")


def build_shards(riders: Sequence[Rider], drivers: Sequence[Driver], params: MatchParams) -> list[Shard]:
    """Candidate selection and sharding (the rule in the module docstring). Deterministic."""
    _check_unique(riders, drivers)
    if not riders or not drivers:
        return []
    drivers_by_zone: dict[str, list[int]] = defaultdict(list)
    for j, d in enumerate(drivers):
        drivers_by_zone[d.zone].append(j)
    riders_by_zone: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(riders):
        riders_by_zone[r.zone].append(i)
    d_lat = np.array([d.lat for d in drivers], dtype=np.float64)
    d_lng = np.array([d.lng for d in drivers], dtype=np.float64)
    k = params.candidates_per_rider

    # 1. candidates per rider: k nearest among its zone and ring-1 zones (distance, then driver index)
    cand: dict[int, dict[int, float]] = {}
    for zone in sorted(riders_by_zone):
        pool = sorted(j for z in h3.grid_disk(zone, 1) for j in drivers_by_zone.get(z, ()))
        rs = riders_by_zone[zone]
        if not pool:
            for i in rs:
                cand[i] = {}
            continue
        pool_arr = np.array(pool, dtype=np.int64)
        dist = _local_distance_m(
            np.array([riders[i].lat for i in rs]),
            np.array([riders[i].lng for i in rs]),
            d_lat[pool_arr],
            d_lng[pool_arr],
        )
        if len(pool) > k:
            part = np.argpartition(dist, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(len(pool)), (len(rs), len(pool)))
        for row, i in enumerate(rs):
            cols = part[row]
            order = cols[np.lexsort((pool_arr[cols], dist[row, cols]))]
            cand[i] = {int(pool_arr[c]): float(dist[row, c]) for c in order}

    # 2. driver lock: each wanted driver joins exactly one zone's shard
    wanted_by: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    nearest: dict[int, tuple[float, str, str]] = {}
    for i, cs in cand.items():
        for j, dist_m in cs.items():
            wanted_by[j][riders[i].zone] += 1
            key = (dist_m, riders[i].id, riders[i].zone)
            if j not in nearest or key < nearest[j]:
                nearest[j] = key
    driver_zone: dict[int, str] = {}
    for j, zones in wanted_by.items():
        own = drivers[j].zone
        if params.lock_rule == "nearest_rider":
            driver_zone[j] = nearest[j][2]
        else:
            driver_zone[j] = own if own in zones else min(zones, key=lambda z: (-zones[z], z))

    # 3. per zone, cap by splitting into latitude strips
    shards: list[Shard] = []
    for zone in sorted(riders_by_zone):
        rs = sorted(riders_by_zone[zone], key=lambda i: (riders[i].lat, riders[i].lng, riders[i].id))
        n_strips = -(-len(rs) // params.max_riders_per_shard)
        strip_of_rider: dict[int, int] = {}
        for pos, i in enumerate(rs):
            strip_of_rider[i] = pos * n_strips // len(rs)
        # each driver of this zone's shard -> strip of its nearest candidate rider
        best: dict[int, tuple[float, str, int]] = {}
        for i in rs:
            for j, dist_m in cand[i].items():
                if driver_zone.get(j) != zone:
                    continue
                strip_key = (dist_m, riders[i].id, strip_of_rider[i])
                if j not in best or strip_key < best[j]:
                    best[j] = strip_key
        strip_drivers: list[list[tuple[float, str, int]]] = [[] for _ in range(n_strips)]
        for j, (dist_m, _rid, s) in best.items():
            strip_drivers[s].append((dist_m, drivers[j].id, j))
        for s in range(n_strips):
            kept = sorted(strip_drivers[s])[: params.max_drivers_per_shard]
            ds = sorted((j for _dm, _did, j in kept), key=lambda j: drivers[j].id)
            local = {j: c for c, j in enumerate(ds)}
            s_riders = [i for i in rs if strip_of_rider[i] == s]
            shards.append(
                Shard(
                    zone=zone,
                    riders=tuple(riders[i] for i in s_riders),
                    drivers=tuple(drivers[j] for j in ds),
                    candidates=tuple(frozenset(local[j] for j in cand[i] if j in local) for i in s_riders),
                )
            )
    return shards


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


def _bearing_mismatch(drivers: Sequence[Driver], riders: Sequence[Rider]) -> FloatArray:
    """(1 − cos Δ)/2 per (rider, driver); 0 for drivers without a heading."""
    heading = np.array(
        [np.nan if d.bearing_deg is None else d.bearing_deg for d in drivers], dtype=np.float64
    )
    to_rider = _initial_bearing_deg(
        np.array([d.lat for d in drivers]),
        np.array([d.lng for d in drivers]),
        np.array([r.lat for r in riders]),
        np.array([r.lng for r in riders]),
    )  # (n_drivers, n_riders)
    mis = (1.0 - np.cos(np.radians(to_rider - heading[:, None]))) / 2.0
    out: FloatArray = np.nan_to_num(mis, nan=0.0).T
    return out


def solve_assignment(cost: FloatArray, allowed: BoolArray) -> list[tuple[int, int]]:
    """Min-cost rectangular assignment over the allowed edges (Crouse's LAPJV via SciPy).

    Returns (row, col) pairs: the maximum number of allowed pairs and, among those, the minimum
    total cost. Forbidden edges get a finite cost larger than any sum of allowed costs and are
    dropped after solving.
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


def _shard_costs(
    shard: Shard,
    eta: EtaMatrix,
    params: MatchParams,
    stats: MatchStats | None,
    *,
    all_candidates: bool = False,
) -> tuple[FloatArray, FloatArray, BoolArray]:
    t0 = time.perf_counter()
    etas = np.asarray(
        eta([d.latlng for d in shard.drivers], [r.latlng for r in shard.riders]), dtype=np.float64
    )
    if etas.shape != (len(shard.drivers), len(shard.riders)):
        raise DispatchError(
            f"ETA matrix has shape {etas.shape}, expected {(len(shard.drivers), len(shard.riders))}",
            code="InvalidInput",
        )
    eta_rd = etas.T  # (riders, drivers)
    if stats is not None:
        stats.eta_s += time.perf_counter() - t0
    cand = np.full(eta_rd.shape, all_candidates, dtype=np.bool_)
    for i, cs in enumerate(shard.candidates):
        cand[i, list(cs)] = True
    with np.errstate(invalid="ignore"):
        allowed = cand & np.isfinite(eta_rd) & (eta_rd <= params.max_pickup_eta_s)
    cost = params.w_eta * np.nan_to_num(eta_rd, nan=0.0, posinf=0.0)
    if params.w_bearing_s:
        cost = cost + params.w_bearing_s * _bearing_mismatch(shard.drivers, shard.riders)
    if params.w_cancel_s:
        cost = cost + params.w_cancel_s * np.array([r.cancel_risk for r in shard.riders])[:, None]
    if params.w_tier_s:
        cost = cost - params.w_tier_s * np.array([d.tier_bonus for d in shard.drivers])[None, :]
    return eta_rd, cost, allowed


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


def match_batch(
    riders: Sequence[Rider],
    drivers: Sequence[Driver],
    eta: EtaMatrix,
    params: MatchParams | None = None,
    *,
    stats: MatchStats | None = None,
) -> list[Assignment]:
    """Solve one batching window: shard, build C, solve each shard, return the allowed pairs.

    The result is one-to-one (checked, :class:`DispatchError` ``MatchingInvariant`` otherwise) and
    ordered by shard (zone id, strip) and then by the rider's position in the shard.
    """
    p = params or MatchParams()
    t0 = time.perf_counter()
    shards = build_shards(riders, drivers, p)
    if stats is not None:
        stats.candidates_s += time.perf_counter() - t0
        stats.shards += len(shards)
        for sh in shards:
            stats.max_shard_riders = max(stats.max_shard_riders, len(sh.riders))
            stats.max_shard_drivers = max(stats.max_shard_drivers, len(sh.drivers))
    out: list[Assignment] = []
    for sh in shards:
        if not sh.drivers:
            continue
        eta_rd, cost, allowed = _shard_costs(sh, eta, p, stats)
        t1 = time.perf_counter()
        pairs = solve_assignment(cost, allowed)
        if stats is not None:
            stats.solve_s += time.perf_counter() - t1
        out.extend(
            Assignment(sh.riders[i].id, sh.drivers[j].id, float(eta_rd[i, j]), float(cost[i, j]))
            for i, j in pairs
        )
    _check_one_to_one(out)
    return out


def greedy_match(
    riders: Sequence[Rider], drivers: Sequence[Driver], eta: EtaMatrix, params: MatchParams | None = None
) -> list[Assignment]:
    """Baseline: riders in request (list) order each take the free driver with the smallest ETA.

    Global (no sharding, no candidate cap); the max pickup ETA and unreachable pairs are honoured.
    ``cost`` is reported with the same formula as :func:`match_batch` for comparison.
    """
    p = params or MatchParams()
    _check_unique(riders, drivers)
    if not riders or not drivers:
        return []
    everyone = Shard("", tuple(riders), tuple(drivers), ())
    eta_rd, cost, allowed = _shard_costs(everyone, eta, p, None, all_candidates=True)
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
