"""Location intake: the application service between the transports and the live driver index.

Transports (MQTT, HTTP batch, OsmAnd/Traccar, WebSocket) parse a report into a
:class:`~hexcity.dispatch.domain.pings.Ping` and hand it to :meth:`IngestService.submit` (fire and
forget) or :meth:`IngestService.ingest` (waits for the verdict). Both are non-blocking towards the
transport (dispatch.md §2.3):

* partition = FNV-1a-32(driver_id) % N; each partition has one bounded :class:`asyncio.Queue`
  and one worker task, so a driver's pings are processed one at a time in arrival order;
* a full queue rejects the ping at once (``dropped``); nothing is buffered without bound;
* the worker takes up to ``batch_size`` pings, runs each through the :class:`PingPipeline`
  (range, GCRA, dedupe, order, teleport, Kalman), optionally snaps the smoothed position to the
  road network, and writes the index once per driver of the batch (the latest accepted
  position wins: an older one would be overwritten at once anyway);
* if the index has ``upsert_many(rows) -> [None | exception per row]`` (one pipelined round trip
  on Redis), a batch's upserts go through it in one call; otherwise one ``upsert`` per driver
  (``index_write_concurrency`` of them in flight);
* receipt → index latency of every accepted ping goes into the histogram
  ``dispatch_ingest_latency_seconds`` (target p99 ≤ 200 ms, dispatch.md §2.3);
* ``driver.location.updates`` (key driver_id) is published through a bounded queue and one
  publisher task, at most one event per driver per ``publish_every_s`` (status changes always,
  including an ``offline`` event with ``expired: true`` when a driver's pings stop);
  a full queue or a failing bus drops the event (counted) and never stalls the workers — a location
  update is superseded by the next one anyway.

Driver state: ``online`` / ``busy`` / ``offline`` and last seen. A ping with status ``offline``
removes the driver from the index. The server marks a driver busy (:meth:`mark_busy`, e.g. on a
trip); while marked, pings keep moving the driver but the index status stays ``busy``, so
matching (which asks for ``online``) never sees them, until :meth:`mark_available`. State expires
with the index (``IndexParams.stale_after_s``); both maps are bounded by ``max_tracked_drivers``.

Counters: ``dispatch_pings_total{verdict}`` with every pipeline verdict (``accepted``,
``invalid_geo``, ``rate_limited``, ``duplicate``, ``out_of_order``, ``teleport``) plus
``dropped`` (queue full or service stopped), ``invalid`` (unparseable at a transport) and
``errors`` (an exception while processing a ping: logged, the worker carries on).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from hexcity.dispatch.domain.index import MAX_DRIVER_ID_LEN, DriverIndex, InvalidIndexInput
from hexcity.dispatch.domain.pings import Ping, PingPipeline, Verdict
from hexcity.dispatch.errors import DispatchError
from hexcity.dispatch.settings import IngestSettings
from hexcity.infra.bus import EventBus
from hexcity.infra.logging import get_logger
from hexcity.infra.metrics import once_per_registry
from hexcity.kernel import HexcityError, LatLng, Unavailable
from hexcity.kernel.events import Event

__all__ = [
    "DROPPED",
    "ERROR",
    "INVALID",
    "LOCATION_TOPIC",
    "QUEUED",
    "DriverState",
    "IngestCapacityError",
    "IngestService",
    "RoutingSnapper",
    "SnapEngine",
    "Snapper",
    "fnv1a_32",
    "partition_of",
]

log = get_logger(__name__)

LOCATION_TOPIC: Final = "driver.location.updates"
# results of IngestService.ingest besides the pipeline verdicts (Verdict values)
DROPPED: Final = "dropped"  # queue full, or the service is not running
INVALID: Final = "invalid"  # unparseable at a transport, or a driver id the index cannot hold
ERROR: Final = "errors"  # processing raised (logged); the worker carried on
UNKNOWN_DRIVER: Final = "unknown_driver"  # not a registered driver (only when a registry is given)
QUEUED: Final = "queued"  # still queued when the caller stopped waiting (it will be processed)
COUNTED: Final = (*(v.value for v in Verdict), DROPPED, INVALID, ERROR, UNKNOWN_DRIVER)
LATENCY_BUCKETS_S: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)
LATENCY_SAMPLES: Final = 10_000  # recent receipt -> index latencies kept for latency_quantile_s
TRACEBACK_INTERVAL_S: Final = 10.0  # at most one logged traceback per this, per service

_FNV_OFFSET: Final = 0x811C9DC5
_FNV_PRIME: Final = 0x01000193


def fnv1a_32(data: bytes) -> int:
    """32-bit FNV-1a (Fowler/Noll/Vo; draft-eastlake-fnv): stable across processes and versions."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def partition_of(driver_id: str, partitions: int) -> int:
    """The partition of a driver: FNV-1a-32 of its UTF-8 id modulo ``partitions``."""
    return fnv1a_32(driver_id.encode()) % partitions


