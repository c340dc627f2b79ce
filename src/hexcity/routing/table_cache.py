"""The H3 semantic cache in front of the engine's many-to-many table (routing.md §9-§12).

One :meth:`SemanticTableCache.table` request runs as a recipe:

1. map every point to its H3 cell; a pair whose cells are equal or adjacent bypasses the cache and
   is computed exactly (short trips have too large a relative error);
2. look every other pair's directed key up with ONE ``store.get_many`` (pairs sharing a key share
   one lookup);
3. on a hit, draw XFetch (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic Cache Stampede
   Prevention", VLDB 2015): when ``-δ·β·ln(U) >= remaining_ttl`` the key is recomputed in this
   request, while the request is still served the cached value;
4. compute misses, early refreshes and bypassed pairs with ONE batched ``compute`` call over the
   distinct source points x distinct destination points involved, then write back with ONE
   ``store.put_many``; unreachable pairs are cached as *no route* for ``negative_ttl_s``.

A cached value is the exact value of the *first* pair (row-major, in the request that filled the
key) whose points fell into those cells; every later pair in the same cells and sector is served
that value. Cold and warm requests therefore return the same matrix.

Single-flight (routing.md §11a): a per-key in-flight map, guarded by a lock, makes concurrent
requests in this process that miss the same keys share one computation; the others wait for it and
take its values. XFetch only lowers the odds of simultaneous expiry; the single-flight bounds
recomputation in-process. (A cross-process lease, §11b, is not implemented here.)

The cache is off by default for exactness: bootstrap wires it only when configured.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from hexcity.kernel import HexcityError, LatLng, Unavailable
from hexcity.routing.domain.cache_keys import (
    CachedCell,
    cell_key,
    cells_near,
    heading_sector,
    point_cell,
    validate_key_scope,
    xfetch_should_refresh,
)
from hexcity.routing.errors import InvalidOptions, InvalidValue, RoutingError, TooBig
from hexcity.routing.ports import CellStore, CellStoreUnavailable

F64 = npt.NDArray[np.float64]
TableCompute = Callable[[Sequence[LatLng], Sequence[LatLng]], tuple[F64, F64]]

_BYPASS = -1
STAT_NAMES = (
    "requests",
    "hits",
    "negative_hits",
    "misses",
    "bypassed",
    "xfetch_refreshes",
    "singleflight_coalesced",
    "engine_calls",
    "computed_cells",
    "store_errors",
)


class CacheFlightError(RoutingError, Unavailable):
    """The computation this request was waiting on (single-flight) failed or timed out."""

    code = "CacheFlightError"
    status = 503


@dataclass(frozen=True, slots=True)
class CachedTable:
    """A table answered through the cache; counts are matrix cells (pairs) unless noted.

    ``durations_s``/``distances_m``: float64 arrays (len(sources), len(destinations)), nan where
    unreachable. ``hits + misses + bypassed`` is the number of pairs. ``negative_hits`` are hits on a
    cached no-route; ``coalesced`` are missed pairs served by another thread's computation;
    ``xfetch_refreshes`` counts keys refreshed early; ``computed_cells`` is rows x columns of the
    one engine call (0 when there was none).
    """

    durations_s: F64
    distances_m: F64
    hits: int
    misses: int
    bypassed: int
    xfetch_refreshes: int
    computed_cells: int
    negative_hits: int = 0
    coalesced: int = 0


class _Flight:
    """One in-progress computation of a set of keys; waiters read ``cells`` after ``done``."""

    __slots__ = ("cells", "done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.cells: dict[str, CachedCell] = {}
        self.error: BaseException | None = None


@dataclass(slots=True)
class _Plan:
    """The key layout of one request: which pairs bypass, and which key every other pair uses."""

    keys: list[str]
    key_first_pair: list[tuple[int, int]]
    pair_key: npt.NDArray[np.int64]  # (n, m): index into keys, or _BYPASS


class SemanticTableCache:
    """A directed H3-cell cache in front of an exact many-to-many ``compute``.

    Args:
        compute: the engine's exact table; returns (durations_s, distances_m) float64 arrays of shape
            (len(sources), len(destinations)), nan where unreachable.
        store: where cells live (:class:`~hexcity.routing.adapters.cache_stores.MemoryCellStore` or
            :class:`~hexcity.routing.adapters.cache_stores.RedisCellStore`).
        graph_version, profile: key scope; a new graph version never hits old entries.
        resolution: H3 resolution of the key cells (9 by default, ~0.105 km² cells).
        ttl_s: lifetime of a cached route, seconds. negative_ttl_s: lifetime of a cached no-route.
        beta: XFetch β (>= 0; 0 turns early refresh off).
        clock: epoch seconds (fake it in tests). rng: seeded source of the XFetch draws.
        flight_wait_timeout_s: how long a request waits for another thread's computation.
        max_table_cells: the largest sources x destinations accepted.

    Raises:
        InvalidValue: bad key scope, resolution, TTLs, β or limits.
    """

    def __init__(
        self,
        compute: TableCompute,
        store: CellStore,
        graph_version: str,
        profile: str,
        *,
        resolution: int = 9,
        ttl_s: float = 86_400.0,
        negative_ttl_s: float = 120.0,
        beta: float = 1.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        flight_wait_timeout_s: float = 30.0,
        max_table_cells: int = 1_000_000,
    ) -> None:
        validate_key_scope(graph_version, profile)
        if not 0 <= resolution <= 15:
            raise InvalidValue(f"H3 resolution must be in 0..15, got {resolution}")
        if not (ttl_s > 0 and negative_ttl_s >= 0 and beta >= 0 and flight_wait_timeout_s > 0):
            raise InvalidValue("ttl_s and flight_wait_timeout_s must be > 0; negative_ttl_s, beta >= 0")
        if max_table_cells < 1:
            raise InvalidValue(f"max_table_cells must be >= 1, got {max_table_cells}")
        self._compute = compute
        self._store = store
        self.graph_version = graph_version
        self.profile = profile
        self.resolution = resolution
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.beta = beta
        self._clock = clock
        self._rng = rng if rng is not None else random.Random(0)
        self.flight_wait_timeout_s = flight_wait_timeout_s
        self.max_table_cells = max_table_cells
        self._lock = threading.Lock()
        self._in_flight: dict[str, _Flight] = {}
        self._stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)

    @property
    def stats(self) -> Mapping[str, int]:
        """A read-only snapshot of the counters since construction (pairs, except engine_calls,
        computed_cells, xfetch_refreshes (keys) and store_errors (calls))."""
        with self._lock:
            return MappingProxyType(dict(self._stats))

    def table(
        self,
        sources: Sequence[LatLng],
        destinations: Sequence[LatLng],
        *,
        source_bearings_deg: Sequence[float | None] | None = None,
    ) -> CachedTable:
        """Durations (s) and distances (m) for every source x destination, through the cache.

        ``source_bearings_deg``: optional heading of each source (None = static point), which picks
        the key's heading sector; without it every source is static.

        Raises:
            InvalidValue: a coordinate out of range or a non-finite bearing.
            InvalidOptions: ``source_bearings_deg`` has a different length than ``sources``.
            TooBig: more than ``max_table_cells`` pairs.
            CacheFlightError: another thread's shared computation failed or timed out.
            HexcityError: ``compute`` returned arrays of the wrong shape.
        """
        n_rows, n_cols = len(sources), len(destinations)
        if n_rows * n_cols > self.max_table_cells:
            raise TooBig(f"{n_rows}x{n_cols} exceeds {self.max_table_cells} table cells")
        if source_bearings_deg is not None and len(source_bearings_deg) != n_rows:
            raise InvalidOptions("source_bearings_deg must have one entry per source")
        durations_s = np.full((n_rows, n_cols), np.nan)
        distances_m = np.full((n_rows, n_cols), np.nan)
        if n_rows == 0 or n_cols == 0:
            return CachedTable(durations_s, distances_m, 0, 0, 0, 0, 0)
        sectors = [heading_sector(b) for b in (source_bearings_deg or [None] * n_rows)]
        plan = self._plan(sources, destinations, sectors)
        n_keys = len(plan.keys)
        bypass_mask = plan.pair_key == _BYPASS
        pairs_per_key = np.bincount(plan.pair_key[~bypass_mask], minlength=n_keys)

        found = self._lookup(plan.keys)
        now_s = self._clock()
        served: list[CachedCell | None] = list(found)
        missing = [k for k in range(n_keys) if found[k] is None]
        early = [
            k for k in range(n_keys) if (cell := found[k]) is not None and self._draw_refresh(cell, now_s)
        ]

        owned, waits, flight = self._claim(plan.keys, missing, early)
        computed_cells = self._compute_owned(
            sources=sources,
            destinations=destinations,
            plan=plan,
            owned=owned,
            flight=flight,
            bypass_mask=bypass_mask,
            durations_s=durations_s,
            distances_m=distances_m,
        )
        for k in missing:
            served[k] = flight.cells[plan.keys[k]] if k not in waits else None
        coalesced = self._await(plan.keys, waits, served)

        key_duration = np.array([_or_nan(c.duration_s if c else None) for c in served], dtype=np.float64)
        key_distance = np.array([_or_nan(c.distance_m if c else None) for c in served], dtype=np.float64)
        cached_mask = ~bypass_mask
        durations_s[cached_mask] = key_duration[plan.pair_key[cached_mask]]
        distances_m[cached_mask] = key_distance[plan.pair_key[cached_mask]]

        hit_keys = [k for k in range(n_keys) if found[k] is not None]
        hits = int(pairs_per_key[hit_keys].sum()) if hit_keys else 0
        negative_keys = [k for k in hit_keys if (c := found[k]) is not None and c.no_route]
        negative_hits = int(pairs_per_key[negative_keys].sum()) if negative_keys else 0
        coalesced_pairs = int(pairs_per_key[coalesced].sum()) if coalesced else 0
        bypassed = int(bypass_mask.sum())
        result = CachedTable(
            durations_s=durations_s,
            distances_m=distances_m,
            hits=hits,
            misses=n_rows * n_cols - hits - bypassed,
            bypassed=bypassed,
            xfetch_refreshes=sum(1 for k in early if plan.keys[k] in owned),
            computed_cells=computed_cells,
            negative_hits=negative_hits,
            coalesced=coalesced_pairs,
        )
        self._count(result)
        return result

    # -- steps -------------------------------------------------------------------------------------

    def _plan(self, sources: Sequence[LatLng], destinations: Sequence[LatLng], sectors: list[str]) -> _Plan:
        """Group points by (cell, sector) / cell and give every non-near group pair one key."""
        src_group: dict[tuple[str, str], int] = {}
        src_first: list[int] = []
        src_of_row = np.empty(len(sources), dtype=np.int64)
        for i, point in enumerate(sources):
            group = (point_cell(point, self.resolution), sectors[i])
            g = src_group.setdefault(group, len(src_group))
            if g == len(src_first):
                src_first.append(i)
            src_of_row[i] = g
        dst_group: dict[str, int] = {}
        dst_first: list[int] = []
        dst_of_col = np.empty(len(destinations), dtype=np.int64)
        for j, point in enumerate(destinations):
            h = dst_group.setdefault(point_cell(point, self.resolution), len(dst_group))
            if h == len(dst_first):
                dst_first.append(j)
            dst_of_col[j] = h
        group_key = np.full((len(src_group), len(dst_group)), _BYPASS, dtype=np.int64)
        keys: list[str] = []
        first_pair: list[tuple[int, int]] = []
        for (origin_cell, sector), g in src_group.items():
            for dest_cell, h in dst_group.items():
                if cells_near(origin_cell, dest_cell):
                    continue
                group_key[g, h] = len(keys)
                keys.append(cell_key(self.graph_version, self.profile, origin_cell, dest_cell, sector))
                first_pair.append((src_first[g], dst_first[h]))
        pair_key = group_key[src_of_row[:, None], dst_of_col[None, :]]
        return _Plan(keys=keys, key_first_pair=first_pair, pair_key=pair_key)

    def _lookup(self, keys: list[str]) -> list[CachedCell | None]:
        """One ``get_many``; an unavailable store reads as all misses."""
        if not keys:
            return []
        try:
            found = self._store.get_many(keys)
        except CellStoreUnavailable:
            with self._lock:
                self._stats["store_errors"] += 1
            return [None] * len(keys)
        if len(found) != len(keys):
            raise HexcityError(f"cell store returned {len(found)} values for {len(keys)} keys")
        return found

    def _draw_refresh(self, cell: CachedCell, now_s: float) -> bool:
        """XFetch: refresh this hit now? U is drawn in (0, 1] from the seeded rng."""
        if self.beta == 0:
            return False
        u = 1.0 - self._rng.random()
        return xfetch_should_refresh(max(cell.compute_s, 0.0), self.beta, cell.remaining_ttl_s(now_s), u)

    def _claim(
        self, keys: list[str], missing: list[int], early: list[int]
    ) -> tuple[set[str], dict[int, _Flight], _Flight]:
        """Under the lock, take ownership of free missing/early keys; wait on missing keys in flight.

        An early refresh of a key another thread is already computing is simply dropped.
        """
        flight = _Flight()
        owned: set[str] = set()
        waits: dict[int, _Flight] = {}
        with self._lock:
            for k in missing:
                other = self._in_flight.get(keys[k])
                if other is not None:
                    waits[k] = other
                else:
                    owned.add(keys[k])
                    self._in_flight[keys[k]] = flight
            for k in early:
                if keys[k] not in self._in_flight:
                    owned.add(keys[k])
                    self._in_flight[keys[k]] = flight
        return owned, waits, flight

    def _compute_owned(
        self,
        *,
        sources: Sequence[LatLng],
        destinations: Sequence[LatLng],
        plan: _Plan,
        owned: set[str],
        flight: _Flight,
        bypass_mask: npt.NDArray[np.bool_],
        durations_s: F64,
        distances_m: F64,
    ) -> int:
        """ONE engine call for owned keys and bypassed pairs, ONE write-back; always ends the flight.

        Fills bypassed pairs of ``durations_s``/``distances_m`` in place and ``flight.cells``.
        Returns the number of cells the engine computed.
        """
        try:
            owned_idx = [k for k, key in enumerate(plan.keys) if key in owned]
            bypass_rows, bypass_cols = np.nonzero(bypass_mask)
            rows = sorted({plan.key_first_pair[k][0] for k in owned_idx} | set(bypass_rows.tolist()))
            cols = sorted({plan.key_first_pair[k][1] for k in owned_idx} | set(bypass_cols.tolist()))
            if not rows:
                return 0
            started_s = self._clock()
            sub_durations, sub_distances = self._call_engine(
                [sources[r] for r in rows], [destinations[c] for c in cols]
            )
            cached_at_s = self._clock()
            compute_s = max(cached_at_s - started_s, 0.0)
            if bypass_rows.size:
                full_d = np.full(durations_s.shape, np.nan)
                full_m = np.full(distances_m.shape, np.nan)
                full_d[np.ix_(rows, cols)] = sub_durations
                full_m[np.ix_(rows, cols)] = sub_distances
                durations_s[bypass_mask] = full_d[bypass_mask]
                distances_m[bypass_mask] = full_m[bypass_mask]
            row_pos = {r: p for p, r in enumerate(rows)}
            col_pos = {c: p for p, c in enumerate(cols)}
            items: list[tuple[str, CachedCell]] = []
            for k in owned_idx:
                i, j = plan.key_first_pair[k]
                cell = self._cell(
                    sub_durations[row_pos[i], col_pos[j]],
                    sub_distances[row_pos[i], col_pos[j]],
                    compute_s,
                    cached_at_s,
                )
                flight.cells[plan.keys[k]] = cell
                items.append((plan.keys[k], cell))
            self._write_back(items)
            return len(rows) * len(cols)
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                for key in owned:
                    if self._in_flight.get(key) is flight:
                        del self._in_flight[key]
            flight.done.set()

    def _call_engine(self, sources: list[LatLng], destinations: list[LatLng]) -> tuple[F64, F64]:
        with self._lock:
            self._stats["engine_calls"] += 1
        durations, distances = self._compute(sources, destinations)
        shape = (len(sources), len(destinations))
        durations = np.asarray(durations, dtype=np.float64)
        distances = np.asarray(distances, dtype=np.float64)
        if durations.shape != shape or distances.shape != shape:
            raise HexcityError(f"compute returned {durations.shape}/{distances.shape}, expected {shape}")
        return durations, distances

    def _cell(self, duration_s: float, distance_m: float, compute_s: float, cached_at_s: float) -> CachedCell:
        """A positive cell for ``ttl_s``, or a no-route cell for ``negative_ttl_s`` when duration is nan."""
        if math.isnan(duration_s):
            return CachedCell(None, None, compute_s, cached_at_s, self.negative_ttl_s)
        distance = None if math.isnan(distance_m) else float(distance_m)
        return CachedCell(float(duration_s), distance, compute_s, cached_at_s, self.ttl_s)

    def _write_back(self, items: list[tuple[str, CachedCell]]) -> None:
        """One ``put_many``; a store outage is counted, not raised (the values are still served)."""
        if not items:
            return
        try:
            self._store.put_many(items)
        except CellStoreUnavailable:
            with self._lock:
                self._stats["store_errors"] += 1

    def _await(
        self, keys: list[str], waits: dict[int, _Flight], served: list[CachedCell | None]
    ) -> list[int]:
        """Wait for other threads' flights and take their values; returns the coalesced key indexes.

        Raises:
            CacheFlightError: a flight failed or did not finish within ``flight_wait_timeout_s``.
        """
        for k, other in waits.items():
            if not other.done.wait(self.flight_wait_timeout_s):
                raise CacheFlightError(f"waited {self.flight_wait_timeout_s} s for a shared computation")
            if other.error is not None:
                raise CacheFlightError(
                    "the shared computation this request waited on failed"
                ) from other.error
            cell = other.cells.get(keys[k])
            if cell is None:
                raise CacheFlightError(f"shared computation finished without key {keys[k]}")
            served[k] = cell
        return list(waits)

    def _count(self, result: CachedTable) -> None:
        with self._lock:
            stats = self._stats
            stats["requests"] += 1
            stats["hits"] += result.hits
            stats["negative_hits"] += result.negative_hits
            stats["misses"] += result.misses
            stats["bypassed"] += result.bypassed
            stats["xfetch_refreshes"] += result.xfetch_refreshes
            stats["singleflight_coalesced"] += result.coalesced
            stats["computed_cells"] += result.computed_cells


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value
