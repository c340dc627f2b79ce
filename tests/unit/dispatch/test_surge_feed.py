"""Surge supply and disconnects come from the driver index writes."""

from __future__ import annotations

import asyncio

import h3

from hexcity.dispatch import InMemoryDriverIndex, SurgeModel
from hexcity.dispatch.surge_feed import SurgeFeedingIndex

T0 = 1_700_000_000.0
LAT, LNG = 49.41, 8.69


def test_upserts_are_supply_and_removes_are_disconnects() -> None:
    async def main() -> None:
        surge = SurgeModel(clock=lambda: T0)
        index = SurgeFeedingIndex(InMemoryDriverIndex(), surge, clock=lambda: T0)
        cell = str(h3.latlng_to_cell(LAT, LNG, 7))
        for i in range(60):
            await index.upsert(f"d{i}", LAT + i * 1e-5, LNG, "online", T0)
        await index.upsert("off", LAT, LNG, "offline", T0)  # not supply
        assert surge.supply_demand(cell, T0) == (60, 0)
        assert await index.count() == 61
        assert not surge.is_frozen(cell, T0)
        for i in range(49):
            assert await index.remove(f"d{i}")
        assert not surge.is_frozen(cell, T0)
        assert await index.remove("d49")  # the 50th disconnect within 60 s freezes the cell
        assert surge.is_frozen(cell, T0)
        assert surge.flagged == {cell: T0}
        assert not await index.remove("never-there")

    asyncio.run(main())


def test_batched_writes_are_supply_and_report_each_row() -> None:
    async def main() -> None:
        surge = SurgeModel(clock=lambda: T0)
        index = SurgeFeedingIndex(InMemoryDriverIndex(), surge, clock=lambda: T0)
        cell = str(h3.latlng_to_cell(LAT, LNG, 7))
        outcomes = await index.upsert_many(
            [("a", LAT, LNG, "online", T0), ("b", 95.0, LNG, "online", T0), ("c", LAT, LNG, "busy", T0)]
        )
        assert [type(o).__name__ for o in outcomes] == ["NoneType", "InvalidIndexInput", "NoneType"]
        assert surge.supply_demand(cell, T0) == (2, 0)
        assert await index.count() == 2

    asyncio.run(main())