class IngestCapacityError(DispatchError, Unavailable):
    """A bounded intake map is full (e.g. more busy drivers than ``max_tracked_drivers``)."""

    code = "IngestCapacity"
    status = 503


# -- road snapping ---------------------------------------------------------------------------------


class Snapper(Protocol):
    """Moves a position onto the road network; ``None`` keeps the unsnapped position."""

    def snap(self, lat: float, lng: float) -> tuple[float, float] | None: ...


class _Snapped(Protocol):
    @property
    def location(self) -> LatLng: ...


class SnapEngine(Protocol):
    """What :class:`RoutingSnapper` needs of ``hexcity.routing.RoutingEngine`` (structural, so
    that dispatch does not import routing's internals through its ``__init__``)."""

    def snap(self, point: LatLng, radius_m: float | None = None) -> _Snapped: ...


class RoutingSnapper:
    """:class:`Snapper` over ``hexcity.routing.RoutingEngine.snap`` (closest point on a road).

    Farther than ``max_distance_m`` from any road (routing raises ``NoSegment``) → ``None``: the
    driver keeps the smoothed GPS position (a car park, a ferry, a road missing from the map).
    """

    def __init__(self, engine: SnapEngine, max_distance_m: float = 50.0) -> None:
        if not max_distance_m > 0:
            raise ValueError(f"max_distance_m must be > 0, got {max_distance_m!r}")
        self._engine = engine
        self.max_distance_m = float(max_distance_m)

    def snap(self, lat: float, lng: float) -> tuple[float, float] | None:
        try:
            snapped = self._engine.snap(LatLng(lat, lng), self.max_distance_m)
        except HexcityError as exc:
            if exc.code == "NoSegment":  # compared by code: dispatch does not import routing errors
                return None
            raise
        return snapped.location.lat, snapped.location.lng


# -- metrics -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Families:
    pings: Counter
    latency_s: Histogram
    events: Counter


@once_per_registry
def _metric_families(registry: CollectorRegistry) -> _Families:
    """Created once per registry, so several services (tests) never register a name twice."""
    return _Families(
        pings=Counter(
            "dispatch_pings",
            "Driver location pings by outcome (pipeline verdict, dropped, invalid, errors).",
            ["verdict"],
            registry=registry,
        ),
        latency_s=Histogram(
            "dispatch_ingest_latency_seconds",
            "Receipt of an accepted ping to its position in the live index.",
            registry=registry,
            buckets=LATENCY_BUCKETS_S,
        ),
        events=Counter(
            "dispatch_location_events",
            "driver.location.updates events: published, dropped (queue full) or failed (bus).",
            ["result"],
            registry=registry,
        ),
    )


# -- driver state ------------------------------------------------------------------------------------


class DriverState(NamedTuple):
    """What intake knows about a driver: ``status`` is online, busy or offline."""

    status: str
    last_seen_s: float
    lat: float
    lng: float


