"""Prometheus metrics: an ASGI middleware labelled by route template, ``/metrics``, runtime gauges.

Every metric lives on an injectable :class:`~prometheus_client.CollectorRegistry`, so tests and
several apps in one process never share counters. Labels are bounded (operations.md pitfall 6):

* ``route`` is the matched route TEMPLATE (``/route/v1/{profile}/{coordinates:path}``), never the
  raw URL; a request no route matched is labelled ``<unmatched>``;
* ``method`` is one of the standard HTTP methods or ``OTHER``;
* ``reason`` of a rejection is derived from the status code through a fixed table.

The hot path is kept cheap: labelled children are cached per label tuple, so a request costs two
dict look-ups, one counter increment and one histogram observation (a few microseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hexcity.infra.logging import get_logger

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = get_logger(__name__)

UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# latency buckets for a ~1 ms hot path up to multi-second matrices
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
REJECT_REASONS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "too_big",
    422: "validation",
    429: "overloaded",
}
_MAX_CHILDREN = 10_000  # a guard: past this many label tuples the cache stops growing


class HttpMetrics:
    """The HTTP metric families of one registry (created once per registry, see :func:`http_metrics`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status code.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency (first byte received to last byte sent) by route template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rejected = Counter(
            "http_requests_rejected_total",
            "Requests rejected with a 4xx (validation, too big, overload 429, ...) by reason.",
            ("reason",),
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight", "HTTP requests being served now.", registry=registry
        )
        self._counts: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[tuple[str, str], Any] = {}
        self._rejects: dict[int, Any] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request (cached children: no label resolution on the hot path)."""
        key = (method, route, status)
        counter = self._counts.get(key)
        if counter is None:
            counter = self.requests.labels(method, route, str(status))
            if len(self._counts) < _MAX_CHILDREN:
                self._counts[key] = counter
        counter.inc()
        dkey = (method, route)
        hist = self._durations.get(dkey)
        if hist is None:
            hist = self.duration.labels(method, route)
            if len(self._durations) < _MAX_CHILDREN:
                self._durations[dkey] = hist
        hist.observe(seconds)
        if 400 <= status < 500:
            rejected = self._rejects.get(status)
            if rejected is None:
                rejected = self._rejects[status] = self.rejected.labels(
                    REJECT_REASONS.get(status, "client_error")
                )
            rejected.inc()


T = TypeVar("T")


def once_per_registry(factory: Callable[[CollectorRegistry], T]) -> Callable[[CollectorRegistry], T]:
    """``factory(registry)`` made once per registry and then reused (thread-safe, weakly keyed), so
    several services sharing a registry (tests, several pools) never register a metric name twice.
    Use as a decorator on the function that creates a module's metric families."""
    made: weakref.WeakKeyDictionary[CollectorRegistry, T] = weakref.WeakKeyDictionary()
    lock = threading.Lock()

    def get(registry: CollectorRegistry) -> T:
        with lock:
            found = made.get(registry)
            if found is None:
                found = made[registry] = factory(registry)
            return found

    get.__doc__ = factory.__doc__
    return get


@once_per_registry
def http_metrics(registry: CollectorRegistry) -> HttpMetrics:
    """The :class:`HttpMetrics` of ``registry``, created on first use (idempotent per registry)."""
    return HttpMetrics(registry)


def route_template(scope: Scope, endpoints: EndpointTemplates | None = None) -> str:
    """The template of the route the router matched in ``scope``, or ``<unmatched>``.

    Starlette's router leaves the matched route in ``scope["route"]``. FastAPI (0.16x) does so
    only for its own ``APIRoute``; for a plain Starlette ``Route`` it leaves just
    ``scope["endpoint"]``, which ``endpoints`` maps back to the route's template.
    """
    route = scope.get("route")
    if route is not None:
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else UNMATCHED
    endpoint = scope.get("endpoint")
    if endpoint is not None and endpoints is not None:
        return endpoints.template(endpoint)
    return UNMATCHED


class EndpointTemplates:
    """Maps endpoint callables to their route templates, from a live list of routes (cached)."""

    def __init__(self, routes: Sequence[Any]) -> None:
        self._routes = routes
        self._cache: dict[Any, str] = {}

    def template(self, endpoint: Any) -> str:
        """The template of the first route whose endpoint is ``endpoint``, else ``<unmatched>``."""
        try:
            found = self._cache.get(endpoint)
        except TypeError:  # an unhashable endpoint
            return UNMATCHED
        if found is None:
            found = UNMATCHED
            for route in self._routes:
                path = getattr(route, "path", None)
                if getattr(route, "endpoint", None) is endpoint and isinstance(path, str):
                    found = path
                    break
            if len(self._cache) < _MAX_CHILDREN:
                self._cache[endpoint] = found
        return found


class MetricsMiddleware:
    """Pure ASGI middleware recording request count, latency and rejections per route template.

    Lifespan events start and stop the optional :class:`EventLoopLagMonitor` so that the monitor
    runs on the server's own event loop. Pass the app's ``routes`` list (``app.router.routes``)
    so that plain Starlette routes inside a FastAPI app are labelled by template too.
    """

    def __init__(
        self,
        app: ASGIApp,
        registry: CollectorRegistry = REGISTRY,
        lag_monitor: EventLoopLagMonitor | None = None,
        routes: Sequence[Any] | None = None,
    ) -> None:
        self.app = app
        self.metrics = http_metrics(registry)
        self.lag_monitor = lag_monitor
        self.endpoints = EndpointTemplates(routes) if routes is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call, timing HTTP requests."""
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and self.lag_monitor is not None:
                receive = self._lifespan_receive(receive)
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method not in _METHODS:
            method = "OTHER"
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_flight = self.metrics.in_flight
        in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            in_flight.dec()
            route = route_template(scope, self.endpoints)
            self.metrics.record(method, route, status, time.perf_counter() - start)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        monitor = self.lag_monitor
        assert monitor is not None

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                monitor.start()
            elif message["type"] == "lifespan.shutdown":
                await monitor.stop()
            return message

        return wrapped


def metrics_endpoint(registry: CollectorRegistry = REGISTRY) -> Route:
    """A ``GET /metrics`` route serving ``registry`` in the Prometheus text exposition format."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"], include_in_schema=False)


