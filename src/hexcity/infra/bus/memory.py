"""InProcessBus: the embedded default EventBus (asyncio, one process, not durable across restarts).

Model (Kafka-like, but ordered per key instead of per partition):

* Each topic is an append-only log of at most ``max_events_per_topic`` events. A consumer group
  has a cursor into it; a group created later starts at the oldest retained event. The log prefix
  that every group has finished (acked or dead-lettered) is trimmed.
* **Full buffer: publish blocks** (backpressure) for up to ``publish_timeout_s`` while the log is
  full, then raises :class:`BusFullError`. A topic nobody consumes (e.g. an unread ``.dlq``)
  therefore fills up and then pushes back; nothing is ever dropped silently.
* Per-key ordering: a group holds at most one event per key in flight; later events of a busy key
  are parked (by offset, so parking is bounded by the log) and released in order when the key's
  current event is acked or dead-lettered. A failing event blocks its key during its backoff.
* Each ``subscribe`` call adds one member (one worker task, one event at a time) to the group;
  members take the next ready event from the group, so work is split across members.
* A member that is stopped or cancelled mid-handler does not ack: the event goes back to the front
  of the group's ready queue and is redelivered to another (or a later) member.
* ``pending()`` counts the events live groups have yet to finish and ``drain()`` waits until it is
  0: the manual clock's "bus idle" step (docs/operations.md, virtual time).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hexcity.infra.bus.port import (
    CRASH_REDELIVERY_ALLOWANCE,
    BusClosedError,
    Delivery,
    Handler,
    RetryPolicy,
    dead_letter,
)
from hexcity.infra.logging import get_logger
from hexcity.kernel.events import Event

Sleep = Callable[[float], Awaitable[None]]

log = get_logger(__name__)


class BusFullError(RuntimeError):
    """The topic log stayed full for ``publish_timeout_s``: consumers are not keeping up."""


@dataclass(slots=True)
class _Group:
    cursor: int
    busy: dict[str, deque[int]] = field(default_factory=dict)
    ready: deque[int] = field(default_factory=deque)
    unfinished: set[int] = field(default_factory=set)
    attempts: dict[int, int] = field(default_factory=dict)


class _Topic:
    def __init__(self) -> None:
        self.log: deque[Event] = deque()
        self.base = 0
        self.groups: dict[str, _Group] = {}
        self.cond = asyncio.Condition()
        self.finished_total = 0  # events finished (acked or dead-lettered) by any group

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def event_at(self, offset: int) -> Event:
        return self.log[offset - self.base]

    def group(self, name: str) -> _Group:
        if name not in self.groups:
            self.groups[name] = _Group(cursor=self.base)
        return self.groups[name]

    def take(self, g: _Group) -> int | None:
        """Next offset the group may hand to a member now (its key is free), or None."""
        if g.ready:
            return g.ready.popleft()
        while g.cursor < self.end:
            offset = g.cursor
            g.cursor += 1
            g.unfinished.add(offset)
            key = self.event_at(offset).key
            if key in g.busy:
                g.busy[key].append(offset)
                continue
            g.busy[key] = deque()
            return offset
        return None

    def done(self, g: _Group, offset: int) -> None:
        """The group finished ``offset`` (acked or dead-lettered): free or pass on its key."""
        key = self.event_at(offset).key
        g.unfinished.discard(offset)
        g.attempts.pop(offset, None)
        self.finished_total += 1
        waiting = g.busy[key]
        if waiting:
            g.ready.append(waiting.popleft())
        else:
            del g.busy[key]
        self._trim()
        self.cond.notify_all()

    def requeue(self, g: _Group, offset: int) -> None:
        """Not acked (member stopped or cancelled): redeliver first, key stays held."""
        g.ready.appendleft(offset)
        self.cond.notify_all()

    def _trim(self) -> None:
        if not self.groups:
            return
        low = min(min(g.unfinished, default=g.cursor) for g in self.groups.values())
        while self.base < low and self.log:
            self.log.popleft()
            self.base += 1


class InProcessSubscription:
    """One member of a consumer group on an :class:`InProcessBus`."""

    def __init__(
        self, bus: InProcessBus, topic: _Topic, group: _Group, handler: Handler, policy: RetryPolicy
    ) -> None:
        self._bus = bus
        self._topic = topic
        self._group = group
        self._handler = handler
        self._policy = policy
        self._stopping = False
        self._in_backoff = False
        self._task = asyncio.create_task(self._run())

    @property
    def stopping(self) -> bool:
        """Stopped (or stopping): this member takes no more events."""
        return self._stopping or self._task.done()

    @property
    def topic(self) -> _Topic:
        return self._topic

    @property
    def group(self) -> _Group:
        return self._group

    async def stop(self) -> None:
        """Stop taking events; an in-flight handler finishes (bounded by the bus's stop timeout)."""
        self._stopping = True
        if self._in_backoff:
            self._task.cancel()
        async with self._topic.cond:
            self._topic.cond.notify_all()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._bus.stop_timeout_s)
        except TimeoutError:
            await self.abort()
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise

    async def abort(self) -> None:
        """Crash simulation: cancel now; the in-flight event is not acked and is redelivered."""
        self._stopping = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        topic, group = self._topic, self._group
        while not self._stopping:
            async with topic.cond:
                offset = topic.take(group)
                while offset is None and not self._stopping:
                    await topic.cond.wait()
                    offset = topic.take(group)
                if offset is None:
                    return
                if self._stopping:
                    topic.requeue(group, offset)
                    return
            await self._process(offset)

    async def _process(self, offset: int) -> None:
        topic, group, policy = self._topic, self._group, self._policy
        event = topic.event_at(offset)
        while True:
            attempt = group.attempts.get(offset, 0) + 1
            group.attempts[offset] = attempt
            error: Exception | None = None
            if attempt <= policy.max_attempts + CRASH_REDELIVERY_ALLOWANCE:
                try:
                    await self._handler(Delivery(event=event, attempt=attempt))
                except asyncio.CancelledError:
                    await self._requeue(offset)
                    raise
                except Exception as exc:
                    error = exc
                else:
                    await self._finish(offset)
                    return
            else:
                error = RuntimeError("attempts exhausted before delivery")
            if attempt >= policy.max_attempts:
                try:
                    await self._bus.publish(dead_letter(event, error, attempt))
                except (BusFullError, BusClosedError):
                    log.warning("bus.dlq_publish_failed", topic=event.topic, event_id=event.event_id)
                    await self._requeue(offset)
                    return
                log.warning("bus.dead_lettered", topic=event.topic, event_id=event.event_id)
                await self._finish(offset)
                return
            if self._stopping:
                await self._requeue(offset)
                return
            self._in_backoff = True
            try:
                await self._bus.sleep(policy.delay_s(attempt, self._bus.rng))
            except asyncio.CancelledError:
                await self._requeue(offset)
                raise
            finally:
                self._in_backoff = False

    async def _finish(self, offset: int) -> None:
        async with self._topic.cond:
            self._topic.done(self._group, offset)

    async def _requeue(self, offset: int) -> None:
        async with self._topic.cond:
            self._topic.requeue(self._group, offset)


