"""Push to drivers and riders: per-client sequence ids, ring buffer replay, heartbeats, fallback.

Follows the Uber push platform's published figures (dispatch.md §2.8, §4): a server heartbeat every
4 s, clients reconnect after 7 s of silence, batched acks, and a ring buffer of the last 16
unacknowledged messages per client replayed in order on reconnect. Transports (WebSocket, SSE) live
in :mod:`hexcity.dispatch.http_push`; this module is transport-free and runs on ONE asyncio loop:
every method is called from that loop and mutates state without awaiting in between, so a message
can never interleave with a replay (no gaps, no duplicates).

Decisions:

* ``seq`` is per client, starts at 1 and never repeats while the hub holds the client. Heartbeats
  are not messages: no seq bump, never stored, ``seq`` null and ``data.head_seq`` = the client's
  latest seq (a client seeing ``head_seq`` above what it received knows it missed something).
* A heartbeat is sent when a connection has been silent for ``heartbeat_interval_s`` (any frame
  resets the timer), so a client that hears nothing for 7 s reconnects.
* The outbound queue of a connection is bounded; when it is full the message goes to the
  :class:`FallbackPusher` (APNs/FCM) AND the connection is closed (reason ``slow_consumer``): the
  client reconnects with its last seq and gets the ring replayed in order instead of a stream with
  a hole in it. A message for a client without a connection also goes to the fallback.
* A reconnect with ``last_seen_seq`` above what the hub ever assigned means the hub lost the
  client's history (process restart, or an idle client evicted at ``max_clients``): numbering
  continues after ``last_seen_seq`` and pending ring entries are renumbered after it.
* ``send`` never blocks and never raises for delivery problems; it raises only for bad input.

Limits (:class:`PushParams`): ``ring_size`` per client (the oldest unacked entry is evicted and
counted ``dropped{reason="ring_full"}``), ``queue_size`` per connection (≥ ``ring_size`` so a replay
always fits), ``max_clients`` (idle clients — no connection, nothing unacked — are evicted LRU,
otherwise ``send`` goes to the fallback with seq 0 and ``connect`` raises
:class:`PushCapacityExceeded`), ``max_payload_bytes`` per message and ``max_ring_bytes`` over all
rings (past it a message is still sent but not kept for replay: ``dropped{reason="ring_memory"}``).
The directory (``client_id → node``) is advisory: its failures are counted, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from hexcity.dispatch.adapters.push_connection import (
    DATA_JSON,
    HEARTBEAT,
    KIND,
    SEQ,
    CloseReason,
    Connection,
    Entry,
    FallbackReason,
    Frame,
    Priority,
    PushConnectionClosed,
    PushMessage,
)
from hexcity.dispatch.adapters.push_memory import InMemoryConnectionDirectory, LoggingFallbackPusher
from hexcity.dispatch.adapters.push_metrics import push_metrics
from hexcity.dispatch.adapters.push_types import (
    MAX_SEQ,
    ConnectionDirectory,
    FallbackPusher,
    InvalidAck,
    InvalidPush,
    PushCapacityExceeded,
    PushParams,
    encode_payload,
    validate_ack,
    validate_client_id,
    validate_kind,
)
from hexcity.infra import get_logger

__all__ = [
    "HEARTBEAT",
    "MAX_SEQ",
    "CloseReason",
    "Connection",
    "ConnectionDirectory",
    "FallbackPusher",
    "FallbackReason",
    "Frame",
    "InvalidAck",
    "InvalidPush",
    "Priority",
    "PushCapacityExceeded",
    "PushConnectionClosed",
    "PushHub",
    "PushMessage",
    "PushParams",
    "client_id_for",
]

log = get_logger(__name__)

_MAX_KNOWN_KINDS = 256  # validated kinds remembered (a fast path for send)
_EVICTION_SCAN = 64  # clients looked at per eviction attempt (bounded work in send/connect)


@dataclass(slots=True)
class _ClientState:
    head_seq: int = 0
    ring: deque[Entry] = field(default_factory=deque)
    connection: Connection | None = None


class PushHub:
    """Sequenced push to clients ("driver:d1", "rider:r7") over whatever transport connects them.

    ``clock`` is monotonic seconds (heartbeats, latency); ``wall_clock`` epoch seconds
    (``sent_at_s``). Not thread-safe: use from the event loop that runs the transports.
    """

    def __init__(
        self,
        params: PushParams | None = None,
        *,
        fallback: FallbackPusher | None = None,
        directory: ConnectionDirectory | None = None,
        node_id: str = "local",
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params or PushParams()
        self.fallback: FallbackPusher = fallback or LoggingFallbackPusher()
        self.directory: ConnectionDirectory = directory or InMemoryConnectionDirectory()
        self.node_id = node_id
        self.metrics = push_metrics(registry if registry is not None else CollectorRegistry())
        self._clock, self._wall_clock = clock, wall_clock
        self._clients: OrderedDict[str, _ClientState] = OrderedDict()
        self._connected: dict[str, Connection] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._ring_bytes = 0
        self._kinds: set[str] = set()
        self._directory_tasks: set[asyncio.Future[None]] = set()

    # -- the three calls --------------------------------------------------------------------------
    async def send(
        self,
        client_id: str,
        kind: str,
        payload: dict[str, Any],
        *,
        replayable: bool = True,
        priority: Priority = "normal",
    ) -> int:
        """Sequence ``payload`` for ``client_id`` and deliver it live or via the fallback.

        Returns the message's seq (0 if the hub is full and the message went only to the
        fallback). Never blocks. Raises :class:`InvalidPush` for a bad client id, kind, priority
        or payload (not a JSON object, or over ``max_payload_bytes``).
        """
        data_json = self._validate_send(client_id, kind, payload, priority)
        state = self._state(client_id)
        now = self._clock()
        self.metrics.sent.inc()
        if state is None:
            entry: Entry = (0, kind, data_json, self._wall_clock(), now, priority)
            self._to_fallback(client_id, entry, False, "capacity")
            return 0
        state.head_seq += 1
        entry = (state.head_seq, kind, data_json, self._wall_clock(), now, priority)
        if replayable:
            self._store(state, entry)
        conn = state.connection
        if conn is None:
            self._to_fallback(client_id, entry, replayable, "offline")
        else:
            conn.head_seq = state.head_seq
            if not conn.offer(entry):
                self._to_fallback(client_id, entry, replayable, "queue_full")
                self._detach(conn, "slow_consumer")
        return state.head_seq

    def ack(self, client_id: str, acked: int | Sequence[int]) -> int:
        """Drop acknowledged messages from the ring; returns how many were dropped.

        ``acked`` is the highest seq the client processed (everything up to it is acked), or a
        list of individual seqs (at most 1024). Raises :class:`InvalidAck` for a seq below 0 or
        above the latest seq sent to this client.
        """
        seqs = validate_ack(acked)
        state = self._clients.get(client_id)
        head = state.head_seq if state is not None else 0
        if max(seqs, default=0) > head:
            raise InvalidAck(f"seq {max(seqs)} was never sent to {client_id!r} (latest is {head})")
        if state is None:
            return 0
        ring, removed = state.ring, 0
        if isinstance(acked, int):  # the ring is in seq order: trim from the left
            while ring and ring[0][SEQ] <= acked:
                self._ring_bytes -= len(ring.popleft()[DATA_JSON])
                removed += 1
            return removed
        done = set(seqs)
        kept: deque[Entry] = deque()
        for entry in ring:
            if entry[SEQ] in done:
                self._ring_bytes -= len(entry[DATA_JSON])
                removed += 1
            else:
                kept.append(entry)
        state.ring = kept
        return removed

    async def connect(self, client_id: str, last_seen_seq: int = 0) -> Connection:
        """Open a connection; a previous one of the same client is closed (``replaced``).

        Unacked ring entries with seq > ``last_seen_seq`` are queued first, in seq order, then live
        messages follow. Raises :class:`InvalidPush` for a bad id or seq and
        :class:`PushCapacityExceeded` when the hub is full.
        """
        validate_client_id(client_id)
        if isinstance(last_seen_seq, bool) or not isinstance(last_seen_seq, int):
            raise InvalidPush("last_seen_seq must be an integer")
        if not 0 <= last_seen_seq <= MAX_SEQ:
            raise InvalidPush(f"last_seen_seq must be within [0, {MAX_SEQ}]")
        state = self._state(client_id)
        if state is None:
            raise PushCapacityExceeded(f"push hub full ({self.params.max_clients} clients)")
        if last_seen_seq > state.head_seq:
            self._fast_forward(client_id, state, last_seen_seq)
        if state.connection is not None:
            self._detach(state.connection, "replaced")
        conn = Connection(
            client_id,
            self.params.queue_size,
            self.params.heartbeat_interval_s,
            self.metrics,
            self._clock,
            self._wall_clock,
        )
        conn.head_seq = state.head_seq
        replayed = 0
        for entry in state.ring:  # ring order is seq order
            if entry[SEQ] > last_seen_seq:
                conn.offer(entry, replayed=True)
                replayed += 1
        self.metrics.replayed.inc(replayed)
        state.connection = conn
        self._connected[client_id] = conn
        self.metrics.connected.set(len(self._connected))
        await self._directory_call(self.directory.register(client_id, self.node_id))
        return conn

    async def disconnect(self, conn: Connection, reason: CloseReason = "client_gone") -> None:
        """The transport ended: forget ``conn`` (idempotent; a newer connection is kept)."""
        self._detach(conn, reason)
        if conn.client_id not in self._connected:
            await self._directory_call(self.directory.unregister(conn.client_id, self.node_id))

    # -- lifecycle and introspection ---------------------------------------------------------------
    def start(self) -> None:
        """Start refreshing this node's directory entries (call from the running loop)."""
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def aclose(self) -> None:
        """Stop refreshing and close every connection (``shutdown``)."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        for conn in list(self._connected.values()):
            await self.disconnect(conn, "shutdown")

    def pending(self, client_id: str) -> list[int]:
        """The seqs held in ``client_id``'s ring (unacked replayable messages), oldest first."""
        state = self._clients.get(client_id)
        return [e[SEQ] for e in state.ring] if state is not None else []

    def head_seq(self, client_id: str) -> int:
        state = self._clients.get(client_id)
        return state.head_seq if state is not None else 0

    def connection(self, client_id: str) -> Connection | None:
        return self._connected.get(client_id)

    @property
    def client_count(self) -> int:
        """Clients the hub holds state for (connected or not)."""
        return len(self._clients)

    @property
    def connected_count(self) -> int:
        """Clients with a live connection on this hub."""
        return len(self._connected)

    @property
    def ring_bytes(self) -> int:
        """Payload bytes held for replay across all clients."""
        return self._ring_bytes

    # -- helpers ------------------------------------------------------------------------------------
    def _validate_send(self, client_id: str, kind: str, payload: dict[str, Any], priority: str) -> bytes:
        if client_id not in self._clients:  # a held client id was validated when it was added
            validate_client_id(client_id)
        if kind not in self._kinds:
            validate_kind(kind)
            if len(self._kinds) < _MAX_KNOWN_KINDS:
                self._kinds.add(kind)
        return encode_payload(payload, priority, self.params.max_payload_bytes)

    def _state(self, client_id: str) -> _ClientState | None:
        """The client's state, created if needed; None when the hub is full."""
        state = self._clients.get(client_id)
        if state is not None:
            self._clients.move_to_end(client_id)
            return state
        if len(self._clients) >= self.params.max_clients and not self._evict_one():
            return None
        state = self._clients[client_id] = _ClientState()
        return state

    def _store(self, state: _ClientState, entry: Entry) -> None:
        """Keep ``entry`` for replay: the oldest unacked goes when the ring is full, and nothing
        is kept while all rings together hold ``max_ring_bytes`` (the message is still sent)."""
        if len(state.ring) >= self.params.ring_size:
            self._ring_bytes -= len(state.ring.popleft()[DATA_JSON])
            self.metrics.dropped.labels("ring_full").inc()
        size = len(entry[DATA_JSON])
        if self._ring_bytes + size > self.params.max_ring_bytes:
            self.metrics.dropped.labels("ring_memory").inc()
            return
        state.ring.append(entry)
        self._ring_bytes += size

    def _evict_one(self) -> bool:
        """Forget the least recently used client with no connection and nothing unacked."""
        for scanned, (client_id, state) in enumerate(self._clients.items()):
            if scanned >= _EVICTION_SCAN:
                break
            if state.connection is None and not state.ring:
                del self._clients[client_id]
                return True
        return False

    def _fast_forward(self, client_id: str, state: _ClientState, last_seen_seq: int) -> None:
        state.ring = deque(
            (last_seen_seq + offset, *entry[KIND:]) for offset, entry in enumerate(state.ring, start=1)
        )
        log.warning(
            "push_history_lost", client_id=client_id, head_seq=state.head_seq, last_seen_seq=last_seen_seq
        )
        state.head_seq = last_seen_seq + len(state.ring)

    def _detach(self, conn: Connection, reason: CloseReason) -> bool:
        conn.close(reason)
        state = self._clients.get(conn.client_id)
        if state is None or state.connection is not conn:
            return False
        state.connection = None
        self._connected.pop(conn.client_id, None)
        self.metrics.connected.set(len(self._connected))
        return True

    def _to_fallback(self, client_id: str, entry: Entry, replayable: bool, reason: FallbackReason) -> None:
        seq, kind, data_json, sent_at_s, _, priority = entry
        message = PushMessage(client_id, seq, kind, data_json, sent_at_s, _priority(priority), replayable)
        try:
            self.fallback.push(message, reason)
        except Exception as exc:  # a broken push provider must not break dispatch
            self.metrics.dropped.labels("fallback_error").inc()
            log.warning("push_fallback_failed", client_id=message.client_id, seq=message.seq, error=repr(exc))
            return
        self.metrics.fallback.labels(reason).inc()

    async def _directory_call(self, call: Coroutine[Any, Any, None]) -> None:
        """Run a directory call with a timeout, shielded: a transport task cancelled while it
        unregisters (client gone) still completes the call."""
        task = asyncio.ensure_future(asyncio.wait_for(call, self.params.directory_timeout_s))
        self._directory_tasks.add(task)
        task.add_done_callback(self._directory_done)
        with contextlib.suppress(Exception):  # counted and logged in _directory_done
            await asyncio.shield(task)

    def _directory_done(self, task: asyncio.Future[None]) -> None:
        self._directory_tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # the directory is advisory: never fail a connection on it
            self.metrics.directory_errors.inc()
            log.warning("push_directory_failed", node_id=self.node_id, error=repr(exc))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.params.directory_refresh_s)
            ids = list(self._connected)
            for start in range(0, len(ids), 1000):
                await self._directory_call(self.directory.refresh(ids[start : start + 1000], self.node_id))


def _priority(value: str) -> Priority:
    return "high" if value == "high" else "normal"


def client_id_for(role: str, subject: str) -> str:
    """The push client id of a principal: ``f"{role}:{subject}"``."""
    return f"{role}:{subject}"
