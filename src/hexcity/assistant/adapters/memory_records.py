"""An in-process record store (the embedded default, demos and tests)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hexcity.assistant.domain.records import PlatformRecord


class InMemoryRecords:
    """Records by customer; ``records_for`` returns them sorted by kind then id."""

    def __init__(self, records: Iterable[PlatformRecord] = ()) -> None:
        self._records: dict[tuple[str, str], PlatformRecord] = {}
        for record in records:
            self.put(record)

    def put(self, record: PlatformRecord) -> None:
        self._records[(record.kind, record.record_id)] = record

    def delete(self, kind: str, record_id: str) -> None:
        self._records.pop((kind, record_id), None)

    def records_for(self, customer_id: str, *, limit: int) -> Sequence[PlatformRecord]:
        own = [r for r in self._records.values() if r.customer_id == customer_id]
        return sorted(own, key=lambda r: (r.kind, r.record_id))[:limit]

    def all(self) -> list[PlatformRecord]:
        return sorted(self._records.values(), key=lambda r: (r.kind, r.record_id))
