"""RedisStreamsBus: the EventBus port on Redis Streams (redis.asyncio).

Mapping:

* A topic is ``partitions`` streams ``<prefix>:<topic>:<n>`` with ``n = crc32(key) % partitions``
  (producers and consumers must agree on ``partitions``). ``publish`` is ``XADD ... MAXLEN ~``
  ``max_len_per_partition``: the bound is a retention limit, as in Kafka; a group lagging more
  than that loses the trimmed entries, so size it far above the expected lag.
* A consumer group is a Redis consumer group of the same name on every partition stream
  (``XGROUP CREATE ... 0 MKSTREAM``: a new group starts at the oldest retained entry).
* Per-key ordering: a group has at most one pending (delivered, unacked) entry per partition.
  A member reads the next entry with one Lua script, "XREADGROUP COUNT 1 only if the group's
  pending list of this stream is empty" (NATS's ``max_ack_pending=1``); every member polls every
  partition (with idle backoff ``poll_min_s`` → ``poll_max_s``), so work splits across members.
* ``XACK`` only after the handler succeeded. Failure: the member keeps the entry pending, sleeps
  the full-jitter backoff, re-claims it (``XCLAIM``, which counts a delivery) and retries; the
  attempt is the entry's delivery count (``XPENDING``). At ``max_attempts``: ``XADD`` to the
  ``<topic>.dlq`` topic, then ``XACK``.
* While a handler runs or backs off, its member refreshes the entry's idle time every
  ``claim_idle_s / 3`` (``XCLAIM ... JUSTID``, which does not count a delivery). A killed member
  stops refreshing; once the entry has been idle for ``claim_idle_s`` any member takes it over
  with ``XAUTOCLAIM`` (delivery count + 1). That is how in-flight work of a dead consumer is
  redelivered.
* ``lag(topic, group)``: per partition stream, the group's ``lag`` (``XINFO GROUPS``, Redis >= 7:
  entries not yet delivered to the group) + ``pending`` (delivered, not acked); ``XLEN`` where the
  group does not exist yet, and as an upper bound where Redis cannot compute ``lag`` (nil after
  ``XDEL``/trimming past the group, or Redis < 7).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from hexcity.infra.bus.port import (
    CRASH_REDELIVERY_ALLOWANCE,
    BusClosedError,
    Delivery,
    Handler,
    RetryPolicy,
    dead_letter,
    decode_event,
    encode_event,
    partition_of,
)
from hexcity.infra.logging import get_logger
from hexcity.kernel.events import Event

log = get_logger(__name__)

_FIELD = "e"
_RECONNECT_PAUSE_S = 0.5
# Read one new entry only when the group has nothing pending on this stream (ordering gate).
_READ_ONE_LUA = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if pending[1] > 0 then return {0} end
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
if not r then return {1} end
local entry = r[1][2][1]
return {2, entry[1], entry[2]}
"""


def _field(fields: Any) -> bytes | str:
    """The encoded event out of a flat [k, v, ...] list or a {k: v} dict."""
    if isinstance(fields, dict):
        for k, v in fields.items():
            if k in (_FIELD, _FIELD.encode()):
                return v  # type: ignore[no-any-return]
    else:
        pairs = list(fields)
        for k, v in zip(pairs[::2], pairs[1::2], strict=True):
            if k in (_FIELD, _FIELD.encode()):
                return v  # type: ignore[no-any-return]
    raise ValueError("stream entry without an event field")


