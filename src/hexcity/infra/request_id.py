"""Request ids: take a valid ``X-Request-ID`` or make one, bind it to the logs, echo it back.

A client-supplied id is accepted only if it is 1..128 characters of ``[A-Za-z0-9._-]``; anything
else (too long, spaces, control characters, non-ASCII) is replaced by a fresh random id, so a
caller can never inject text into log lines or response headers.
"""

from __future__ import annotations

import os
import re

import structlog

from hexcity.infra.metrics import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
MAX_LENGTH = 128
_VALID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def valid_request_id(raw: bytes) -> bool:
    """Whether ``raw`` is an acceptable client-supplied request id."""
    return len(raw) <= MAX_LENGTH and _VALID.fullmatch(raw) is not None


def new_request_id() -> str:
    """A fresh random request id (32 hex characters)."""
    return os.urandom(16).hex()


class RequestIdMiddleware:
    """Pure ASGI middleware: one request id per HTTP request, in the logs and the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call, binding ``request_id`` in structlog's contextvars for HTTP."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == HEADER:
                if valid_request_id(value):
                    request_id = value.decode("ascii")
                break
        if not request_id:
            request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER, request_id.encode("ascii"))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