class EventLoopLagMonitor:
    """Measures how late the event loop wakes a sleeping task: a bounded background task.

    Every ``interval_s`` it sleeps and records (actual - expected) wake-up delay. One task at most;
    :meth:`stop` cancels it and waits for it (bounded).
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY, interval_s: float = 0.5) -> None:
        if not 0.01 <= interval_s <= 60:
            raise ValueError("interval_s must be within 0.01..60")
        self.interval_s = interval_s
        self.lag = Histogram(
            "event_loop_lag_seconds",
            "Delay between when the event loop should wake a task and when it does.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.last = Gauge(
            "event_loop_lag_last_seconds", "The most recent event-loop lag sample.", registry=registry
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the sampling task is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start sampling on the running loop (idempotent)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-loop-lag")

    async def stop(self) -> None:
        """Stop sampling and wait (at most 1 s) for the task to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=1.0)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, loop.time() - expected)
            self.lag.observe(lag)
            self.last.set(lag)


def cgroup_memory_limit_bytes() -> float:
    """The container memory limit from cgroup v2 (or v1); ``+Inf`` when unlimited or unknown."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 62:
            return float(raw)
        return float("inf")
    return float("inf")


def register_runtime_metrics(registry: CollectorRegistry) -> None:
    """Process (RSS, CPU, fds), GC and platform collectors plus the container memory limit.

    The global :data:`REGISTRY` already carries the process, GC and platform collectors; they are
    only added to other registries. Registering twice on one registry is a no-op.
    """
    if registry is not REGISTRY:
        for make in (ProcessCollector, GCCollector, PlatformCollector):
            with contextlib.suppress(ValueError):  # already registered
                make(registry=registry)
    with contextlib.suppress(ValueError):
        limit = Gauge(
            "process_memory_limit_bytes",
            "The container (cgroup) memory limit; compare with process_resident_memory_bytes.",
            registry=registry,
        )
        limit.set(cgroup_memory_limit_bytes())


_monitors: weakref.WeakKeyDictionary[CollectorRegistry, EventLoopLagMonitor] = weakref.WeakKeyDictionary()


def lag_monitor_for(registry: CollectorRegistry) -> EventLoopLagMonitor:
    """The one :class:`EventLoopLagMonitor` of ``registry`` (created on first use)."""
    monitor = _monitors.get(registry)
    if monitor is None:
        monitor = _monitors[registry] = EventLoopLagMonitor(registry)
    return monitor
