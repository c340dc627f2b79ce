"""In-process ``DriverIndex``: a dict cell → set of driver ids and a dict driver → record.

Single event loop, no awaits inside a mutation, so every upsert/remove is atomic with respect to
other coroutines: a driver is never in two cells or in none. Memory is bounded by
``IndexParams.max_drivers``; a new driver past the cap is refused with ``DriverIndexFull``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from hexcity.dispatch.domain.index import (
    DEFAULT_NEARBY_LIMIT,
    DriverIndexFull,
    IndexParams,
    NearbyDriver,
    cell_of,
    count_within,
    rank_nearby,
    ring_plan,
    validate_nearby,
    validate_upsert,
)

__all__ = ["InMemoryDriverIndex"]


@dataclass(slots=True)
class _Record:
    lat: float
    lng: float
    status: str
    seen_at_s: float
    cell: str


class InMemoryDriverIndex:
    def __init__(self, params: IndexParams | None = None) -> None:
        self.params = params or IndexParams()
        self._cells: dict[str, set[str]] = {}
        self._drivers: dict[str, _Record] = {}

    async def upsert(self, driver_id: str, lat: float, lng: float, status: str, seen_at_s: float) -> None:
        validate_upsert(driver_id, lat, lng, status, seen_at_s)
        cell = cell_of(lat, lng, self.params.resolution)
        record = self._drivers.get(driver_id)
        if record is None:
            if len(self._drivers) >= self.params.max_drivers:
                raise DriverIndexFull(
                    f"driver index full ({self.params.max_drivers} drivers); "
                    f"refusing new driver {driver_id!r}"
                )
            self._drivers[driver_id] = _Record(lat, lng, status, seen_at_s, cell)
            self._cells.setdefault(cell, set()).add(driver_id)
            return
        if record.cell != cell:
            self._discard(record.cell, driver_id)
            self._cells.setdefault(cell, set()).add(driver_id)
            record.cell = cell
        record.lat, record.lng, record.status, record.seen_at_s = lat, lng, status, seen_at_s

    async def remove(self, driver_id: str) -> bool:
        record = self._drivers.pop(driver_id, None)
        if record is None:
            return False
        self._discard(record.cell, driver_id)
        return True

    async def nearby(
        self,
        lat: float,
        lng: float,
        radius_m: float,
        limit: int = DEFAULT_NEARBY_LIMIT,
        statuses: Collection[str] = frozenset({"online"}),
    ) -> list[NearbyDriver]:
        validate_nearby(lat, lng, radius_m, limit)
        wanted = frozenset(statuses)
        drivers = self._drivers
        rows: list[tuple[str, float, float, str, float]] = []
        for cells, covered_m in ring_plan(lat, lng, radius_m, self.params.resolution):
            for cell in cells:
                for driver_id in self._cells.get(cell, ()):
                    r = drivers[driver_id]
                    if r.status in wanted:
                        rows.append((driver_id, r.lat, r.lng, r.status, r.seen_at_s))
            if len(rows) >= limit and count_within(lat, lng, rows, covered_m) >= limit:
                break  # the `limit` nearest are within covered_m: outer rings cannot change them
        return rank_nearby(lat, lng, radius_m, limit, rows)

    async def expire(self, now_s: float) -> int:
        cutoff_s = now_s - self.params.stale_after_s
        stale = [d for d, r in self._drivers.items() if r.seen_at_s <= cutoff_s]
        for driver_id in stale:
            record = self._drivers.pop(driver_id)
            self._discard(record.cell, driver_id)
        return len(stale)

    async def count(self) -> int:
        return len(self._drivers)

    def cells_of(self, driver_id: str) -> list[str]:
        """Every cell whose set holds ``driver_id`` (a full scan; for tests and audits)."""
        return sorted(c for c, members in self._cells.items() if driver_id in members)

    def _discard(self, cell: str, driver_id: str) -> None:
        members = self._cells.get(cell)
        if members is None:
            return
        members.discard(driver_id)
        if not members:
            del self._cells[cell]  # no empty sets left behind: memory tracks live drivers
