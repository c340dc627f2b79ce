"""HTTP helpers shared by every module's router."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["json_response", "read_body"]


def json_response(
    body: dict[str, Any] | list[Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response serialised with orjson (numpy scalars and arrays allowed)."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


async def read_body(request: Request, max_bytes: int) -> bytes | None:
    """The body, or None as soon as it passes ``max_bytes`` (never buffers more than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
