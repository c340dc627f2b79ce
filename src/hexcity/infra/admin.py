"""The admin and diagnostics server: a separate port, token-protected, never on the public app.

Disabled unless ``HEXCITY_ADMIN_ENABLED=true``; then ``HEXCITY_ADMIN_TOKEN`` is required and every
request must carry ``Authorization: Bearer <token>`` (compared in constant time). Endpoints:

* ``GET /debug/profile?seconds=N&format=speedscope|html``: a CPU profile of the served event loop
  (pyinstrument, see :mod:`hexcity.infra.diagnostics`); one at a time (409), 1 <= N <= max;
* ``GET /debug/heap?top=N[&compare=true]``: tracemalloc top allocation sites (started on demand);
* ``GET /debug/tasks``: asyncio tasks with stacks; ``GET /debug/threads``: thread stacks;
* ``GET /debug/alloc``: allocator and GC statistics; ``GET /metrics``: the metrics registry.

Every request is logged (``admin_request``) with requester, path, parameters and status.
The module also holds :func:`install_observability` for the public app,
:func:`run_with_admin` to serve the main and admin servers on one event loop with a clean
SIGTERM shutdown, and :func:`start_pyroscope` for opt-in continuous profiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import signal
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any, Self

import orjson
import uvicorn
from prometheus_client import REGISTRY, CollectorRegistry
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hexcity.infra.diagnostics import (
    HeapTracer,
    LoopUnresponsive,
    ProfileFormat,
    alloc_stats,
    call_on_loop,
    profile_loop,
    task_dump,
    thread_dump,
)
from hexcity.infra.logging import get_logger
from hexcity.infra.metrics import (
    ASGIApp,
    MetricsMiddleware,
    Receive,
    Scope,
    Send,
    lag_monitor_for,
    metrics_endpoint,
    register_runtime_metrics,
)
from hexcity.infra.request_id import RequestIdMiddleware

log = get_logger(__name__)

MAX_TOP = 500


class AdminSettings(BaseSettings):
    """Settings of the admin server and continuous profiling (environment prefix ``HEXCITY_ADMIN_``)."""

    model_config = SettingsConfigDict(env_prefix="HEXCITY_ADMIN_", extra="ignore")

    enabled: bool = Field(default=False, description="serve the admin port at all")
    host: str = Field(default="127.0.0.1", description="bind address; loopback unless port-forwarded")
    port: int = Field(default=6060, ge=1, le=65535)
    token: SecretStr | None = Field(default=None, description="bearer token, required when enabled")
    max_profile_s: int = Field(default=60, ge=1, le=600, description="longest CPU profile allowed")
    profile_interval_s: float = Field(default=0.001, ge=0.0001, le=0.1, description="sampling period")
    heap_ttl_s: float = Field(default=600.0, ge=10, le=86_400, description="tracemalloc auto-stop")
    pyroscope_url: str | None = Field(default=None, description="opt-in continuous profiling server")
    pyroscope_app_name: str = "hexcity"
    pyroscope_sample_rate: int = Field(default=100, ge=1, le=1000)

    @model_validator(mode="after")
    def _token_when_enabled(self) -> Self:
        if self.enabled and (self.token is None or len(self.token.get_secret_value()) < 16):
            raise ValueError("HEXCITY_ADMIN_TOKEN (at least 16 characters) is required when enabled")
        return self


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _requester(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


class BearerAuthMiddleware:
    """Rejects requests without the right bearer token (401) and logs every request."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate, serve and audit-log one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                supplied = value
                break
        fields = {
            "requester": _requester(scope),
            "method": scope["method"],
            "path": scope["path"],
            "params": scope.get("query_string", b"").decode("latin-1")[:256],
        }
        if not hmac.compare_digest(supplied, self._expected):
            log.warning("admin_request", status=401, authenticated=False, **fields)
            response = _json({"code": "Unauthorized", "message": "bearer token required"}, 401)
            response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        status = 500
        start = time.monotonic()

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            log.info(
                "admin_request",
                status=status,
                authenticated=True,
                duration_s=round(time.monotonic() - start, 3),
                **fields,
            )


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int | Response:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        return _json({"code": "InvalidQuery", "message": f"{name} must be an integer in {low}..{high}"}, 400)
    return value


class _Diagnostics:
    """The endpoint handlers, sharing the profile gate and the heap tracer."""

    def __init__(self, settings: AdminSettings, target_loop: asyncio.AbstractEventLoop | None) -> None:
        self.settings = settings
        self.target_loop = target_loop
        self.profile_gate = threading.Lock()
        self.tracer = HeapTracer(ttl_s=settings.heap_ttl_s)

    def loop(self) -> asyncio.AbstractEventLoop:
        return self.target_loop or asyncio.get_running_loop()

    async def profile(self, request: Request) -> Response:
        seconds = _int_param(
            request, "seconds", min(30, self.settings.max_profile_s), 1, self.settings.max_profile_s
        )
        if isinstance(seconds, Response):
            return seconds
        fmt = request.query_params.get("format", "speedscope")
        if fmt not in ("speedscope", "html"):
            return _json({"code": "InvalidQuery", "message": "format must be speedscope or html"}, 400)
        if not self.profile_gate.acquire(blocking=False):
            return _json({"code": "Conflict", "message": "a CPU profile is already running"}, 409)
        try:
            pfmt: ProfileFormat = "speedscope" if fmt == "speedscope" else "html"
            body = await profile_loop(self.loop(), seconds, pfmt, self.settings.profile_interval_s)
        except LoopUnresponsive as exc:
            return _json({"code": "LoopUnresponsive", "message": str(exc)}, 503)
        finally:
            self.profile_gate.release()
        if fmt == "html":
            return Response(body, media_type="text/html; charset=utf-8")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return Response(
            body,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="profile-{stamp}.speedscope.json"'},
        )

    async def heap(self, request: Request) -> Response:
        if request.method == "DELETE":
            return _json({"stopped": self.tracer.stop()})
        top = _int_param(request, "top", 25, 1, MAX_TOP)
        if isinstance(top, Response):
            return top
        compare = request.query_params.get("compare", "false").lower() == "true"
        if not tracemalloc.is_tracing():  # starting is cheap and arms the TTL timer on this loop
            return _json(self.tracer.snapshot(top, compare))
        # a snapshot walks every traced block: take it off the event loop
        return _json(await asyncio.to_thread(self.tracer.snapshot, top, compare))

    async def tasks(self, _: Request) -> Response:
        loop = self.loop()
        try:
            dump = await call_on_loop(loop, lambda: task_dump(loop))
        except LoopUnresponsive as exc:
            return _json({"code": "LoopUnresponsive", "message": str(exc)}, 503)
        return _json({"count": len(dump), "tasks": dump})

    async def threads(self, _: Request) -> Response:
        dump = thread_dump()
        return _json({"count": len(dump), "threads": dump})

    async def alloc(self, _: Request) -> Response:
        return _json(alloc_stats())


