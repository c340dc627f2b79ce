"""Feeds surge supply from the driver index: every position written is a sighting of supply.

:class:`SurgeFeedingIndex` wraps any :class:`DriverIndex`; an ``upsert`` of an online or busy
driver counts the driver as supply in its res-7 cell (dispatch.md §2.10: drivers *seen* in the
window, not only those connected now), and a ``remove`` (the driver went offline) is a disconnect
for the anti-gaming freeze. Demand is fed by the service when a trip (not a quote) is requested.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection

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
        self.surge = surge
        self.clock = clock
        self._cell: OrderedDict[str, str] = OrderedDict()  # driver → last res-7 cell (bounded)

    @property
    def params(self) -> IndexParams:
        return self.inner.params

    async def upsert(self, driver_id: str, lat: float, lng: float, status: str, seen_at_s: float) -> None:
        await self.inner.upsert(driver_id, lat, lng, status, seen_at_s)
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
