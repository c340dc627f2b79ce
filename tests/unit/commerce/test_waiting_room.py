"""The in-process waiting room behind the service (the embedded default), fake clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.unit.commerce.rig import make_rig, seed

from hexcity.commerce.adapters.waiting_room import MemoryWaitingRoom
from hexcity.commerce.errors import AdmissionRequired, NotAdmittedYet


def test_service_uses_the_in_process_room_by_default_and_enforces_it(tmp_path: Path) -> None:
    async def main() -> None:
        rig = await make_rig(tmp_path, waiting_room_enabled=True, admissions_per_s=1.0)
        try:
            await seed(rig, sale_stock=10)
            s = rig.service
            assert isinstance(s.waiting_room, MemoryWaitingRoom)
            tickets = [await s.join_queue("sale1", f"u{i}") for i in range(3)]
            assert [(t.position, t.admitted) for t in tickets] == [(1, True), (2, False), (3, False)]
            assert (await s.join_queue("sale1", "u2", token=tickets[2].token)).position == 3
            with pytest.raises(AdmissionRequired):
                await s.purchase("sale1", "u0", 1)
            with pytest.raises(AdmissionRequired):
                await s.purchase("sale1", "u1", 1, admission_token=tickets[0].token)  # someone else's
            with pytest.raises(NotAdmittedYet):
                await s.purchase("sale1", "u2", 1, admission_token=tickets[2].token)
            assert (await s.purchase("sale1", "u0", 1, admission_token=tickets[0].token)).quantity == 1
            await s.waiting_room.set_rate(10.0)
            assert s.waiting_room.admissions_per_s == 10.0
            rig.clock.now_s += 0.2  # 10/s × 0.2 s: positions 2 and 3
            assert (await s.purchase("sale1", "u2", 1, admission_token=tickets[2].token)).quantity == 1
            assert await s.waiting_room.admitted("sale1") == 3
        finally:
            await rig.close()

    asyncio.run(main())
