"""One :class:`~hexcity.assistant.ports.RecordReader` over several modules' readers.

The customer's orders/shipments (fulfillment) and trips (dispatch) are read first; the payment
reader then gets their node ids, so a plain payment may link to the customer's own order or trip
(never to anyone else's). Bounded: at most ``per_source`` records from each reader, at most
``limit`` in all. Deterministic order: readers in the order given, each reader's records in its
own order (newest first), so the same data always gives the same list. A record whose customer
is not the one asked for is dropped (a reader bug must not plant another customer's data), and a
reader whose database fails is skipped (logged) so the others still answer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from hexcity.assistant.domain.records import PlatformRecord
from hexcity.assistant.ports import RecordReader
from hexcity.infra.logging import get_logger

DEFAULT_PER_SOURCE = 50

log = get_logger(__name__)


class LinkingRecordReader(Protocol):
    """A reader whose records may link to the customer's records read before it (payments)."""

    def records_for(
        self, customer_id: str, *, limit: int, own: Collection[str] = ()
    ) -> Sequence[PlatformRecord]: ...


class CompositeRecordReader:
    """Merges ``readers`` and then ``linking`` readers into one bounded, ordered record list."""

    def __init__(
        self,
        readers: Sequence[RecordReader],
        linking: Sequence[LinkingRecordReader] = (),
        *,
        per_source: int = DEFAULT_PER_SOURCE,
    ) -> None:
        if per_source < 1:
            raise ValueError("per_source must be >= 1")
        self._readers = tuple(readers)
        self._linking = tuple(linking)
        self.per_source = per_source

    def records_for(self, customer_id: str, *, limit: int) -> Sequence[PlatformRecord]:
        if limit < 1:
            return []
        per_source = min(self.per_source, limit)
        records: list[PlatformRecord] = []
        for reader in self._readers:
            read = self._guarded(reader, partial(reader.records_for, customer_id, limit=per_source))
            records += [record for record in read if record.customer_id == customer_id]
        own = frozenset(record.node_id for record in records)
        for linking in self._linking:
            read = self._guarded(
                linking, partial(linking.records_for, customer_id, limit=per_source, own=own)
            )
            records += [record for record in read if record.customer_id == customer_id]
        return records[:limit]

    @staticmethod
    def _guarded(reader: object, read: Callable[[], Sequence[PlatformRecord]]) -> Sequence[PlatformRecord]:
        try:
            return read()
        except SQLAlchemyError as error:
            log.warning("assistant.reader_failed", reader=type(reader).__name__, error=repr(error))
            return []
