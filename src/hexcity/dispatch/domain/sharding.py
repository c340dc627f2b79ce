"""Candidate selection and sharding of one batching window (requirements dispatch.md §2.4, §2.6).

**Candidates.** A rider's candidates are the ``candidates_per_rider`` nearest drivers among the
drivers of its H3 res-6 zone and the zone's ring-1 neighbours, ranked by equirectangular distance
(:func:`local_distance_m`, ties: driver position in the input). Per rider zone the pool's drivers
go into a ``scipy.spatial.cKDTree`` on coordinates projected at the zone riders' mean latitude;
the tree returns ``k + 8`` nearest per rider, and the exact distances are computed on those. The
projection differs from the per-rider distance by a factor ``f ≤ max(cos φᵢ/cos φ₀, cos φ₀/cos φᵢ)``,
so every driver of the exact top k lies within ``f²·Dₖ`` in the projected metric (``Dₖ`` the k-th
projected distance). A rider whose ``k + 8``-th returned driver is not beyond that bound is
ranked over the whole pool instead. The result is the exact top k, the same as ranking the
dense rider × pool distance matrix (which the previous version did), at a fraction of the cost.
(One deliberate difference: on an exact distance tie at the k-th place, e.g. drivers stacked on
one taxi rank, the lower driver index wins as documented; the previous ``np.argpartition`` chose
an arbitrary one.)

**Shard rule** (§2.6 "our choice", written down here because the sources are silent):

1. Every rider belongs to the shard of its own res-6 zone with the candidates above.
2. A driver joins **at most one** shard per batch (the driver lock, so shards can be solved in
   parallel). With ``lock_rule="nearest_rider"`` (default) it joins the shard of the nearest rider
   that lists it as a candidate (ties: rider id); with ``lock_rule="own_zone"`` it joins the shard
   of its own zone if a rider there lists it, otherwise the neighbouring shard whose riders list it
   most often (ties: lowest zone id). The benchmark (benchmarks/results/dispatch-matching.md)
   shows ``own_zone`` loses most of the gain over greedy at zone borders. A driver nobody lists
   joins no shard. Candidate edges to a driver that went to another shard are dropped.
3. A shard over ``max_riders_per_shard`` riders is split deterministically into latitude strips
   (riders sorted by (lat, lng, id)) of at most that many riders; each driver of the shard goes to
   the strip holding its nearest candidate rider (ties: rider id). A strip with more than
   ``max_drivers_per_shard`` drivers keeps the nearest ones (distance to their nearest candidate
   rider, then driver id); the others stay free for the next window.

All steps after the candidate ranking are vectorised numpy over the flat candidate-edge list.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import h3
import numpy as np
from scipy.spatial import cKDTree

from hexcity.dispatch.domain.matching_model import (
    Driver,
    FloatArray,
    IntArray,
    MatchParams,
    Rider,
    check_unique,
)
from hexcity.kernel import EARTH_RADIUS_M

__all__ = ["Shard", "ShardPlan", "build_shards", "local_distance_m", "plan_shards", "rank_candidates"]

_EXTRA_CANDIDATES = 8  # tree over-fetch per rider; the exactness check decides, this only sets speed
_REL_SLACK = 1e-9  # relative slack on the projection bound (float rounding is ~1e-13 here)
_ABS_SLACK_RAD = 1e-12  # absolute slack, radians (6 µm)
_MIN_COS = 1e-3  # within ~0.06° of a pole the projection bound is useless: rank densely


@dataclass(frozen=True, slots=True)
class Shard:
    """One independently solvable sub-problem; ``candidates[i]`` indexes into ``drivers``."""

    zone: str
    riders: tuple[Rider, ...]
    drivers: tuple[Driver, ...]
    candidates: tuple[frozenset[int], ...]


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """A shard as index arrays into the batch's rider and driver sequences.

    ``rider_ix`` is in shard order (lat, lng, id), ``driver_ix`` in driver-id order; the candidate
    edges are ``(edge_rows[e], edge_cols[e])`` in local (shard) positions.
    """

    zone: str
    rider_ix: IntArray
    driver_ix: IntArray
    edge_rows: IntArray
    edge_cols: IntArray


def local_distance_m(
    a_lat: FloatArray, a_lng: FloatArray, b_lat: FloatArray, b_lng: FloatArray
) -> FloatArray:
    """Equirectangular distance from each ``a`` (rows) to each ``b`` (columns), metres.

    ``b`` is 1-D (a full matrix) or 2-D with one row per ``a`` (a gathered subset). Used only to
    rank candidates inside a zone and its ring (a few km), where it is within 0.1 % of the
    great-circle distance and several times cheaper than haversine. Longitudes are not wrapped.
    """
    coslat = np.cos(np.radians(a_lat))[:, None]
    b_lat2 = b_lat[None, :] if b_lat.ndim == 1 else b_lat
    b_lng2 = b_lng[None, :] if b_lng.ndim == 1 else b_lng
    dx = np.radians(b_lng2 - a_lng[:, None]) * coslat
    dy = np.radians(b_lat2 - a_lat[:, None])
    out: FloatArray = EARTH_RADIUS_M * np.sqrt(dx * dx + dy * dy)
    return out


def _top_k(cols: IntArray, dist: FloatArray, k: int) -> tuple[IntArray, FloatArray]:
    """Per row, the k smallest by (distance, column); columns index a pool sorted by driver index."""
    order = np.lexsort((cols, dist), axis=-1)[:, :k]
    return np.take_along_axis(cols, order, axis=1), np.take_along_axis(dist, order, axis=1)


def _rank_zone(
    a_lat: FloatArray, a_lng: FloatArray, p_lat: FloatArray, p_lng: FloatArray, k: int
) -> tuple[IntArray, FloatArray]:
    """Exact top-k pool positions and distances for riders ``a`` over a pool ``p`` (len(p) > k)."""
    n, m = len(a_lat), len(p_lat)
    coslat = np.cos(np.radians(a_lat))
    c0 = float(np.cos(np.radians(np.mean(a_lat))))
    w = k + _EXTRA_CANDIDATES
    if m <= w or c0 < _MIN_COS or float(coslat.min()) < _MIN_COS:
        cols = np.broadcast_to(np.arange(m, dtype=np.int64), (n, m))
        return _top_k(cols, local_distance_m(a_lat, a_lng, p_lat, p_lng), k)
    tree = cKDTree(np.column_stack((np.radians(p_lng) * c0, np.radians(p_lat))))
    proj_d, idx = tree.query(np.column_stack((np.radians(a_lng) * c0, np.radians(a_lat))), k=w)
    f = np.maximum(coslat / c0, c0 / coslat)
    bound = f * f * proj_d[:, k - 1] * (1.0 + _REL_SLACK) + _ABS_SLACK_RAD
    exact = proj_d[:, w - 1] > bound
    out_cols = np.empty((n, k), dtype=np.int64)
    out_dist = np.empty((n, k), dtype=np.float64)
    if exact.any():
        sub = np.asarray(idx[exact], dtype=np.int64)
        rows = np.flatnonzero(exact)
        dist = local_distance_m(a_lat[rows], a_lng[rows], p_lat[sub], p_lng[sub])
        out_cols[rows], out_dist[rows] = _top_k(sub, dist, k)
    if not exact.all():
        rows = np.flatnonzero(~exact)
        cols = np.broadcast_to(np.arange(m, dtype=np.int64), (len(rows), m))
        dist = local_distance_m(a_lat[rows], a_lng[rows], p_lat, p_lng)
        out_cols[rows], out_dist[rows] = _top_k(cols, dist, k)
    return out_cols, out_dist


def rank_candidates(
    riders: Sequence[Rider], drivers: Sequence[Driver], k: int
) -> tuple[IntArray, FloatArray]:
    """Each rider's k nearest drivers of its zone and ring-1 zones, by (distance, driver index).

    Returns (n_riders, k) driver indices (−1 = none) and equirectangular distances in metres
    (inf = none), nearest first. Exact: the same as ranking the full rider × pool matrix.
    """
    r_lat = np.array([r.lat for r in riders], dtype=np.float64)
    r_lng = np.array([r.lng for r in riders], dtype=np.float64)
    d_lat = np.array([d.lat for d in drivers], dtype=np.float64)
    d_lng = np.array([d.lng for d in drivers], dtype=np.float64)
    zone_ids: dict[str, int] = {}
    d_zone = np.array([zone_ids.setdefault(d.zone, len(zone_ids)) for d in drivers], dtype=np.int64)
    riders_by_zone: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(riders):
        riders_by_zone[r.zone].append(i)
    cand_j = np.full((len(riders), k), -1, dtype=np.int64)
    cand_d = np.full((len(riders), k), np.inf, dtype=np.float64)
    for zone, rs_list in riders_by_zone.items():
        ring = [zone_ids[z] for z in h3.grid_disk(zone, 1) if z in zone_ids]
        pool = np.flatnonzero(np.isin(d_zone, ring)).astype(np.int64)  # ascending driver index
        if len(pool) == 0:
            continue
        rs = np.array(rs_list, dtype=np.int64)
        a_lat, a_lng, p_lat, p_lng = r_lat[rs], r_lng[rs], d_lat[pool], d_lng[pool]
        if len(pool) <= k:
            cols = np.broadcast_to(np.arange(len(pool), dtype=np.int64), (len(rs), len(pool)))
            pos, dist = _top_k(cols, local_distance_m(a_lat, a_lng, p_lat, p_lng), k)
        else:
            pos, dist = _rank_zone(a_lat, a_lng, p_lat, p_lng, k)
        width = pos.shape[1]
        cand_j[rs, :width] = pool[pos]
        cand_d[rs, :width] = dist
    return cand_j, cand_d


def _first_per_group(group: IntArray, primary: IntArray | FloatArray, secondary: IntArray) -> IntArray:
    """Positions of the minimum per group by (primary, secondary), in group order.

    ``secondary`` must be unique within a group (rider or zone ranks are), so the winner is unique.
    Linear after one integer sort: per-group minima by ``np.minimum.reduceat``.
    """
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(group, kind="stable")
    g = group[order]
    starts = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
    counts = np.diff(np.append(starts, len(g)))
    first = primary[order]
    is_min = first == np.repeat(np.minimum.reduceat(first, starts), counts)
    second = secondary[order]
    masked = np.where(is_min, second, np.iinfo(np.int64).max)
    won = is_min & (second == np.repeat(np.minimum.reduceat(masked, starts), counts))
    out: IntArray = order[won]
    return out


def _ranks(ids: Sequence[str]) -> IntArray:
    """Position of each id in sorted (string) order."""
    out = np.empty(len(ids), dtype=np.int64)
    out[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids), dtype=np.int64)
    return out


def _lock_drivers(
    e_i: IntArray,
    e_j: IntArray,
    e_d: FloatArray,
    rider_zone: IntArray,
    rider_rank: IntArray,
    own_zone: IntArray,
    n_drivers: int,
    params: MatchParams,
) -> IntArray:
    """The zone (rank) each listed driver is locked to; −1 for drivers nobody lists (rule 2)."""
    locked = np.full(n_drivers, -1, dtype=np.int64)
    if len(e_i) == 0:
        return locked
    if params.lock_rule == "nearest_rider":
        first = _first_per_group(e_j, e_d, rider_rank[e_i])
        locked[e_j[first]] = rider_zone[e_i[first]]
        return locked
    n_zones = int(rider_zone.max()) + 1
    pairs, counts = np.unique(e_j * n_zones + rider_zone[e_i], return_counts=True)
    p_j, p_z = pairs // n_zones, pairs % n_zones
    best = _first_per_group(p_j, -counts, p_z)
    locked[p_j[best]] = p_z[best]
    at_home = p_z == own_zone[p_j]
    locked[p_j[at_home]] = p_z[at_home]
    return locked


def plan_shards(riders: Sequence[Rider], drivers: Sequence[Driver], params: MatchParams) -> list[ShardPlan]:
    """Candidate selection and sharding as index arrays (the rules in the module docstring)."""
    check_unique(riders, drivers)
    if not riders or not drivers:
        return []
    cand_j, cand_d = rank_candidates(riders, drivers, params.candidates_per_rider)
    zones = sorted({r.zone for r in riders})
    zone_rank = {z: n for n, z in enumerate(zones)}
    rider_zone = np.array([zone_rank[r.zone] for r in riders], dtype=np.int64)
    own_zone = np.array([zone_rank.get(d.zone, -1) for d in drivers], dtype=np.int64)
    rider_rank = _ranks([r.id for r in riders])
    driver_rank = _ranks([d.id for d in drivers])
    listed = cand_j >= 0
    e_i = np.nonzero(listed)[0].astype(np.int64)
    e_j, e_d = cand_j[listed], cand_d[listed]
    locked = _lock_drivers(e_i, e_j, e_d, rider_zone, rider_rank, own_zone, len(drivers), params)

    # rule 3: latitude strips per zone, shards numbered in (zone, strip) order
    r_lat = np.array([r.lat for r in riders], dtype=np.float64)
    r_lng = np.array([r.lng for r in riders], dtype=np.float64)
    by_zone = np.lexsort((rider_rank, r_lng, r_lat, rider_zone))
    per_zone = np.bincount(rider_zone, minlength=len(zones))
    zone_start = np.concatenate(([0], np.cumsum(per_zone)[:-1]))
    n_strips = -(-per_zone // params.max_riders_per_shard)
    shard_base = np.concatenate(([0], np.cumsum(n_strips)[:-1]))
    pos = np.empty(len(riders), dtype=np.int64)
    pos[by_zone] = np.arange(len(riders), dtype=np.int64) - zone_start[rider_zone[by_zone]]
    rider_shard = shard_base[rider_zone] + pos * n_strips[rider_zone] // per_zone[rider_zone]

    # each locked driver -> strip of its nearest candidate rider in its zone; cap per strip
    home = locked[e_j] == rider_zone[e_i]
    h_i, h_j, h_d = e_i[home], e_j[home], e_d[home]
    best = _first_per_group(h_j, h_d, rider_rank[h_i])
    s_j, s_shard, s_dist = h_j[best], rider_shard[h_i[best]], h_d[best]
    order = np.lexsort((driver_rank[s_j], s_dist, s_shard))
    starts = np.searchsorted(s_shard[order], s_shard[order], side="left")
    kept = order[np.arange(len(order)) - starts < params.max_drivers_per_shard]
    k_j, k_shard = s_j[kept], s_shard[kept]
    final = np.lexsort((driver_rank[k_j], k_shard))
    k_j, k_shard = k_j[final], k_shard[final]
    driver_shard = np.full(len(drivers), -1, dtype=np.int64)
    driver_shard[k_j] = k_shard
    local = np.full(len(drivers), -1, dtype=np.int64)
    local[k_j] = np.arange(len(k_j)) - np.searchsorted(k_shard, k_shard, side="left")

    # candidate edges inside one shard, in rider-local positions
    in_shard = driver_shard[e_j] == rider_shard[e_i]
    g_i, g_j = e_i[in_shard], e_j[in_shard]
    n_shards = int(n_strips.sum())
    rider_bounds = np.searchsorted(rider_shard[by_zone], np.arange(n_shards + 1))
    driver_bounds = np.searchsorted(k_shard, np.arange(n_shards + 1))
    edge_order = np.argsort(rider_shard[g_i], kind="stable")
    g_i, g_j = g_i[edge_order], g_j[edge_order]
    edge_bounds = np.searchsorted(rider_shard[g_i], np.arange(n_shards + 1))
    rider_local = np.empty(len(riders), dtype=np.int64)
    rider_local[by_zone] = np.arange(len(riders)) - rider_bounds[rider_shard[by_zone]]
    plans: list[ShardPlan] = []
    shard_zone = np.repeat(np.arange(len(zones)), n_strips)
    for s in range(n_shards):
        ea, eb = edge_bounds[s], edge_bounds[s + 1]
        plans.append(
            ShardPlan(
                zone=zones[int(shard_zone[s])],
                rider_ix=by_zone[rider_bounds[s] : rider_bounds[s + 1]],
                driver_ix=k_j[driver_bounds[s] : driver_bounds[s + 1]],
                edge_rows=rider_local[g_i[ea:eb]],
                edge_cols=local[g_j[ea:eb]],
            )
        )
    return plans


def build_shards(riders: Sequence[Rider], drivers: Sequence[Driver], params: MatchParams) -> list[Shard]:
    """Candidate selection and sharding (the rules in the module docstring). Deterministic.

    Raises :class:`~hexcity.dispatch.errors.DispatchError` ``InvalidInput`` on duplicate ids.
    """
    shards: list[Shard] = []
    for p in plan_shards(riders, drivers, params):
        cands: list[set[int]] = [set() for _ in range(len(p.rider_ix))]
        for row, col in zip(p.edge_rows.tolist(), p.edge_cols.tolist(), strict=True):
            cands[row].add(col)
        shards.append(
            Shard(
                zone=p.zone,
                riders=tuple(riders[i] for i in p.rider_ix.tolist()),
                drivers=tuple(drivers[j] for j in p.driver_ix.tolist()),
                candidates=tuple(frozenset(c) for c in cands),
            )
        )
    return shards