class InProcessBus:
    """The embedded EventBus. Bounded: ``max_events_per_topic``; publish blocks, then raises.

    ``rng`` and ``sleep`` are injectable so tests can make backoff deterministic and instant.
    """

    def __init__(
        self,
        *,
        max_events_per_topic: int = 10_000,
        publish_timeout_s: float = 5.0,
        stop_timeout_s: float = 30.0,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_events_per_topic < 1:
            raise ValueError("max_events_per_topic must be >= 1")
        self.max_events_per_topic = max_events_per_topic
        self.publish_timeout_s = publish_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.rng = rng or random.Random()
        self.sleep = sleep
        self._topics: dict[str, _Topic] = {}
        self._subs: list[InProcessSubscription] = []
        self._closed = False

    def _topic(self, name: str) -> _Topic:
        if name not in self._topics:
            self._topics[name] = _Topic()
        return self._topics[name]

    async def publish(self, event: Event) -> None:
        """Append to the topic log; blocks while full, raises BusFullError after the timeout."""
        if self._closed:
            raise BusClosedError("bus is closed")
        topic = self._topic(event.topic)
        async with topic.cond:
            if len(topic.log) >= self.max_events_per_topic:
                try:
                    await asyncio.wait_for(
                        topic.cond.wait_for(lambda: len(topic.log) < self.max_events_per_topic),
                        self.publish_timeout_s,
                    )
                except TimeoutError:
                    raise BusFullError(
                        f"topic {event.topic!r} holds {self.max_events_per_topic} unconsumed events "
                        f"for {self.publish_timeout_s}s"
                    ) from None
            topic.log.append(event)
            topic.cond.notify_all()

    async def subscribe(
        self, topic: str, group: str, handler: Handler, *, policy: RetryPolicy | None = None
    ) -> InProcessSubscription:
        """Add a member to ``group`` on ``topic`` (the group starts at the oldest retained event)."""
        if self._closed:
            raise BusClosedError("bus is closed")
        t = self._topic(topic)
        sub = InProcessSubscription(self, t, t.group(group), handler, policy or RetryPolicy())
        self._subs.append(sub)
        return sub

    def lag(self, topic: str, group: str) -> int:
        """Events of ``topic`` the group has not finished yet (a consumer-lag gauge)."""
        t = self._topics.get(topic)
        if t is None:
            return 0
        if group not in t.groups:
            return len(t.log)
        g = t.groups[group]
        return (t.end - g.cursor) + len(g.unfinished)

    def pending(self) -> int:
        """Events some live consumer group has yet to finish, over every topic (0 = idle).

        Only groups with a running member count: a group whose members all stopped would never
        finish its backlog, and a topic nobody subscribes to (e.g. an unread ``.dlq``) has none.
        """
        live: dict[int, tuple[_Topic, set[int]]] = {}
        for sub in self._subs:
            if not sub.stopping:
                entry = live.setdefault(id(sub.topic), (sub.topic, set()))
                entry[1].add(id(sub.group))
        total = 0
        for topic, groups in live.values():
            for g in topic.groups.values():
                if id(g) in groups:
                    total += (topic.end - g.cursor) + len(g.unfinished)
        return total

    def finished_total(self) -> int:
        """Events finished (acked or dead-lettered) by any group since the bus started."""
        return sum(t.finished_total for t in self._topics.values())

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Wait until every published event is finished by every live group (:meth:`pending` is
        0); returns how many events were finished meanwhile. Raises TimeoutError after
        ``timeout_s`` (a handler stuck or retrying with a long backoff). Handlers may publish
        more events: those are waited for too.
        """
        before = self.finished_total()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        spins = 0
        while self.pending() > 0:
            if loop.time() > deadline:
                raise TimeoutError(f"bus not idle after {timeout_s}s ({self.pending()} events pending)")
            # yield first (handlers that never leave the loop), then let threads (SQL) progress
            await asyncio.sleep(0 if spins < 50 else 0.001)
            spins += 1
        return self.finished_total() - before

    def retained(self, topic: str) -> list[Event]:
        """A copy of the retained log of ``topic`` (for tests and a DLQ inspector)."""
        t = self._topics.get(topic)
        return list(t.log) if t else []

    async def close(self) -> None:
        """Stop every subscription (in-flight handlers finish) and refuse further use."""
        self._closed = True
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.stop()
