"""The candidate ranking and sharding of dispatch matching BEFORE the KD-tree rewrite (verbatim).

Kept as the same-run anchor of ``dispatch_matching_road.py`` (speed-up of the candidate phase)
and as the oracle of ``tests/unit/dispatch/test_matching_equivalence.py`` (the new
``build_shards`` must return exactly the same shards). It ranks the dense rider × ring-pool
distance matrix per zone with ``np.argpartition`` and does the driver lock and strips in Python
loops. Not used by the application.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import h3
import numpy as np
from numpy.typing import NDArray

from hexcity.dispatch.domain.matching import Driver, MatchParams, Rider, Shard
from hexcity.dispatch.errors import DispatchError
from hexcity.kernel import EARTH_RADIUS_M

__all__ = ["legacy_build_shards"]

FloatArray = NDArray[np.float64]


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


def legacy_build_shards(
    riders: Sequence[Rider], drivers: Sequence[Driver], params: MatchParams
) -> list[Shard]:
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