class RedisSubscription:
    """One group member: a loop per partition stream."""

    def __init__(
        self, bus: RedisStreamsBus, topic: str, group: str, handler: Handler, policy: RetryPolicy
    ) -> None:
        self._bus = bus
        self._group = group
        self._handler = handler
        self._policy = policy
        self._streams = [bus.stream_key(topic, n) for n in range(bus.partitions)]
        self.consumer = f"c-{uuid.uuid4().hex[:12]}"
        self._stopping = False
        self._tasks = [asyncio.create_task(self._loop(s)) for s in self._streams]

    async def stop(self) -> None:
        """Stop reading; in-flight handlers finish and ack (bounded by the bus's stop timeout)."""
        self._stopping = True
        _, pending = await asyncio.wait(self._tasks, timeout=self._bus.stop_timeout_s)
        if pending:
            await self.abort()
            return
        client = self._bus.client
        for stream in self._streams:  # forget this consumer where it owns nothing
            with contextlib.suppress(RedisError):
                mine = await client.xpending_range(
                    stream, self._group, "-", "+", 1, consumername=self.consumer
                )
                if not mine:
                    await client.xgroup_delconsumer(stream, self._group, self.consumer)

    async def abort(self) -> None:
        """Crash simulation: cancel now, ack nothing; entries are reclaimed after claim_idle_s."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self, stream: str) -> None:
        bus = self._bus
        pause = bus.poll_min_s
        while not self._stopping:
            try:
                worked = await self._step(stream)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:  # connection dropped: pause, the pool reconnects
                log.warning("bus.redis.step_failed", stream=stream, error=repr(exc))
                await asyncio.sleep(_RECONNECT_PAUSE_S)
                continue
            if worked:
                pause = bus.poll_min_s
            else:
                await asyncio.sleep(pause)
                pause = min(pause * 2, bus.poll_max_s)

    async def _step(self, stream: str) -> bool:
        bus, client = self._bus, self._bus.client
        reply = await bus.read_one(keys=[stream], args=[self._group, self.consumer])
        if int(reply[0]) == 2:
            await self._process(stream, reply[1], _field(reply[2]), attempt=1)
            return True
        if int(reply[0]) == 1:
            return False
        claimed = await client.xautoclaim(
            stream, self._group, self.consumer, int(bus.claim_idle_s * 1000), "0-0", count=1
        )
        entries, deleted = claimed[1], (claimed[2] if len(claimed) > 2 else [])
        if deleted:  # trimmed by MAXLEN while pending: nothing left to deliver
            await client.xack(stream, self._group, *deleted)
            return True
        if not entries:
            return False
        entry_id, fields = entries[0]
        info = await client.xpending_range(stream, self._group, entry_id, entry_id, 1)
        attempt = int(info[0]["times_delivered"]) if info else 1
        await self._process(stream, entry_id, _field(fields), attempt=attempt)
        return True

    async def _process(self, stream: str, entry_id: Any, data: bytes | str, attempt: int) -> None:
        bus, client, policy = self._bus, self._bus.client, self._policy
        event = decode_event(data)
        heartbeat = asyncio.create_task(self._heartbeat(stream, entry_id))
        try:
            while True:
                error: Exception | None = None
                if attempt <= policy.max_attempts + CRASH_REDELIVERY_ALLOWANCE:
                    try:
                        await self._handler(Delivery(event=event, attempt=attempt))
                    except Exception as exc:
                        error = exc
                else:
                    error = RuntimeError(f"delivered {attempt} times (consumers died mid-handler)")
                if error is None:
                    await client.xack(stream, self._group, entry_id)
                    return
                if attempt >= policy.max_attempts:
                    await bus.publish(dead_letter(event, error, attempt))
                    await client.xack(stream, self._group, entry_id)
                    log.warning("bus.dead_lettered", topic=event.topic, event_id=event.event_id)
                    return
                if self._stopping:  # leave it pending: another member reclaims it
                    return
                await bus.sleep(policy.delay_s(attempt, bus.rng))
                await client.xclaim(stream, self._group, self.consumer, 0, [entry_id])
                attempt += 1
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, stream: str, entry_id: Any) -> None:
        client = self._bus.client
        with contextlib.suppress(RedisError, OSError):
            while True:
                await asyncio.sleep(self._bus.claim_idle_s / 3)
                await client.xclaim(stream, self._group, self.consumer, 0, [entry_id], justid=True)


class RedisStreamsBus:
    """EventBus on Redis Streams. Timeouts come from the client (see :meth:`from_url`)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "hexcity:bus",
        partitions: int = 8,
        max_len_per_partition: int = 100_000,
        claim_idle_s: float = 30.0,
        poll_min_s: float = 0.005,
        poll_max_s: float = 0.2,
        stop_timeout_s: float = 30.0,
        rng: random.Random | None = None,
        sleep: Any = asyncio.sleep,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.partitions = partitions
        self.max_len_per_partition = max_len_per_partition
        self.claim_idle_s = claim_idle_s
        self.poll_min_s = poll_min_s
        self.poll_max_s = poll_max_s
        self.stop_timeout_s = stop_timeout_s
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.read_one = client.register_script(_READ_ONE_LUA)
        self._subs: list[RedisSubscription] = []
        self._closed = False
        self.owns_client = False

    @classmethod
    def from_url(
        cls, url: str = "redis://127.0.0.1:6379/0", *, timeout_s: float = 5.0, **kw: Any
    ) -> RedisStreamsBus:
        """A bus with its own client: connect and socket timeouts, bounded pool."""
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            max_connections=64,
            health_check_interval=30,
        )
        bus = cls(client, **kw)
        bus.owns_client = True
        return bus

    def stream_key(self, topic: str, partition: int) -> str:
        """The stream that holds one key partition of ``topic``."""
        return f"{self.prefix}:{topic}:{partition}"

    async def publish(self, event: Event) -> None:
        """``XADD`` to the key's partition stream (durable per Redis's persistence settings)."""
        if self._closed:
            raise BusClosedError("bus is closed")
        stream = self.stream_key(event.topic, partition_of(event.key, self.partitions))
        await self.client.xadd(
            stream,
            {_FIELD: encode_event(event)},
            maxlen=self.max_len_per_partition,
            approximate=True,
        )

    async def subscribe(
        self, topic: str, group: str, handler: Handler, *, policy: RetryPolicy | None = None
    ) -> RedisSubscription:
        """Join ``group`` (created at the oldest entry of each partition stream if missing)."""
        if self._closed:
            raise BusClosedError("bus is closed")
        for n in range(self.partitions):
            try:
                await self.client.xgroup_create(self.stream_key(topic, n), group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        sub = RedisSubscription(self, topic, group, handler, policy or RetryPolicy())
        self._subs.append(sub)
        return sub

    async def lag(self, topic: str, group: str, *, timeout_s: float = 5.0) -> int:
        """Events of ``topic`` not yet acked by ``group``, summed over the partition streams.

        One pipelined round trip (``XINFO GROUPS`` + ``XLEN`` per partition), bounded by
        ``timeout_s``. A missing stream counts 0; a missing group counts the stream's ``XLEN``.
        """
        pipe = self.client.pipeline(transaction=False)
        for n in range(self.partitions):
            key = self.stream_key(topic, n)
            pipe.xinfo_groups(key)
            pipe.xlen(key)
        replies = await asyncio.wait_for(pipe.execute(raise_on_error=False), timeout_s)
        wanted = {group, group.encode()}
        total = 0
        for groups, length in zip(replies[::2], replies[1::2], strict=True):
            if isinstance(groups, ResponseError):  # "no such key": the partition stream is empty
                continue
            if isinstance(groups, Exception):
                raise groups
            if isinstance(length, Exception):
                raise length
            info = next((g for g in groups if g.get("name") in wanted), None)
            if info is None or info.get("lag") is None:
                total += int(length)
            else:
                total += int(info["lag"]) + int(info.get("pending") or 0)
        return total

    async def delete_topic(self, topic: str) -> None:
        """Delete every partition stream of ``topic`` (tests, retention tooling)."""
        await self.client.delete(*(self.stream_key(topic, n) for n in range(self.partitions)))

    async def close(self) -> None:
        """Stop every subscription (in-flight handlers finish); close the client if we made it."""
        self._closed = True
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.stop()
        if self.owns_client:
            await self.client.aclose()