def create_admin_app(
    settings: AdminSettings,
    *,
    target_loop: asyncio.AbstractEventLoop | None = None,
    registry: CollectorRegistry = REGISTRY,
) -> Starlette:
    """The admin ASGI app; ``target_loop`` is the loop to profile (default: the one serving admin)."""
    if settings.token is None:
        raise ValueError("the admin app needs a token")
    diag = _Diagnostics(settings, target_loop)
    routes = [
        Route("/debug/profile", diag.profile, methods=["GET"]),
        Route("/debug/heap", diag.heap, methods=["GET", "DELETE"]),
        Route("/debug/tasks", diag.tasks, methods=["GET"]),
        Route("/debug/threads", diag.threads, methods=["GET"]),
        Route("/debug/alloc", diag.alloc, methods=["GET"]),
        metrics_endpoint(registry),
    ]
    token = settings.token.get_secret_value()
    return Starlette(routes=routes, middleware=[Middleware(BearerAuthMiddleware, token=token)])


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the main server it runs next to."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_admin(
    settings: AdminSettings,
    *,
    target_loop: asyncio.AbstractEventLoop | None = None,
    registry: CollectorRegistry = REGISTRY,
) -> Any:
    """A ``uvicorn.Server`` for the admin app, or None when disabled: ``await server.serve()``.

    It installs no signal handlers (the main server owns SIGTERM); stop it with
    ``server.should_exit = True`` (see :func:`run_with_admin`).
    """
    if not settings.enabled:
        return None
    app = create_admin_app(settings, target_loop=target_loop, registry=registry)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    log.info("admin_server_enabled", host=settings.host, port=settings.port)
    return _QuietServer(config)


async def run_with_admin(main_config: Any, settings: AdminSettings | None = None) -> None:
    """Serve ``main_config`` (a ``uvicorn.Config``) and, if enabled, the admin server, then exit.

    SIGTERM/SIGINT make the main server shut down gracefully (a second SIGINT forces it); the
    admin server is stopped after the main one (bounded, 10 s) and the coroutine returns normally,
    so the process exits 0. Also starts Pyroscope when ``HEXCITY_ADMIN_PYROSCOPE_URL`` is set.
    """
    settings = settings or AdminSettings()
    start_pyroscope(settings)
    main = _QuietServer(main_config)
    admin = serve_admin(settings)
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, main.handle_exit, sig, None)
                handled.append(sig)
    admin_task = asyncio.create_task(admin.serve(), name="admin-server") if admin else None
    try:
        await main.serve()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        if admin is not None and admin_task is not None:
            admin.should_exit = True
            try:
                await asyncio.wait_for(admin_task, timeout=10)
            except TimeoutError:
                log.warning("admin_server_shutdown_timeout")
                admin_task.cancel()
                await asyncio.gather(admin_task, return_exceptions=True)
        log.info("servers_stopped")


def install_observability(app: Starlette, registry: CollectorRegistry = REGISTRY) -> None:
    """Add request ids, HTTP metrics (with the event-loop lag monitor) and ``GET /metrics`` to ``app``.

    Call it once, before the app starts. The lag monitor starts and stops with the app's lifespan.
    """
    register_runtime_metrics(registry)
    monitor = lag_monitor_for(registry)
    # add_middleware inserts outermost-last: metrics inside, request id outermost
    app.add_middleware(MetricsMiddleware, registry=registry, lag_monitor=monitor, routes=app.router.routes)
    app.add_middleware(RequestIdMiddleware)
    app.router.routes.append(metrics_endpoint(registry))


def start_pyroscope(settings: AdminSettings, tags: dict[str, str] | None = None) -> bool:
    """Start Pyroscope push-mode profiling when configured; never raises. Whether it started.

    Call it in each worker process after fork. ``pyroscope-io`` is not a dependency: install it
    in the image to use this.
    """
    if not settings.pyroscope_url:
        return False
    try:
        import pyroscope  # noqa: PLC0415 (optional, imported only when configured)

        pyroscope.configure(
            application_name=settings.pyroscope_app_name,
            server_address=settings.pyroscope_url,
            sample_rate=settings.pyroscope_sample_rate,
            tags=tags or {},
        )
    except Exception as exc:  # fail-safe: a profiler problem never stops the app
        log.warning("pyroscope_unavailable", error=f"{type(exc).__name__}: {exc}")
        return False
    log.info("pyroscope_started", app=settings.pyroscope_app_name)
    return True
