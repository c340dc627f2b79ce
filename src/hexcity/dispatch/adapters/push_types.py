"""Push vocabulary: limits, errors, ports (fallback, connection directory) and input validation.

Kept apart from :mod:`hexcity.dispatch.push` (the hub) so the hub module stays small; import the
names from there or from ``hexcity.dispatch``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from hexcity.dispatch.adapters.push_connection import HEARTBEAT, FallbackReason, PushMessage
from hexcity.dispatch.errors import DispatchError
from hexcity.kernel import InvalidInput, Unavailable

__all__ = [
    "MAX_ACK_LIST",
    "MAX_SEQ",
    "ConnectionDirectory",
    "FallbackPusher",
    "InvalidAck",
    "InvalidPush",
    "PushCapacityExceeded",
    "PushParams",
    "encode_payload",
    "validate_ack",
    "validate_client_id",
    "validate_kind",
]

MAX_SEQ = 2**53 - 1  # exact in JSON numbers everywhere
MAX_ACK_LIST = 1024
_CLIENT_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}:[^\s]{1,200}$")
_KIND = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")


class InvalidPush(DispatchError, InvalidInput):
    """A push call with bad arguments (client id, kind, payload, seq)."""

    code = "InvalidPush"
    status = 400


class InvalidAck(DispatchError, InvalidInput):
    """An acknowledgement of a sequence number that was never sent to this client."""

    code = "InvalidAck"
    status = 400


class PushCapacityExceeded(DispatchError, Unavailable):
    """The hub holds ``max_clients`` clients and none is idle enough to evict."""

    code = "PushCapacityExceeded"
    status = 503


@dataclass(frozen=True, slots=True)
class PushParams:
    """Limits and timings of the hub (dispatch.md §2.8 defaults)."""

    ring_size: int = 16
    queue_size: int = 128
    max_clients: int = 100_000
    heartbeat_interval_s: float = 4.0
    max_payload_bytes: int = 8 * 1024
    max_ring_bytes: int = 256 * 1024 * 1024  # payload bytes held in all rings together
    directory_refresh_s: float = 10.0
    directory_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.ring_size <= 4096:
            raise ValueError("ring_size must be within [1, 4096]")
        if not self.ring_size <= self.queue_size <= 65_536:
            raise ValueError("queue_size must be within [ring_size, 65536] (a replay must fit)")
        if not 1 <= self.max_clients <= 10_000_000:
            raise ValueError("max_clients must be within [1, 10_000_000]")
        if not 0.01 <= self.heartbeat_interval_s <= 300:
            raise ValueError("heartbeat_interval_s must be within [0.01, 300]")
        if not 64 <= self.max_payload_bytes <= 1024 * 1024:
            raise ValueError("max_payload_bytes must be within [64, 1 MiB]")
        if not self.max_payload_bytes <= self.max_ring_bytes <= 64 * 1024**3:
            raise ValueError("max_ring_bytes must be within [max_payload_bytes, 64 GiB]")
        if not 0.1 <= self.directory_refresh_s <= 3600 or not 0.01 <= self.directory_timeout_s <= 60:
            raise ValueError("directory_refresh_s within [0.1, 3600], directory_timeout_s within [0.01, 60]")


class FallbackPusher(Protocol):
    """APNs/FCM stand-in: takes a message the socket could not; must not block (queue inside)."""

    def push(self, message: PushMessage, reason: FallbackReason) -> None: ...


class ConnectionDirectory(Protocol):
    """Which API process (node) holds a client's live connection."""

    async def register(self, client_id: str, node_id: str) -> None: ...

    async def unregister(self, client_id: str, node_id: str) -> None:
        """Forget the entry only if it still names ``node_id`` (a newer node keeps its own)."""

    async def lookup(self, client_id: str) -> str | None: ...

    async def refresh(self, client_ids: Sequence[str], node_id: str) -> None:
        """Extend the lifetime of these entries (re-creating missing ones; never taking over an
        entry that names another node)."""


def validate_client_id(client_id: str) -> None:
    """Raise :class:`InvalidPush` unless ``client_id`` looks like ``"driver:<id>"``."""
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        raise InvalidPush(f"client id must look like 'driver:<id>' (got {str(client_id)[:80]!r})")


def validate_kind(kind: str) -> None:
    """Raise :class:`InvalidPush` for a kind outside ``[a-z][a-z0-9_.]*`` or ``"heartbeat"``."""
    if not isinstance(kind, str) or not _KIND.match(kind) or kind == HEARTBEAT:
        raise InvalidPush(f"kind must match {_KIND.pattern} and not be 'heartbeat' (got {kind!r})")


def encode_payload(payload: dict[str, Any], priority: str, max_payload_bytes: int) -> bytes:
    """The payload as JSON bytes; raises :class:`InvalidPush` for a bad priority, a payload that is
    not a JSON-serialisable object, or one over ``max_payload_bytes``."""
    if priority not in ("high", "normal"):
        raise InvalidPush(f"priority must be 'high' or 'normal' (got {priority!r})")
    if not isinstance(payload, dict):
        raise InvalidPush("payload must be a JSON object (dict)")
    try:
        data_json = orjson.dumps(payload)
    except TypeError as exc:
        raise InvalidPush(f"payload is not JSON-serialisable: {exc}") from None
    if len(data_json) > max_payload_bytes:
        raise InvalidPush(f"payload is {len(data_json)} bytes (max {max_payload_bytes})")
    return data_json


def validate_ack(acked: int | Sequence[int]) -> list[int]:
    """The acked seqs; raises :class:`InvalidAck` unless a seq or a list of at most 1024 seqs, each
    an integer within [0, MAX_SEQ]."""
    values = [acked] if isinstance(acked, int) else acked
    if isinstance(acked, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidAck("ack must be a seq or a list of seqs")
    if len(values) > MAX_ACK_LIST:
        raise InvalidAck(f"at most {MAX_ACK_LIST} seqs per ack")
    seqs = list(values)
    for seq in seqs:
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
            raise InvalidAck(f"a seq is an integer within [0, {MAX_SEQ}] (got {seq!r})")
    return seqs