@dataclass(slots=True)
class _State:
    status: str  # effective: what the index holds (busy while the server says so)
    reported: str  # what the driver's last accepted ping said
    last_seen_s: float
    lat: float
    lng: float
    ping: Ping  # the last accepted one (seq, timestamp, speed, bearing for the events)
    published_s: float = float("-inf")


@dataclass(slots=True)
class _Write:
    """The latest accepted ping of one driver within a worker batch."""

    ping: Ping
    lat: float
    lng: float
    received_s: float
    waiters: list[tuple[float, asyncio.Future[str] | None]] = field(default_factory=list)


_Item = tuple[Ping, float, float, "asyncio.Future[str] | None"]  # ping, received_s, t0 (perf), waiter
UpsertRow = tuple[str, float, float, str, float]  # driver_id, lat, lng, status, seen_at_s
UpsertMany = Callable[[Sequence[UpsertRow]], Awaitable[Sequence[BaseException | None]]]


def _resolve(waiter: asyncio.Future[str] | None, result: str) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(result)


# -- the service -------------------------------------------------------------------------------------


class IngestService:
    """Partitioned bounded intake of driver pings into a :class:`DriverIndex` (see module doc).

    ``clock`` is the receipt clock in unix seconds: it feeds the pipeline's GCRA, the index's
    ``seen_at_s`` and expiry. ``async with service:`` starts the workers, the expiry loop and the
    publisher; leaving drains the queues (at most ``drain_timeout_s``) and stops them. With
    ``expiry_loop=False`` (manual clock) no expiry loop runs: the platform calls :meth:`expire_now`
    on the clock's schedule and :meth:`drain` to apply what is queued before time moves on.
    """

    def __init__(
        self,
        pipeline: PingPipeline,
        index: DriverIndex,
        *,
        settings: IngestSettings,
        snapper: Snapper | None = None,
        known_driver: Callable[[str], bool] | None = None,
        bus: EventBus | None = None,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], float] = time.time,
        expiry_loop: bool = True,
    ) -> None:
        self.pipeline = pipeline
        self.expiry_loop = expiry_loop
        self.index = index
        self.settings = settings
        self.snapper = snapper
        self.known_driver = known_driver  # None: every driver id is accepted (embedded default)
        self.bus = bus if settings.publish_locations else None
        self.clock = clock
        fams = _metric_families(registry)
        self._counter = {name: fams.pings.labels(verdict=name) for name in COUNTED}
        self._latency = fams.latency_s
        self._events = {name: fams.events.labels(result=name) for name in ("published", "dropped", "failed")}
        self.counts: dict[str, int] = dict.fromkeys(COUNTED, 0)
        self.stats: dict[str, int] = {"expired": 0, "expire_errors": 0, "snap_errors": 0, "batches": 0}
        self.latencies_s: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._queues: list[asyncio.Queue[_Item]] = []
        self._publish_queue: asyncio.Queue[Event] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._states: OrderedDict[str, _State] = OrderedDict()  # least recently written first
        self._busy: set[str] = set()
        self._running = False
        self._last_traceback_s = float("-inf")
        self._done_total = 0  # pings taken off the queues and finished (any outcome)

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    async def __aenter__(self) -> IngestService:
        if self._running:
            raise RuntimeError("IngestService is already running")
        s = self.settings
        self._queues = [asyncio.Queue(maxsize=s.queue_size) for _ in range(s.partitions)]
        self._tasks = [
            asyncio.create_task(self._worker(q), name=f"dispatch-ingest-{i}")
            for i, q in enumerate(self._queues)
        ]
        if self.expiry_loop:
            self._tasks.append(asyncio.create_task(self._expiry_loop(), name="dispatch-ingest-expiry"))
        if self.bus is not None:
            self._publish_queue = asyncio.Queue(maxsize=s.publish_queue_size)
            self._tasks.append(
                asyncio.create_task(self._publisher(self._publish_queue), name="dispatch-loc-pub")
            )
        self._running = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Refuse new pings, drain the queues (bounded by ``drain_timeout_s``), stop the tasks."""
        if not self._running:
            return
        self._running = False
        deadline = time.monotonic() + self.settings.drain_timeout_s
        joins = [q.join() for q in self._queues]
        if self._publish_queue is not None:
            joins.append(self._publish_queue.join())
        for join in joins:
            remaining_s = deadline - time.monotonic()
            try:
                await asyncio.wait_for(join, max(remaining_s, 0.001))
            except TimeoutError:
                log.warning("dispatch.ingest.drain_timeout", timeout_s=self.settings.drain_timeout_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = 0
        for q in self._queues:
            while not q.empty():
                _, _, _, waiter = q.get_nowait()
                _resolve(waiter, DROPPED)
                left += 1
        if left:
            self._count(DROPPED, left)
            log.warning("dispatch.ingest.dropped_on_stop", pings=left)
        self._tasks = []

    # -- submit --------------------------------------------------------------------------------------

    def submit(self, ping: Ping, *, received_s: float | None = None) -> bool:
        """Queue ``ping`` without blocking; ``False`` if refused (queue full, stopped, bad driver id),
        which is counted (``dropped`` / ``invalid``). ``received_s`` overrides the receipt clock."""
        return self._enqueue(ping, received_s, None) is None

    async def ingest(self, ping: Ping, *, timeout_s: float | None = None) -> str:
        """Queue ``ping`` and wait for its outcome: a :class:`Verdict` value, ``dropped``,
        ``invalid``, ``errors``, or ``queued`` if it is still waiting after ``timeout_s``
        (default ``settings.result_timeout_s``). Never blocks on a full queue."""
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        refused = self._enqueue(ping, None, waiter)
        if refused is not None:
            return refused
        wait_s = self.settings.result_timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), wait_s)
        except TimeoutError:
            return QUEUED

    def count_invalid(self, n: int = 1) -> None:
        """Transports count the reports they could not parse (``invalid``)."""
        self._count(INVALID, n)

    def count_dropped(self, n: int = 1) -> None:
        """Transports count the reports they had to shed before ``submit`` (``dropped``)."""
        self._count(DROPPED, n)

    def _enqueue(
        self, ping: Ping, received_s: float | None, waiter: asyncio.Future[str] | None
    ) -> str | None:
        driver_id = ping.driver_id
        if not driver_id or len(driver_id) > MAX_DRIVER_ID_LEN:
            self._count(INVALID)
            return INVALID
        if self.known_driver is not None and not self.known_driver(driver_id):
            self._count(UNKNOWN_DRIVER)
            return UNKNOWN_DRIVER
        if not self._running:
            self._count(DROPPED)
            return DROPPED
        queue = self._queues[fnv1a_32(driver_id.encode()) % len(self._queues)]
        try:
            queue.put_nowait(
                (ping, self.clock() if received_s is None else received_s, time.perf_counter(), waiter)
            )
        except asyncio.QueueFull:
            self._count(DROPPED)
            return DROPPED
        return None

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n
        self._counter[name].inc(n)

    # -- queries -------------------------------------------------------------------------------------

    async def join(self, timeout_s: float = 5.0) -> None:
        """Wait until every ping queued so far has been processed; ``TimeoutError`` after
        ``timeout_s``."""
        await asyncio.wait_for(asyncio.gather(*(q.join() for q in self._queues)), timeout_s)

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Wait until every queued ping is applied to the index and every queued location event
        is handed to the bus; returns how many pings were finished meanwhile plus how many events
        were waiting (0 = nothing was pending). The manual clock's quiesce step."""
        before = self._done_total
        events = 0 if self._publish_queue is None else self._publish_queue.qsize()
        if not self._running:
            return 0
        joins = [q.join() for q in self._queues]
        if self._publish_queue is not None:
            joins.append(self._publish_queue.join())
        await asyncio.wait_for(asyncio.gather(*joins), timeout_s)
        return (self._done_total - before) + events

    def queue_depths(self) -> list[int]:
        return [q.qsize() for q in self._queues]

    def driver_state(self, driver_id: str) -> DriverState | None:
        """``(status, last_seen_s, lat, lng)`` of a driver seen within the expiry window, or None."""
        state = self._states.get(driver_id)
        if state is None:
            return None
        return DriverState(state.status, state.last_seen_s, state.lat, state.lng)

    def is_busy(self, driver_id: str) -> bool:
        return driver_id in self._busy

    def latency_quantile_s(self, q: float) -> float | None:
        """Quantile ``q`` of the last ``LATENCY_SAMPLES`` receipt → index latencies (None if none)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q!r}")
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def within_latency_target(self) -> bool:
        """Whether the recent receipt → index p99 meets ``settings.latency_target_s`` (True with no
        samples yet): a cheap readiness/alerting signal."""
        p99 = self.latency_quantile_s(0.99)
        return p99 is None or p99 <= self.settings.latency_target_s

    # -- busy marks (the server's) -----------------------------------------------------------------

    async def mark_busy(self, driver_id: str) -> None:
        """The server took the driver (offer accepted, on a trip): the index shows ``busy`` until
        :meth:`mark_available`, whatever the driver's pings say (except ``offline``)."""
        _check_driver_id(driver_id)
        if driver_id not in self._busy and len(self._busy) >= self.settings.max_tracked_drivers:
            raise IngestCapacityError(f"more than {self.settings.max_tracked_drivers} busy drivers")
        self._busy.add(driver_id)
        state = self._states.get(driver_id)
        if state is not None and state.status == "online":
            state.status = "busy"
            await self.index.upsert(driver_id, state.lat, state.lng, "busy", state.last_seen_s)
            self._publish(driver_id, state)

    async def mark_available(self, driver_id: str) -> None:
        """Lift :meth:`mark_busy`: the driver's own reported status applies again."""
        _check_driver_id(driver_id)
        self._busy.discard(driver_id)
        state = self._states.get(driver_id)
        if state is not None and state.status == "busy" and state.reported != "busy":
            state.status = state.reported
            await self.index.upsert(driver_id, state.lat, state.lng, state.reported, state.last_seen_s)
            self._publish(driver_id, state)

    def _effective(self, driver_id: str, reported: str) -> str:
        if reported == "offline":
            return "offline"
        return "busy" if driver_id in self._busy else reported

    # -- workers -------------------------------------------------------------------------------------

    def _log_failure(self, event: str, **fields: object) -> None:
        """Inside an ``except``: the traceback at most once per ``TRACEBACK_INTERVAL_S`` (rendering
        one costs milliseconds, so a flood of failing pings must not turn into a flood of
        tracebacks); a one-line warning otherwise."""
        now = time.monotonic()
        if now - self._last_traceback_s >= TRACEBACK_INTERVAL_S:
            self._last_traceback_s = now
            log.exception(event, **fields)
        else:
            log.warning(event, **fields)

    async def _worker(self, queue: asyncio.Queue[_Item]) -> None:
        batch_size = self.settings.batch_size
        while True:
            batch = [await queue.get()]
            while len(batch) < batch_size:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._handle_batch(batch)
            except Exception:  # _handle_batch guards each ping; this is a last resort
                self._log_failure("dispatch.ingest.batch_failed", pings=len(batch))
                self._count(ERROR)
            finally:
                self._done_total += len(batch)
                for _, _, _, waiter in batch:
                    _resolve(waiter, ERROR)  # only those not answered yet (cancelled mid-batch)
                    queue.task_done()

    async def _handle_batch(self, batch: list[_Item]) -> None:
        self.stats["batches"] += 1
        pipeline = self.pipeline
        snapper = self.snapper
        writes: dict[str, _Write] = {}
        for ping, received_s, t0, waiter in batch:
            try:
                outcome = pipeline.process(ping, received_s)
            except Exception:
                self._log_failure("dispatch.ingest.pipeline_failed", driver_id=ping.driver_id)
                self._count(ERROR)
                _resolve(waiter, ERROR)
                continue
            verdict = outcome.verdict
            self._count(verdict.value)
            position = outcome.position
            if verdict is not Verdict.ACCEPTED or position is None:
                _resolve(waiter, verdict.value)
                continue
            lat, lng = position.lat, position.lng
            if snapper is not None and ping.status != "offline":
                try:
                    snapped = snapper.snap(lat, lng)
                except Exception:
                    self.stats["snap_errors"] += 1
                    self._log_failure("dispatch.ingest.snap_failed", driver_id=ping.driver_id)
                    snapped = None
                if snapped is not None:
                    lat, lng = snapped
            write = writes.get(ping.driver_id)
            if write is None:
                writes[ping.driver_id] = write = _Write(ping, lat, lng, received_s)
            else:
                write.ping, write.lat, write.lng, write.received_s = ping, lat, lng, received_s
            write.waiters.append((t0, waiter))
        upsert_many = getattr(self.index, "upsert_many", None)
        if upsert_many is not None and len(writes) > 1:
            await self._apply_many(upsert_many, writes)
            return
        concurrency = self.settings.index_write_concurrency
        if concurrency <= 1 or len(writes) == 1:
            for driver_id, write in writes.items():
                await self._apply(driver_id, write)
            return
        items = list(writes.items())  # one write per driver: concurrent writes never reorder a driver
        for start in range(0, len(items), concurrency):
            await asyncio.gather(*(self._apply(d, w) for d, w in items[start : start + concurrency]))

    async def _apply(self, driver_id: str, write: _Write) -> None:
        """Write one driver's latest accepted position (or removal) to the index, then the state."""
        reported = write.ping.status
        status = self._effective(driver_id, reported)
        try:
            if status == "offline":
                await self.index.remove(driver_id)
            else:
                await self.index.upsert(driver_id, write.lat, write.lng, status, write.received_s)
                again = self._effective(driver_id, reported)
                if again != status:  # marked busy/available while the write was in flight
                    status = again
                    await self.index.upsert(driver_id, write.lat, write.lng, status, write.received_s)
        except Exception as exc:
            self._failed(driver_id, write, exc)
            return
        self._written(driver_id, reported, status, write)

    async def _apply_many(self, upsert_many: UpsertMany, writes: dict[str, _Write]) -> None:
        """One batched index call for the batch's upserts (removals one by one): a pipelined
        round trip on Redis instead of one per driver."""
        upserts: list[tuple[str, _Write, str]] = []
        for driver_id, write in writes.items():
            status = self._effective(driver_id, write.ping.status)
            if status == "offline":
                await self._apply(driver_id, write)
            else:
                upserts.append((driver_id, write, status))
        if not upserts:
            return
        rows = [(d, w.lat, w.lng, status, w.received_s) for d, w, status in upserts]
        outcomes: Sequence[BaseException | None]
        try:
            outcomes = await upsert_many(rows)
            if len(outcomes) != len(rows):
                raise RuntimeError(f"upsert_many answered {len(outcomes)} outcomes for {len(rows)} rows")
        except Exception as exc:
            outcomes = [exc] * len(rows)
        for (driver_id, write, status), outcome in zip(upserts, outcomes, strict=True):
            if outcome is not None:
                self._failed(driver_id, write, outcome)
                continue
            again = self._effective(driver_id, write.ping.status)
            if again != status:  # marked busy/available while the batch was in flight
                try:
                    await self.index.upsert(driver_id, write.lat, write.lng, again, write.received_s)
                except Exception as exc:
                    self._failed(driver_id, write, exc)
                    continue
            self._written(driver_id, write.ping.status, again, write)

    def _failed(self, driver_id: str, write: _Write, exc: BaseException) -> None:
        log.warning(
            "dispatch.ingest.index_write_failed",
            driver_id=driver_id,
            error=type(exc).__name__,
            message=str(exc)[:200],
        )
        self._count(ERROR, len(write.waiters))
        for _, waiter in write.waiters:
            _resolve(waiter, ERROR)

    def _written(self, driver_id: str, reported: str, status: str, write: _Write) -> None:
        now = time.perf_counter()
        observe = self._latency.observe
        for t0, waiter in write.waiters:
            latency_s = now - t0
            observe(latency_s)
            self.latencies_s.append(latency_s)
            _resolve(waiter, Verdict.ACCEPTED.value)
        self._remember(driver_id, reported, status, write)

    def _remember(self, driver_id: str, reported: str, status: str, write: _Write) -> None:
        states = self._states
        state = states.get(driver_id)
        changed = state is None or state.status != status
        if state is None:
            state = _State(status, reported, write.received_s, write.lat, write.lng, write.ping)
            states[driver_id] = state
            if len(states) > self.settings.max_tracked_drivers:
                states.popitem(last=False)
        else:
            states.move_to_end(driver_id)
            state.status, state.reported, state.last_seen_s = status, reported, write.received_s
            state.lat, state.lng = write.lat, write.lng
        state.ping = write.ping
        if changed or write.received_s - state.published_s >= self.settings.publish_every_s:
            self._publish(driver_id, state)

    def _publish(self, driver_id: str, state: _State, *, expired: bool = False) -> None:
        """Queue a ``driver.location.updates`` event of the driver's current state (never blocks);
        ``expired`` marks the ``offline`` event of a driver whose pings stopped."""
        queue = self._publish_queue
        if queue is None:
            return
        ping = state.ping
        event = Event(
            topic=LOCATION_TOPIC,
            key=driver_id,
            payload={
                "driver_id": driver_id,
                "lat": state.lat,
                "lng": state.lng,
                "status": state.status,
                "seen_at_s": state.last_seen_s,
                "seq": ping.seq,
                "timestamp_s": ping.timestamp_s,
                "speed_mps": ping.speed_mps,
                "bearing_deg": ping.bearing_deg,
                "expired": expired,
            },
            occurred_at_s=self.clock(),
        )
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            self._events["dropped"].inc()
            return
        state.published_s = state.last_seen_s

    async def _publisher(self, queue: asyncio.Queue[Event]) -> None:
        bus = self.bus
        if bus is None:  # pragma: no cover - only started with a bus
            return
        timeout_s = self.settings.publish_timeout_s
        while True:
            event = await queue.get()
            try:
                await asyncio.wait_for(bus.publish(event), timeout_s)
            except Exception as exc:
                self._events["failed"].inc()
                log.warning(
                    "dispatch.ingest.publish_failed", error=type(exc).__name__, message=str(exc)[:200]
                )
            else:
                self._events["published"].inc()
            finally:
                queue.task_done()

    async def _expiry_loop(self) -> None:
        interval_s = self.settings.expire_interval_s
        while True:
            await asyncio.sleep(interval_s)
            await self.expire_now()

    async def expire_now(self) -> int:
        """Expire stale drivers from the index and the state map now (the loop calls it every
        ``expire_interval_s``); returns how many the index removed. Never raises."""
        now_s = self.clock()
        removed = 0
        try:
            removed = await self.index.expire(now_s)
        except Exception as exc:
            self.stats["expire_errors"] += 1
            log.warning("dispatch.ingest.expire_failed", error=type(exc).__name__, message=str(exc)[:200])
        self.stats["expired"] += removed
        cutoff_s = now_s - self.index.params.stale_after_s
        states = self._states
        while states:
            driver_id, state = next(iter(states.items()))
            if state.last_seen_s > cutoff_s:
                break
            del states[driver_id]
            if state.status != "offline":  # tell consumers (live map, surge) the driver is gone
                state.status = "offline"
                self._publish(driver_id, state, expired=True)
        return removed


def _check_driver_id(driver_id: str) -> None:
    if not isinstance(driver_id, str) or not driver_id or len(driver_id) > MAX_DRIVER_ID_LEN:
        raise InvalidIndexInput(f"driver_id must be a string of 1..{MAX_DRIVER_ID_LEN} characters")
