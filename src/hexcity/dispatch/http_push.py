"""Push transports: WebSocket and Server-Sent Events on a :class:`~hexcity.dispatch.push.PushHub`.

* ``WS /dispatch/v1/push/ws?last_seq=N`` — server → client frames
  ``{"seq": n, "kind": ..., "data": {...}, "sent_at_s": ...}`` (heartbeats: ``seq`` null,
  ``data.head_seq``); client → server ``{"ack": n}`` (everything up to n) or ``{"ack": [n, ...]}``.
  Close codes: 4001 replaced by a newer connection, 4002 slow consumer (reconnect with your last
  seq), 1001 server shutdown, 1007 malformed ack, 1008 not authenticated/authorised, 1013 hub full.
* ``GET /dispatch/v1/push/sse`` — the same frames as SSE events (``id:`` = seq, ``event:`` = kind,
  heartbeats without ``id:``); resumes from the ``Last-Event-ID`` header (or ``?last_seq=``).
* ``POST /dispatch/v1/push/ack`` — ``{"ack": n}`` or ``{"ack": [n, ...]}`` for SSE clients.

The client id is ``f"{principal.role}:{principal.subject}"``; a caller needs ``offers:read``
(drivers) or ``trips:read`` (riders). Auth errors on WebSocket close the socket with 1008 (an
exception handler cannot answer a WebSocket), on HTTP they go to the app's ``AuthError`` handler.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.requests import HTTPConnection
from starlette.responses import StreamingResponse
from starlette.websockets import WebSocket, WebSocketState

from hexcity.dispatch.push import (
    MAX_SEQ,
    Connection,
    InvalidAck,
    InvalidPush,
    PushCapacityExceeded,
    PushConnectionClosed,
    PushHub,
    client_id_for,
)
from hexcity.infra.auth import AuthError, Forbidden, Principal, Unauthenticated
from hexcity.infra.auth.dependencies import API_KEY_HEADER, STATE_KEY, Authenticator

__all__ = ["PUSH_SCOPES", "build_push_router", "push_principal"]

PUSH_SCOPES = frozenset({"offers:read", "trips:read"})  # either one
MAX_CLIENT_FRAME_BYTES = 16 * 1024
SSE_RETRY_MS = 2000  # EventSource reconnect delay, well inside the 7 s silence rule
CLOSE_CODES = {"replaced": 4001, "slow_consumer": 4002, "shutdown": 1001, "client_gone": 1000}


class AckBody(BaseModel):
    """``{"ack": 17}`` acknowledges every seq up to 17; ``{"ack": [15, 17]}`` just those."""

    model_config = ConfigDict(extra="forbid")
    ack: (
        Annotated[int, Field(ge=0, le=MAX_SEQ, strict=True)]
        | Annotated[list[Annotated[int, Field(ge=0, le=MAX_SEQ, strict=True)]], Field(max_length=1024)]
    )


def push_principal(conn: HTTPConnection) -> Principal:
    """The authenticated caller of an HTTP or WebSocket request, with ``offers:read`` or
    ``trips:read``. Raises :class:`Unauthenticated` / :class:`Forbidden`."""
    principal = getattr(conn.state, "principal", None)
    if not isinstance(principal, Principal):
        authenticator = getattr(conn.app.state, STATE_KEY, None)
        if not isinstance(authenticator, Authenticator):
            raise Unauthenticated("authentication is not configured")
        principal = authenticator.authenticate(
            conn.headers.get("authorization"), conn.headers.get(API_KEY_HEADER)
        )
        conn.state.principal = principal
    if not principal.scopes & PUSH_SCOPES:
        raise Forbidden("missing scope offers:read or trips:read")
    return principal


def build_push_router(hub: PushHub, *, prefix: str = "/dispatch/v1/push") -> APIRouter:
    """The push endpoints on ``hub`` (see the module docstring)."""
    router = APIRouter(prefix=prefix, tags=["dispatch"])

    @router.websocket("/ws")
    async def push_ws(websocket: WebSocket, last_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0) -> None:
        try:
            principal = push_principal(websocket)
        except AuthError as exc:  # closing before accept makes the server answer 403
            await websocket.close(code=1008, reason=exc.code)
            return
        await websocket.accept()
        try:
            conn = await hub.connect(client_id_for(principal.role, principal.subject), last_seq)
        except (PushCapacityExceeded, InvalidPush) as exc:
            await websocket.close(code=1013 if exc.status == 503 else 1008, reason=exc.code)
            return
        try:
            await _serve_websocket(websocket, hub, conn)
        finally:
            await hub.disconnect(conn)

    @router.get("/sse")
    async def push_sse(
        principal: Annotated[Principal, Depends(push_principal)],
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
        last_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    ) -> StreamingResponse:
        """A Server-Sent Events stream of this caller's push frames."""
        seq = last_seq
        if last_event_id is not None and last_event_id.strip():
            text = last_event_id.strip()
            if not text.isdigit() or int(text) > MAX_SEQ:
                raise InvalidPush(f"Last-Event-ID must be a seq within [0, {MAX_SEQ}]")
            seq = int(text)
        conn = await hub.connect(client_id_for(principal.role, principal.subject), seq)
        return StreamingResponse(
            _sse_events(hub, conn),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            # runs even when the client left before the stream started (the generator's
            # finally would not): the hub never keeps a dead SSE connection
            background=BackgroundTask(hub.disconnect, conn),
        )

    @router.post("/ack")
    async def push_ack(
        body: AckBody, principal: Annotated[Principal, Depends(push_principal)]
    ) -> dict[str, int]:
        """Acknowledge processed messages; answers how many left the ring and how many remain."""
        client_id = client_id_for(principal.role, principal.subject)
        acked = hub.ack(client_id, body.ack)
        return {"acked": acked, "pending": len(hub.pending(client_id))}

    return router


