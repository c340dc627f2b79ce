"""HTTP and WebSocket location intake: a thin FastAPI router over :class:`IngestService`.

=======================================  ==========================================================
endpoint                                 contract
=======================================  ==========================================================
``POST /dispatch/v1/pings``              body ``{"pings": [<JSON ping>, ...]}`` (at most
                                         ``max_batch``); 200 ``{"accepted": n, "results": [...]}``
                                         with one result per ping, in order: ``{"result":
                                         "accepted"}``, a rejection (``rate_limited``,
                                         ``duplicate``, ``out_of_order``, ``teleport``,
                                         ``invalid_geo``, ``dropped``, ``errors``, ``queued``) or
                                         ``{"result": "invalid", "code", "message"}``.
                                         400 ``InvalidJson``/``InvalidBatch``, 413
                                         ``PayloadTooLarge``/``BatchTooLarge``, 403 if a ping is for
                                         a driver the caller may not report.
``GET|POST /dispatch/v1/osmand``         the OsmAnd/Traccar protocol: ``id`` (or ``deviceid``),
                                         ``lat``, ``lon``, ``timestamp``, ``speed`` (knots),
                                         ``bearing``, ``accuracy`` in the query string (POST: or a
                                         form body, or the Traccar Client's JSON body). 200 empty
                                         body when taken (accepted, or a
                                         duplicate/out-of-order/teleport the device must not
                                         resend); 400 bad input; 429 rate limited or queue full
                                         (``Retry-After: 1``); 503 processing failed.
``WS /dispatch/v1/drivers/ws``           each text frame one JSON ping (``driver_id`` defaults to
                                         the authenticated driver); answers ``{"seq": n, "r":
                                         "<result>"}``; a bad frame gets ``{"error": code,
                                         "message": ...}`` and the connection stays open.
=======================================  ==========================================================

Auth: scope ``locations:write``; a driver (role ``driver``) may only report its own id, a service
(API key) or an admin any id.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request, WebSocket, WebSocketDisconnect
from starlette.responses import Response

from hexcity.dispatch.domain.pings import KNOT_MPS, Ping, Verdict, parse_osmand, parse_ping
from hexcity.dispatch.errors import InvalidPing
from hexcity.dispatch.ingest import DROPPED, INVALID, QUEUED, UNKNOWN_DRIVER, IngestService
from hexcity.dispatch.settings import IngestSettings
from hexcity.infra.auth import (
    LOCATIONS_WRITE,
    AuthError,
    Principal,
    Role,
    Unauthenticated,
    authorize_owner,
    check_scopes,
    require,
)
from hexcity.infra.auth.dependencies import API_KEY_HEADER, STATE_KEY, Authenticator
from hexcity.infra.http import json_response, read_body
from hexcity.infra.logging import get_logger

__all__ = ["build_ingest_router"]

log = get_logger(__name__)

# OsmAnd answers: the device stops resending on 200, so every final rejection is a 200 too
_OSMAND_TAKEN: Final = frozenset(
    {
        Verdict.ACCEPTED.value,
        Verdict.DUPLICATE.value,
        Verdict.OUT_OF_ORDER.value,
        Verdict.TELEPORT.value,
        QUEUED,
    }
)
_OSMAND_RETRY: Final = frozenset({Verdict.RATE_LIMITED.value, DROPPED})
_FORM: Final = "application/x-www-form-urlencoded"

LocationWriter = Annotated[Principal, Depends(require(LOCATIONS_WRITE))]


def _dumps(body: dict[str, Any]) -> str:
    return orjson.dumps(body).decode()


def _error(status: int, code: str, message: str) -> Response:
    return json_response({"code": code, "message": message}, status)


def _traccar_json(data: Any) -> dict[str, str]:
    """The Traccar Client's JSON report (``{"device_id", "location": {"timestamp", "coords":
    {"latitude", "longitude", "accuracy", "speed" (m/s), "heading"}}}``, as Traccar's own OsmAnd
    decoder reads it) → the OsmAnd query fields; negative speed/heading mean unknown."""
    location = data.get("location") if isinstance(data, dict) else None
    coords = location.get("coords") if isinstance(location, dict) else None
    if not isinstance(location, dict) or not isinstance(coords, dict):
        raise InvalidPing("a Traccar JSON report needs 'device_id' and 'location.coords'")
    fields: dict[str, str] = {}

    def put(key: str, value: Any, *, scale: float = 1.0, optional: bool = False, text: bool = False) -> None:
        if value is None:
            return
        if isinstance(value, str) and text:
            fields[key] = value
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidPing(f"field {key!r} must be a number")
        if optional and value < 0:
            return  # -1: unknown
        fields[key] = str(value) if scale == 1.0 else repr(value / scale)

    put("id", data.get("device_id"), text=True)
    put("timestamp", location.get("timestamp"), text=True)
    put("lat", coords.get("latitude"))
    put("lon", coords.get("longitude"))
    put("accuracy", coords.get("accuracy"), optional=True)
    put("speed", coords.get("speed"), scale=KNOT_MPS, optional=True)  # m/s -> knots, as OsmAnd sends
    put("bearing", coords.get("heading"), optional=True)
    return fields


def _authorize(principal: Principal, driver_id: str) -> None:
    """A service reports for any driver; everyone else only for itself (admin: any)."""
    if principal.role is Role.SERVICE:
        return
    authorize_owner(principal, "driver", driver_id)


def _ws_principal(websocket: WebSocket) -> Principal:
    """The caller of a WebSocket: set by the auth middleware, or authenticated here."""
    principal = websocket.scope.get("state", {}).get("principal")
    if isinstance(principal, Principal):
        return principal
    authenticator = getattr(websocket.app.state, STATE_KEY, None)
    if not isinstance(authenticator, Authenticator):
        raise Unauthenticated("authentication is not configured")
    return authenticator.authenticate(
        websocket.headers.get("authorization"), websocket.headers.get(API_KEY_HEADER)
    )


def build_ingest_router(
    service: IngestService, settings: IngestSettings | None = None, *, prefix: str = "/dispatch/v1"
) -> APIRouter:
    """The intake routes; include with ``app.include_router(build_ingest_router(service))``.

    ``settings`` (limits of bodies, batches and frames) default to the service's."""
    settings = service.settings if settings is None else settings
    router = APIRouter(tags=["dispatch intake"])

    @router.post(f"{prefix}/pings")
    async def post_pings(request: Request, principal: LocationWriter) -> Response:
        body = await read_body(request, settings.max_body_bytes)
        if body is None:
            return _error(413, "PayloadTooLarge", f"body above {settings.max_body_bytes} bytes")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            service.count_invalid()
            return _error(400, "InvalidJson", "body is not JSON")
        items = data.get("pings") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            service.count_invalid()
            return _error(400, "InvalidBatch", 'expected {"pings": [<ping>, ...]} with at least one ping')
        if len(items) > settings.max_batch:
            return _error(413, "BatchTooLarge", f"at most {settings.max_batch} pings per request")
        parsed: list[Ping | InvalidPing] = []
        for item in items:
            try:
                parsed.append(parse_ping(item))
            except InvalidPing as exc:
                parsed.append(exc)
        for entry in parsed:  # all or nothing: a forged ping refuses the whole batch (403)
            if isinstance(entry, Ping):
                _authorize(principal, entry.driver_id)
        invalid = sum(1 for entry in parsed if isinstance(entry, InvalidPing))
        if invalid:
            service.count_invalid(invalid)
        outcomes = await asyncio.gather(*(service.ingest(e) for e in parsed if isinstance(e, Ping)))
        results: list[dict[str, str]] = []
        accepted = 0
        it = iter(outcomes)
        for entry in parsed:
            if isinstance(entry, InvalidPing):
                results.append({"result": "invalid", "code": entry.code, "message": entry.message})
                continue
            outcome = next(it)
            accepted += outcome == Verdict.ACCEPTED.value
            results.append({"result": outcome})
        return json_response({"accepted": accepted, "results": results})

    async def osmand(request: Request, principal: Principal) -> Response:
        query: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            body = await read_body(request, settings.max_frame_bytes)
            if body is None:
                return _error(413, "PayloadTooLarge", f"body above {settings.max_frame_bytes} bytes")
            mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
            try:
                if body and mime == _FORM:
                    query = dict(parse_qsl(body.decode(), keep_blank_values=False, max_num_fields=32)) | query
                elif body and mime == "application/json":
                    query = _traccar_json(orjson.loads(body)) | query
            except (UnicodeDecodeError, ValueError, InvalidPing) as exc:  # JSONDecodeError is a ValueError
                service.count_invalid()
                message = exc.message if isinstance(exc, InvalidPing) else "body is not valid"
                return _error(400, "InvalidPing", message)
        try:
            ping = parse_osmand(query, default_accuracy_m=settings.default_accuracy_m)
        except InvalidPing as exc:
            service.count_invalid()
            return _error(400, exc.code, exc.message)
        _authorize(principal, ping.driver_id)
        outcome = await service.ingest(ping)
        if outcome in _OSMAND_TAKEN:
            return Response(status_code=200)
        if outcome in (Verdict.INVALID_GEO.value, INVALID):
            return _error(400, "InvalidPing", f"ping rejected: {outcome}")
        if outcome == UNKNOWN_DRIVER:
            return _error(404, "UnknownDriver", f"driver {ping.driver_id!r} is not registered")
        if outcome in _OSMAND_RETRY:
            return json_response({"code": "RateLimited", "message": outcome}, 429, {"Retry-After": "1"})
        return json_response({"code": "Unavailable", "message": outcome}, 503, {"Retry-After": "1"})

    @router.get(f"{prefix}/osmand")
    async def osmand_get(request: Request, principal: LocationWriter) -> Response:
        return await osmand(request, principal)

    @router.post(f"{prefix}/osmand")
    async def osmand_post(request: Request, principal: LocationWriter) -> Response:
        return await osmand(request, principal)

    @router.websocket(f"{prefix}/drivers/ws")
    async def driver_socket(websocket: WebSocket) -> None:
        try:
            principal = _ws_principal(websocket)
            check_scopes(principal, [LOCATIONS_WRITE])
        except AuthError as exc:
            await websocket.close(code=1008, reason=exc.code)
            return
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                reply = await _frame(message, principal)
                await websocket.send_text(reply)
        except WebSocketDisconnect:
            return

    async def _frame(message: Any, principal: Principal) -> str:
        text = message.get("text")
        if text is None:
            service.count_invalid()
            return _dumps({"error": "InvalidFrame", "message": "send text frames with one JSON ping"})
        if len(text) > settings.max_frame_bytes:
            service.count_invalid()
            return _dumps({"error": "InvalidFrame", "message": f"frame above {settings.max_frame_bytes}"})
        try:
            data = orjson.loads(text)
            if isinstance(data, dict) and principal.role is Role.DRIVER:
                data.setdefault("driver_id", principal.subject)
            ping = parse_ping(data)
        except orjson.JSONDecodeError:
            service.count_invalid()
            return _dumps({"error": "InvalidJson", "message": "frame is not JSON"})
        except InvalidPing as exc:
            service.count_invalid()
            return _dumps({"error": exc.code, "message": exc.message})
        try:
            _authorize(principal, ping.driver_id)
        except AuthError as exc:
            return _dumps({"error": exc.code, "message": exc.message, "seq": ping.seq})
        outcome = await service.ingest(ping)
        return _dumps({"seq": ping.seq, "r": outcome})

    return router
