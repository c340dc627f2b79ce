"""NatsJetStreamBus: the EventBus port on NATS JetStream (nats-py).

Mapping:

* One stream per topic, ``<prefix>_<topic>_<crc>`` (dots are not allowed in stream names, the crc
  keeps ``a.b`` and ``a_b`` apart), holding the subjects ``<prefix>.<topic>.p<n>`` for the
  ``partitions`` key partitions (``n = crc32(key) % partitions``; every producer and consumer must
  use the same ``partitions``). Bounded: ``max_msgs_per_stream``, ``max_bytes_per_stream``,
  ``max_age_s``, ``discard=new`` (a full stream makes ``publish`` raise instead of losing data).
* ``publish`` waits for the stream's PubAck and sets ``Nats-Msg-Id = event_id``, so a re-publish
  (outbox relay after a crash) inside ``duplicate_window_s`` is deduplicated by the server.
* A group is one durable pull consumer per partition (``<group>_<crc>_p<n>``), explicit ack,
  ``max_ack_pending=1``: the server hands out the next message of a partition only after the
  previous one is acked or terminally handled, whichever group member fetched it. That is the
  per-key ordering; work is split across members at partition granularity.
* Ack only after the handler succeeded. Failure: ``nak(delay=full-jitter backoff)``; the nak'd
  message stays pending, so its partition waits (order kept). The attempt is the server's
  ``num_delivered``. At ``max_attempts`` the event is published to ``<topic>.dlq`` and then acked.
* A killed consumer never acks; the server redelivers after ``ack_wait_s``. A live handler sends
  ``in_progress`` every ``ack_wait_s / 3`` so long handlers are not redelivered under it.
* ``lag(topic, group)``: per partition, the durable consumer's ``num_pending + num_ack_pending``
  (not yet delivered + delivered, not acked); a partition without the group's consumer yet counts
  every message the stream holds on that subject (the group would start at the oldest one).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import zlib
from typing import Any

import nats
from nats.js import api
from nats.js.errors import NotFoundError

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

_TOPIC_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_RECONNECT_PAUSE_S = 0.5


def _safe(name: str) -> str:
    """A stream/durable-name-safe, collision-free rendering of a topic or group name."""
    if not _TOPIC_RE.match(name):
        raise ValueError(f"invalid name {name!r}: use letters, digits, '_', '-' and '.'")
    return f"{name.replace('.', '_')}_{zlib.crc32(name.encode()):08x}"


class NatsSubscription:
    """One group member: a fetch loop per partition consumer."""

    def __init__(self, bus: NatsJetStreamBus, subs: list[Any], handler: Handler, policy: RetryPolicy) -> None:
        self._bus = bus
        self._subs = subs
        self._handler = handler
        self._policy = policy
        self._stopping = False
        self._tasks = [asyncio.create_task(self._loop(s)) for s in subs]

    async def stop(self) -> None:
        """Stop fetching; in-flight handlers finish and ack (bounded by the bus's stop timeout)."""
        self._stopping = True
        _, pending = await asyncio.wait(self._tasks, timeout=self._bus.stop_timeout_s)
        if pending:
            await self.abort()
        await self._unsubscribe()

    async def abort(self) -> None:
        """Crash simulation: cancel now, ack nothing; the server redelivers after ack_wait."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sub.unsubscribe(), self._bus.request_timeout_s)

    async def _loop(self, sub: Any) -> None:
        while not self._stopping:
            try:
                msgs = await sub.fetch(1, timeout=self._bus.fetch_timeout_s)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost / reconnecting: pause, then fetch again
                log.warning("bus.nats.fetch_failed", error=repr(exc))
                await asyncio.sleep(_RECONNECT_PAUSE_S)
                continue
            for msg in msgs:
                await self._process(msg)

    async def _process(self, msg: Any) -> None:
        bus, policy = self._bus, self._policy
        event = decode_event(msg.data)
        attempt = int(msg.metadata.num_delivered)
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        try:
            error: Exception | None = None
            if attempt <= policy.max_attempts + CRASH_REDELIVERY_ALLOWANCE:
                try:
                    await self._handler(Delivery(event=event, attempt=attempt))
                except Exception as exc:
                    error = exc
            else:
                error = RuntimeError(f"delivered {attempt} times (consumers died mid-handler)")
            if error is None:
                await msg.ack_sync(timeout=bus.request_timeout_s)
            elif attempt >= policy.max_attempts:
                await bus.publish(dead_letter(event, error, attempt))
                await msg.ack_sync(timeout=bus.request_timeout_s)
                log.warning("bus.dead_lettered", topic=event.topic, event_id=event.event_id)
            else:
                await msg.nak(delay=policy.delay_s(attempt, bus.rng))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ack/nak/DLQ publish failed: the server redelivers after ack_wait
            log.warning("bus.nats.settle_failed", event_id=event.event_id, error=repr(exc))
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, msg: Any) -> None:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(self._bus.ack_wait_s / 3)
                await msg.in_progress()


class NatsJetStreamBus:
    """EventBus on NATS JetStream. Connects lazily; every request has a timeout."""

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        stream_prefix: str = "hexcity",
        partitions: int = 8,
        ack_wait_s: float = 30.0,
        fetch_timeout_s: float = 1.0,
        request_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        stop_timeout_s: float = 30.0,
        max_msgs_per_stream: int = 1_000_000,
        max_bytes_per_stream: int = 1 << 30,
        max_age_s: float = 7 * 86_400.0,
        duplicate_window_s: float = 120.0,
        max_reconnect_attempts: int = 60,
        rng: random.Random | None = None,
    ) -> None:
        if not _TOPIC_RE.match(stream_prefix) or "." in stream_prefix:
            raise ValueError("stream_prefix must be one subject token")
        self.url = url
        self.stream_prefix = stream_prefix
        self.partitions = partitions
        self.ack_wait_s = ack_wait_s
        self.fetch_timeout_s = fetch_timeout_s
        self.request_timeout_s = request_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.max_msgs_per_stream = max_msgs_per_stream
        self.max_bytes_per_stream = max_bytes_per_stream
        self.max_age_s = max_age_s
        self.duplicate_window_s = duplicate_window_s
        self.max_reconnect_attempts = max_reconnect_attempts
        self.rng = rng or random.Random()
        self._nc: Any = None
        self._js: Any = None
        self._streams: set[str] = set()
        self._subs: list[NatsSubscription] = []
        self._closed = False
        self._lock = asyncio.Lock()

    def stream_name(self, topic: str) -> str:
        """The JetStream stream that holds ``topic``."""
        return f"{self.stream_prefix}_{_safe(topic)}"

    def subject(self, topic: str, partition: int) -> str:
        """The subject of one key partition of ``topic``."""
        _safe(topic)
        return f"{self.stream_prefix}.{topic}.p{partition}"

    async def _jetstream(self) -> Any:
        if self._closed:
            raise BusClosedError("bus is closed")
        async with self._lock:
            if self._js is None:
                self._nc = await nats.connect(
                    self.url,
                    connect_timeout=self.connect_timeout_s,
                    max_reconnect_attempts=self.max_reconnect_attempts,
                    reconnect_time_wait=_RECONNECT_PAUSE_S,
                    name=f"hexcity-bus-{self.stream_prefix}",
                )
                self._js = self._nc.jetstream(timeout=self.request_timeout_s)
            return self._js

    async def _ensure_stream(self, topic: str) -> str:
        name = self.stream_name(topic)
        if name in self._streams:
            return name
        js = await self._jetstream()
        try:
            await js.stream_info(name)
        except NotFoundError:
            config = api.StreamConfig(
                name=name,
                subjects=[f"{self.stream_prefix}.{topic}.*"],
                retention=api.RetentionPolicy.LIMITS,
                max_msgs=self.max_msgs_per_stream,
                max_bytes=self.max_bytes_per_stream,
                max_age=self.max_age_s,
                discard=api.DiscardPolicy.NEW,
                duplicate_window=self.duplicate_window_s,
                storage=api.StorageType.FILE,
            )
            try:
                await js.add_stream(config)
            except Exception:  # lost a creation race: fine if it exists now
                await js.stream_info(name)
        self._streams.add(name)
        return name

    async def publish(self, event: Event) -> None:
        """Publish and wait for the PubAck (durable); ``Nats-Msg-Id`` = event_id dedupes."""
        stream = await self._ensure_stream(event.topic)
        js = await self._jetstream()
        subject = self.subject(event.topic, partition_of(event.key, self.partitions))
        await js.publish(
            subject,
            encode_event(event),
            timeout=self.request_timeout_s,
            stream=stream,
            headers={"Nats-Msg-Id": event.event_id},
        )

    async def subscribe(
        self, topic: str, group: str, handler: Handler, *, policy: RetryPolicy | None = None
    ) -> NatsSubscription:
        """Join ``group``: bind to (creating if needed) the group's durable consumer per partition."""
        stream = await self._ensure_stream(topic)
        js = await self._jetstream()
        subs = []
        for n in range(self.partitions):
            subject = self.subject(topic, n)
            config = api.ConsumerConfig(
                durable_name=f"{_safe(group)}_p{n}",
                deliver_policy=api.DeliverPolicy.ALL,
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=self.ack_wait_s,
                max_deliver=-1,
                max_ack_pending=1,
                max_waiting=512,
                filter_subject=subject,
            )
            subs.append(
                await js.pull_subscribe(subject, durable=config.durable_name, stream=stream, config=config)
            )
        sub = NatsSubscription(self, subs, handler, policy or RetryPolicy())
        self._subs.append(sub)
        return sub

    async def lag(self, topic: str, group: str) -> int:
        """Events of ``topic`` not yet acked by ``group``, summed over the partitions.

        Per partition: the group's durable consumer's ``num_pending + num_ack_pending``; where the
        group has no consumer yet, the stream's message count on that partition's subject (a new
        group starts at the oldest retained message). 0 if the topic's stream does not exist.
        Every request is bounded by ``request_timeout_s``.
        """
        js = await self._jetstream()
        stream = self.stream_name(topic)
        durable = _safe(group)
        total = 0
        missing: list[str] = []
        for n in range(self.partitions):
            try:
                info = await js.consumer_info(stream, f"{durable}_p{n}", timeout=self.request_timeout_s)
            except NotFoundError:  # no such consumer (or no stream: then the count below is 0)
                missing.append(self.subject(topic, n))
                continue
            total += int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        if missing:
            try:
                sinfo = await asyncio.wait_for(
                    js.stream_info(stream, subjects_filter=f"{self.stream_prefix}.{topic}.*"),
                    self.request_timeout_s,
                )
            except NotFoundError:
                return total
            counts = sinfo.state.subjects or {}
            total += sum(int(counts.get(subject, 0)) for subject in missing)
        return total

    async def delete_topic(self, topic: str) -> None:
        """Delete the stream of ``topic`` with its consumers (tests, retention tooling)."""
        js = await self._jetstream()
        name = self.stream_name(topic)
        self._streams.discard(name)
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)

    async def close(self) -> None:
        """Stop every subscription (in-flight handlers finish), then close the connection."""
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.stop()
        self._closed = True
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), self.request_timeout_s)
            self._nc = self._js = None
