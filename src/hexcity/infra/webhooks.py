"""Webhook intake: ``POST /webhooks/{source}`` into a bounded :class:`WorkerPool`.

The answer to the motivating incident (50,000 webhook events, 50,000 goroutines, OOM): the edge
validates cheaply, enqueues into a bounded pool with ``submit_or_drop`` and sheds load with 429
instead of growing memory (operations.md §2.6-2.7).

Contract (``docs/concurrency.md``):

=====  ==========================  ===========================================================
code   body ``code``               when
=====  ==========================  ===========================================================
202    ``{"accepted": true, ...}``  queued; the pool's handler will process it once
200    ``{"duplicate": true, ...}`` same source + idempotency key already accepted (TTL window)
400    ``InvalidSource``            source not ``[a-z0-9_-]{1,64}``
400    ``InvalidJson``              body is not UTF-8 JSON
413    ``PayloadTooLarge``          body above ``max_body_bytes`` (checked while streaming)
415    ``UnsupportedMediaType``     content type is not ``application/json`` (or ``+json``)
422    ``NotAnObject``              JSON is not an object
422    ``InvalidIdempotencyKey``    no ``Idempotency-Key`` header and no string/int ``id`` field
429    ``Overloaded``               pool saturation >= ``reject_at_saturation`` or queue full;
                                    ``Retry-After: 1``; nothing is enqueued or remembered
=====  ==========================  ===========================================================

A 202 is sent once the event is **queued**, not processed: the handler owns retries and must
finish its side effects before acknowledging anything downstream (pitfall 1). If it wants a
failed event to be processed again on redelivery it calls ``store.release(source, key)``.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from hexcity.infra.concurrency import WorkerPool
from hexcity.infra.http import read_body
from hexcity.infra.logging import get_logger

log = get_logger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_REJECT_AT_SATURATION = 0.8
MAX_KEY_CHARS = 200
SOURCE_RE = re.compile(r"[a-z0-9_-]{1,64}")
KEY_RE = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One accepted event, as handed to the pool's handler."""

    source: str
    key: str
    payload: dict[str, Any]
    received_at_s: float  # time.time() at intake


# -- idempotency --------------------------------------------------------------------------------


class IdempotencyStore(Protocol):
    """Remembers accepted (source, key) pairs for a TTL; the port behind duplicate detection."""

    async def claim(self, source: str, key: str) -> bool:
        """Remember the pair; True if it was new, False if it was already claimed."""
        ...

    async def release(self, source: str, key: str) -> None:
        """Forget the pair (the event was not enqueued, or its processing failed)."""
        ...


class InMemoryIdempotencyStore:
    """Bounded TTL store: at most ``max_entries`` keys, each kept ``ttl_s`` seconds.

    When full the oldest key is evicted (counted in :attr:`evictions`); a duplicate arriving after
    its key was evicted is processed again, so size ``max_entries`` >= peak rate x TTL.
    Per-process only: behind several replicas use :class:`RedisIdempotencyStore`.
    """

    def __init__(
        self,
        *,
        ttl_s: float = 24 * 3600.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or max_entries < 1:
            raise ValueError("ttl_s must be > 0 and max_entries >= 1")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._expiry: OrderedDict[tuple[str, str], float] = OrderedDict()  # insertion = expiry order
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._expiry)

    async def claim(self, source: str, key: str) -> bool:
        now = self._clock()
        self._purge(now)
        item = (source, key)
        if item in self._expiry:
            return False
        while len(self._expiry) >= self.max_entries:
            self._expiry.popitem(last=False)
            self.evictions += 1
        self._expiry[item] = now + self.ttl_s
        return True

    async def release(self, source: str, key: str) -> None:
        self._expiry.pop((source, key), None)

    def _purge(self, now: float) -> None:
        while self._expiry:
            item, expires = next(iter(self._expiry.items()))
            if expires > now:
                break
            del self._expiry[item]


class RedisIdempotencyStore:
    """``SET key 1 NX EX ttl`` on a ``redis.asyncio.Redis`` client: shared by all replicas."""

    def __init__(self, client: Any, *, ttl_s: int = 24 * 3600, prefix: str = "hexcity:webhook:idem:") -> None:
        self._client = client
        self.ttl_s = ttl_s
        self.prefix = prefix

    def _key(self, source: str, key: str) -> str:
        return f"{self.prefix}{source}:{key}"

    async def claim(self, source: str, key: str) -> bool:
        return bool(await self._client.set(self._key(source, key), b"1", nx=True, ex=self.ttl_s))

    async def release(self, source: str, key: str) -> None:
        await self._client.delete(self._key(source, key))


# -- HTTP ---------------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def _overloaded(pool: WorkerPool[WebhookEvent]) -> Response:
    return _error(
        429, "Overloaded", f"webhook queue saturated ({pool.depth}/{pool.capacity})", {"Retry-After": "1"}
    )


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


def _idempotency_key(request: Request, payload: dict[str, Any]) -> str | None:
    key: Any = request.headers.get("idempotency-key")
    if key is None:
        key = payload.get("id")
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
    if isinstance(key, str) and KEY_RE.fullmatch(key):
        return key
    return None


def build_webhook_router(
    pool: WorkerPool[WebhookEvent],
    store: IdempotencyStore,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    reject_at_saturation: float = DEFAULT_REJECT_AT_SATURATION,
    prefix: str = "/webhooks",
) -> APIRouter:
    """A router with ``POST {prefix}/{source}``; include it with ``app.include_router(...)``."""
    router = APIRouter()

    @router.post(f"{prefix}/{{source}}", status_code=202, summary="Accept a webhook event")
    async def intake(request: Request) -> Response:
        source = str(request.path_params.get("source", ""))
        if not SOURCE_RE.fullmatch(source):
            return _error(400, "InvalidSource", "source must match [a-z0-9_-]{1,64}")
        if not _is_json(request.headers.get("content-type", "")):
            return _error(415, "UnsupportedMediaType", "content type must be application/json")
        # shed before reading the body: a saturated pod spends nothing on the request
        if pool.saturation >= reject_at_saturation:
            pool.record_drop()
            return _overloaded(pool)
        body = await read_body(request, max_body_bytes)
        if body is None:
            return _error(413, "PayloadTooLarge", f"body above {max_body_bytes} bytes")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "InvalidJson", "body is not valid UTF-8 JSON")
        if not isinstance(payload, dict):
            return _error(422, "NotAnObject", "body must be a JSON object")
        key = _idempotency_key(request, payload)
        if key is None:
            return _error(
                422,
                "InvalidIdempotencyKey",
                "send an Idempotency-Key header or an 'id' field (1-200 printable chars)",
            )
        if not await store.claim(source, key):
            return JSONResponse({"duplicate": True, "id": key}, status_code=200)
        event = WebhookEvent(source=source, key=key, payload=payload, received_at_s=time.time())
        if not pool.submit_or_drop(event, max_saturation=reject_at_saturation):
            await store.release(source, key)  # not accepted: a retry must not look like a duplicate
            return _overloaded(pool)
        return JSONResponse({"accepted": True, "id": key}, status_code=202)

    return router


def readiness_hook(
    pool: WorkerPool[Any], *, threshold: float = DEFAULT_REJECT_AT_SATURATION
) -> Callable[[], bool]:
    """``() -> bool``: False while ``pool.saturation >= threshold``. Wire into readiness only.

    Liveness must never use it: a busy pod killed by liveness is gone exactly when needed (pitfall 3).
    """

    def ready() -> bool:
        return pool.saturation < threshold

    return ready
