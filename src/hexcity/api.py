"""The HTTP process edge: a FastAPI app with health probes and the routing API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hexcity import __version__
from hexcity.infra import get_logger
from hexcity.infra.admin import install_observability
from hexcity.infra.auth import ROUTING_ROUTE_SCOPES, WEBHOOKS_WRITE, AuthSettings, install_auth, require
from hexcity.infra.http import json_response
from hexcity.infra.webhooks import build_webhook_router, readiness_hook
from hexcity.kernel import HexcityError
from hexcity.platform import ModuleRuntime, Platform, build_clock_router
from hexcity.routing import RoutingService, build_routes

log = get_logger(__name__)


def create_app(
    service: RoutingService,
    auth: AuthSettings,
    platform: Platform | None = None,
    modules: Sequence[ModuleRuntime] = (),
) -> FastAPI:
    """The app; ``service`` may still be loading (readiness says when it is not).

    Every request except the public paths (probes, docs) is authenticated (``docs/auth.md``).
    With a ``platform``, its lifespan runs the webhook pool, the bus and the outbox relay, and
    ``POST /webhooks/{source}`` takes events (scope ``webhooks:write``) and ``/admin/v1/clock``
    reads or advances the platform's clock (scope ``admin``; docs/operations.md). Each business module's
    routers are mounted and its lifespan runs inside the platform's (started after, stopped before).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if platform is not None:
                await stack.enter_async_context(platform)
            for module in modules:
                if module.lifespan is not None:
                    await stack.enter_async_context(module.lifespan())
                    log.info("module_started", module=module.name)
            yield

    app = FastAPI(title="hexcity", version=__version__, docs_url="/docs", redoc_url=None, lifespan=lifespan)
    # the OSRM endpoints go first: they are the hot path, matched before docs and probes
    app.router.routes[:0] = build_routes(service)

    @app.get("/health/live")
    async def live() -> Response:
        return json_response({"status": "ok"})

    pool_ready = readiness_hook(platform.webhook_pool) if platform else (lambda: True)

    @app.get("/health/ready")
    async def ready() -> Response:
        status = service.status()
        status["webhooks_accepting"] = pool_ready()
        modules_ready = {m.name: m.ready() for m in modules}
        if modules:
            status["modules"] = modules_ready
        ok = service.ready and pool_ready() and all(modules_ready.values())
        return json_response(status, 200 if ok else 503)

    if platform is not None:
        app.include_router(
            build_webhook_router(platform.webhook_pool, platform.idempotency),
            dependencies=[Depends(require(WEBHOOKS_WRITE))],
        )
        app.include_router(build_clock_router(platform))  # scope admin; advance needs HEXCITY_CLOCK=manual

    for module in modules:
        for router in module.routers:
            app.include_router(router)

    @app.exception_handler(HexcityError)
    async def hexcity_error(_: Request, exc: HexcityError) -> Response:
        status = 413 if exc.code == "TooBig" else exc.status
        response = json_response({"code": exc.code, "message": exc.message}, status)
        if status in (429, 503):
            response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return json_response(
                {"code": "InvalidUrl", "message": f"URL {request.url.path} is not valid"}, 400
            )
        return json_response({"code": "InvalidQuery", "message": str(exc.detail)}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return json_response({"code": "InvalidQuery", "message": str(exc.errors()[:3])}, 400)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", error=type(exc).__name__)
        return json_response({"code": "InternalError", "message": "internal error"}, 500)

    install_auth(app, auth, route_scopes=ROUTING_ROUTE_SCOPES)
    install_observability(app)  # outermost: request ids and metrics cover rejected requests too
    return app
