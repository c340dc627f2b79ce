"""Feeds surge supply from the driver index: every position written is a sighting of supply.

:class:`SurgeFeedingIndex` wraps any :class:`DriverIndex`; an ``upsert`` of an online or busy
driver counts the driver as supply in its res-7 cell (dispatch.md §2.10: drivers *seen* in the
window, not only those connected now), and a ``remove`` (the driver went offline) is a disconnect
for the anti-gaming freeze. Demand is fed by the service when a trip (not a quote) is requested.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence

import h3

from hexcity.dispatch.domain.index import DEFAULT_NEARBY_LIMIT, DriverIndex, IndexParams, NearbyDriver
from hexcity.dispatch.domain.surge import SurgeModel

__all__ = ["SURGE_RES", "SurgeFeedingIndex"]

SURGE_RES = 7
SUPPLY_STATUSES = frozenset({"online", "busy"})


class SurgeFeedingIndex:
    """A :class:`DriverIndex` that also reports supply and disconnects to a :class:`SurgeModel`."""

    def __init__(self, inner: DriverIndex, surge: SurgeModel, clock: Callable[[], float] = time.time) -> None:
        self.inner = inner
        self.params: IndexParams = inner.params
        self.surge = surge
        self.clock = clock
        self._cell: OrderedDict[str, str] = OrderedDict()  # driver → last res-7 cell (bounded)

    async def upsert(self, driver_id: str, lat: float, lng: float, status: str, seen_at_s: float) -> None:
        await self.inner.upsert(driver_id, lat, lng, status, seen_at_s)
        self._observe(driver_id, lat, lng, status)

    async def upsert_many(
        self, rows: Sequence[tuple[str, float, float, str, float]]
    ) -> list[BaseException | None]:
        """The inner index's batched write when it has one (Redis: one round trip), else one by one;
        per row ``None`` or the error, as the intake expects. Rows written count as supply."""
        batched = getattr(self.inner, "upsert_many", None)
        outcomes: list[BaseException | None]
        if batched is not None:
            outcomes = list(await batched(rows))
        else:
            outcomes = []
            for driver_id, lat, lng, status, seen_at_s in rows:
                try:
                    await self.inner.upsert(driver_id, lat, lng, status, seen_at_s)
                    outcomes.append(None)
                except Exception as exc:  # reported per row, like the batched path
                    outcomes.append(exc)
        for (driver_id, lat, lng, status, _), outcome in zip(rows, outcomes, strict=True):
            if outcome is None:
                self._observe(driver_id, lat, lng, status)
        return outcomes

    def _observe(self, driver_id: str, lat: float, lng: float, status: str) -> None:
        if status in SUPPLY_STATUSES:
            cell = str(h3.latlng_to_cell(lat, lng, SURGE_RES))
            self.surge.observe_driver(driver_id, cell, self.clock())
            self._cell[driver_id] = cell
            self._cell.move_to_end(driver_id)
            if len(self._cell) > self.inner.params.max_drivers:
                self._cell.popitem(last=False)

    async def remove(self, driver_id: str) -> bool:
        removed = await self.inner.remove(driver_id)
        cell = self._cell.pop(driver_id, None)
        if removed and cell is not None:
            self.surge.observe_disconnect(driver_id, cell, self.clock())
        return removed

    async def nearby(
        self,
        lat: float,
        lng: float,
        radius_m: float,
        limit: int = DEFAULT_NEARBY_LIMIT,
        statuses: Collection[str] = frozenset({"online"}),
    ) -> list[NearbyDriver]:
        return await self.inner.nearby(lat, lng, radius_m, limit, statuses)

    async def expire(self, now_s: float) -> int:
        return await self.inner.expire(now_s)

    async def count(self) -> int:
        return await self.inner.count()
