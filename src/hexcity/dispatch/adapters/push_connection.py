"""The wire side of push: sequenced messages, frames, and one client's live connection.

A :class:`Connection` is a bounded queue plus a heartbeat timer, drained by one transport task
(WebSocket or SSE, :mod:`hexcity.dispatch.http_push`) through :meth:`Connection.next_frame`.
Frames are JSON ``{"seq": n, "kind": ..., "data": {...}, "sent_at_s": ...}``; the payload is
encoded once at send and spliced in, so a replay or a fan-out costs no re-encoding.

A stored or queued message is an :data:`Entry`, a plain tuple of atoms: CPython's collector
untracks such tuples at their first collection, so thousands of unacked messages held for seconds
(acks are batched) never reach the old generations nor lengthen full collections — with class
instances they did, and a full collection over a server with 1,000 sockets took 100s of ms.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from hexcity.dispatch.adapters.push_metrics import PushMetrics

__all__ = [
    "HEARTBEAT",
    "CloseReason",
    "Connection",
    "Entry",
    "FallbackReason",
    "Frame",
    "Priority",
    "PushConnectionClosed",
    "PushMessage",
    "frame_json",
]

Priority = Literal["high", "normal"]
FallbackReason = Literal["offline", "queue_full", "capacity"]
CloseReason = Literal["replaced", "slow_consumer", "shutdown", "client_gone"]
HEARTBEAT = "heartbeat"

Entry = tuple[int, str, bytes, float, float, str]
"""``(seq, kind, data_json, sent_at_s, decided_at, priority)``: ``sent_at_s`` wall clock (shown to
clients), ``decided_at`` the hub's monotonic clock at send (latency histogram)."""
SEQ: Final = 0
KIND: Final = 1
DATA_JSON: Final = 2
SENT_AT_S: Final = 3
DECIDED_AT: Final = 4
PRIORITY: Final = 5


def frame_json(entry: Entry) -> bytes:
    """``{"seq": n, "kind": ..., "data": {...}, "sent_at_s": ...}`` as JSON bytes."""
    return b'{"seq":%d,"kind":"%s","data":%s,"sent_at_s":%s}' % (
        entry[SEQ],
        entry[KIND].encode(),
        entry[DATA_JSON],
        repr(entry[SENT_AT_S]).encode(),
    )


class PushConnectionClosed(Exception):
    """Raised by :meth:`Connection.next_frame` once the connection is closed; ``reason`` says why."""

    def __init__(self, reason: CloseReason) -> None:
        super().__init__(reason)
        self.reason: CloseReason = reason


@dataclass(frozen=True, slots=True)
class PushMessage:
    """A message handed to the :class:`~hexcity.dispatch.push.FallbackPusher` (seq 0: not sequenced,
    the hub was full)."""

    client_id: str
    seq: int
    kind: str
    data_json: bytes
    sent_at_s: float
    priority: Priority
    replayable: bool

    @property
    def data(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.data_json)
        return value


@dataclass(frozen=True, slots=True)
class Frame:
    """What a transport writes: a message (live or replayed) or a heartbeat (``seq`` None)."""

    seq: int | None
    kind: str
    body: bytes
    decided_at: float | None = None  # None for heartbeats
    replayed: bool = False

    def sse(self) -> bytes:
        """The Server-Sent Events encoding; heartbeats carry no ``id:`` so Last-Event-ID keeps."""
        head = b"" if self.seq is None else b"id: %d\n" % self.seq
        return head + b"event: %s\ndata: %s\n\n" % (self.kind.encode(), self.body)


class Connection:
    """One live transport connection of one client; created by :meth:`PushHub.connect`."""

    def __init__(
        self,
        client_id: str,
        queue_size: int,
        heartbeat_interval_s: float,
        metrics: PushMetrics,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.client_id = client_id
        self.closed_reason: CloseReason | None = None
        self.head_seq = 0  # the client's latest seq, for heartbeats (kept by the hub)
        self._capacity = queue_size
        self._interval_s = heartbeat_interval_s
        self._clock, self._wall_clock = clock, wall_clock
        self._queue: deque[Entry] = deque()
        self._replays_left = 0  # the first entries of the queue are a replay
        self._waiter: asyncio.Future[None] | None = None  # set while next_frame waits
        self._timer: asyncio.TimerHandle | None = None  # armed at (or before) the heartbeat deadline
        self._next_heartbeat = clock() + heartbeat_interval_s
        self._metrics = metrics

    @property
    def closed(self) -> bool:
        return self.closed_reason is not None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def offer(self, entry: Entry, *, replayed: bool = False) -> bool:
        """Enqueue without blocking; False if the queue is full or the connection closed.

        Replayed entries must be offered before any live one (the hub does, in ``connect``)."""
        if self.closed_reason is not None or len(self._queue) >= self._capacity:
            return False
        if replayed:
            self._replays_left += 1
        self._queue.append(entry)
        self._wake()
        return True

    def close(self, reason: CloseReason) -> None:
        """Stop: queued frames are discarded (replayable ones stay in the hub's ring)."""
        if self.closed_reason is None:
            self.closed_reason = reason
            self._queue.clear()
            self._replays_left = 0
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._wake()

    async def next_frame(self) -> Frame:
        """The next frame to write: queued messages in order, else a heartbeat once silent for
        ``heartbeat_interval_s``. Raises :class:`PushConnectionClosed` once closed."""
        while True:
            if self.closed_reason is not None:
                raise PushConnectionClosed(self.closed_reason)
            now = self._clock()
            if self._queue:
                entry = self._queue.popleft()
                replayed = self._replays_left > 0
                if replayed:
                    self._replays_left -= 1
                self._next_heartbeat = now + self._interval_s
                return Frame(entry[SEQ], entry[KIND], frame_json(entry), entry[DECIDED_AT], replayed)
            wait_s = self._next_heartbeat - now
            if wait_s <= 0:
                self._next_heartbeat = now + self._interval_s
                data = b'{"seq":null,"kind":"heartbeat","data":{"head_seq":%d},"sent_at_s":%s}' % (
                    self.head_seq,
                    repr(self._wall_clock()).encode(),
                )
                return Frame(None, HEARTBEAT, data)
            # One timer per connection, re-armed only when it fires before the (moved) deadline:
            # at most two timers per heartbeat interval, none per message.
            loop = asyncio.get_running_loop()
            if self._timer is None:
                self._timer = loop.call_later(wait_s, self._on_timer)
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()

    def mark_written(self, frame: Frame) -> None:
        """Tell the hub ``frame`` reached the socket (delivered count, decision→socket latency)."""
        metrics = self._metrics
        if frame.decided_at is None:
            metrics.heartbeats.inc()
            return
        metrics.delivered.inc()
        if not frame.replayed:
            metrics.latency_s.observe(max(0.0, self._clock() - frame.decided_at))