async def _serve_websocket(websocket: WebSocket, hub: PushHub, conn: Connection) -> None:
    """Write frames and read acks until either side stops; then close with the right code."""
    writer = asyncio.create_task(_write_frames(websocket, conn))
    reader = asyncio.create_task(_read_acks(websocket, hub, conn))
    try:
        done, _ = await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (writer, reader):
            task.cancel()
        for task in (writer, reader):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    code, reason = 1000, "closed"
    for task in done:
        if not task.cancelled() and task.exception() is None:
            code, reason = task.result()
    if websocket.client_state is WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code=code, reason=reason)


async def _write_frames(websocket: WebSocket, conn: Connection) -> tuple[int, str]:
    try:
        while True:
            frame = await conn.next_frame()
            await websocket.send_text(frame.body.decode())
            conn.mark_written(frame)
    except PushConnectionClosed as exc:
        return CLOSE_CODES[exc.reason], exc.reason


async def _read_acks(websocket: WebSocket, hub: PushHub, conn: Connection) -> tuple[int, str]:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return 1000, "client_gone"
        data = message.get("text") or message.get("bytes") or b""
        if len(data) > MAX_CLIENT_FRAME_BYTES:
            return 1009, "frame too big"
        try:  # the hot path skips pydantic: PushHub.ack validates the seq(s) itself
            body = _loads(data)
            if not isinstance(body, dict) or len(body) != 1 or "ack" not in body:
                return 1007, "InvalidAck"
            hub.ack(conn.client_id, body["ack"])
        except (ValueError, InvalidAck):
            return 1007, "InvalidAck"


def _loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


async def _sse_events(hub: PushHub, conn: Connection) -> AsyncIterator[bytes]:
    try:
        yield b"retry: %d\n\n" % SSE_RETRY_MS
        while True:
            frame = await conn.next_frame()
            yield frame.sse()
            conn.mark_written(frame)  # resumed only after the server wrote the chunk
    except PushConnectionClosed as exc:
        yield b"event: closed\ndata: %s\n\n" % orjson.dumps({"reason": exc.reason})
    finally:
        await hub.disconnect(conn)
