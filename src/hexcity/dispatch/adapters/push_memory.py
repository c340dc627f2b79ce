"""In-process push adapters: the connection directory of one process and a logging fallback.

:class:`LoggingFallbackPusher` stands in for APNs/FCM: it counts per reason, keeps the last
``keep`` records (bounded) for tests and the admin view, and logs each hand-off.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hexcity.infra import get_logger

if TYPE_CHECKING:
    from hexcity.dispatch.adapters.push_connection import FallbackReason, PushMessage

__all__ = ["FallbackRecord", "InMemoryConnectionDirectory", "LoggingFallbackPusher"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FallbackRecord:
    client_id: str
    seq: int
    kind: str
    priority: str
    reason: str


class LoggingFallbackPusher:
    """A :class:`~hexcity.dispatch.push.FallbackPusher` that records, counts and logs."""

    def __init__(self, keep: int = 1000) -> None:
        if not 1 <= keep <= 1_000_000:
            raise ValueError("keep must be within [1, 1_000_000]")
        self.records: deque[FallbackRecord] = deque(maxlen=keep)
        self.counts: Counter[str] = Counter()

    def push(self, message: PushMessage, reason: FallbackReason) -> None:
        self.records.append(
            FallbackRecord(message.client_id, message.seq, message.kind, message.priority, reason)
        )
        self.counts[reason] += 1
        log.debug(
            "push_fallback",
            client_id=message.client_id,
            seq=message.seq,
            kind=message.kind,
            priority=message.priority,
            reason=reason,
        )


class InMemoryConnectionDirectory:
    """``client_id → node`` for a single API process (bounded by ``max_entries``)."""

    def __init__(self, max_entries: int = 10_000_000) -> None:
        self.max_entries = max_entries
        self._nodes: dict[str, str] = {}

    async def register(self, client_id: str, node_id: str) -> None:
        if client_id not in self._nodes and len(self._nodes) >= self.max_entries:
            raise RuntimeError(f"connection directory full ({self.max_entries} entries)")
        self._nodes[client_id] = node_id

    async def unregister(self, client_id: str, node_id: str) -> None:
        if self._nodes.get(client_id) == node_id:
            del self._nodes[client_id]

    async def lookup(self, client_id: str) -> str | None:
        return self._nodes.get(client_id)

    async def refresh(self, client_ids: Sequence[str], node_id: str) -> None:
        """Nothing expires in process; entries live until unregistered."""
