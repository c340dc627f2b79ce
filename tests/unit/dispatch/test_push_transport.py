"""Push over a real server: uvicorn in a thread on a free port, ``websockets`` and httpx as clients.

The hub lives on the server's event loop; the tests reach it with ``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hexcity.dispatch.adapters.push_memory import LoggingFallbackPusher
from hexcity.dispatch.http_push import build_push_router
from hexcity.dispatch.push import PushHub, PushParams
from hexcity.infra.auth import AuthSettings, install_auth
from hexcity.kernel import HexcityError

T = TypeVar("T")
SECRET = "push-test-secret-0123456789-abcdefghij"


class Served:
    """An app with auth and the push router, served by uvicorn in a daemon thread."""

    def __init__(self, params: PushParams | None = None) -> None:
        self.fallback = LoggingFallbackPusher()
        self.hub = PushHub(params, fallback=self.fallback, registry=CollectorRegistry())
        self.loop: asyncio.AbstractEventLoop | None = None

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            self.loop = asyncio.get_running_loop()
            yield
            await self.hub.aclose()

        app = FastAPI(lifespan=lifespan)
        self.auth = install_auth(app, AuthSettings(jwt_secret=SECRET))
        app.include_router(build_push_router(self.hub))

        @app.exception_handler(HexcityError)
        async def hexcity_error(_: Request, exc: HexcityError) -> JSONResponse:
            return JSONResponse({"code": exc.code, "message": exc.message}, exc.status)

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def token(self, subject: str, role: str = "driver", **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auth.tokens.issue(subject, role, **kw)}"}

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/dispatch/v1/push/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dispatch/v1/push"

    async def on_server(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call()`` on the server loop (where the hub lives) and wait for it."""
        assert self.loop is not None

        async def wrapped() -> T:
            return await call()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(wrapped(), self.loop))

    async def send(self, client_id: str, n: int, kind: str = "offer") -> list[int]:
        async def call() -> list[int]:
            return [await self.hub.send(client_id, kind, {"n": i}) for i in range(n)]

        return await self.on_server(call)

    async def read(self, read: Callable[[], T]) -> T:
        async def call() -> T:
            return read()

        return await self.on_server(call)

    async def until(self, check: Callable[[], bool], timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not await self.read(check):
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached")
            await asyncio.sleep(0.01)


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    server = Served(getattr(request, "param", None))  # indirect parametrisation: PushParams
    server.start()
    yield server
    server.stop()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


async def recv_frames(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while len(frames) < n:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame["kind"] != "heartbeat":
            frames.append(frame)
    return frames


async def no_more_frames(ws: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), 0.2)


# -- WebSocket ---------------------------------------------------------------------------------------
def test_ws_replays_after_forced_disconnect_in_order_without_gaps(served: Served) -> None:
    async def scenario() -> None:
        hub, client = served.hub, "driver:d1"
        async with connect(served.ws_url, additional_headers=served.token("d1")) as ws:
            await served.until(lambda: hub.connection(client) is not None)
            assert await served.send(client, 3) == [1, 2, 3]
            frames = await recv_frames(ws, 3)
            assert [f["seq"] for f in frames] == [1, 2, 3]
            assert [f["data"] for f in frames] == [{"n": 0}, {"n": 1}, {"n": 2}]
            assert {f["kind"] for f in frames} == {"offer"}
            assert all(isinstance(f["sent_at_s"], float) for f in frames)
            await ws.send(orjson.dumps({"ack": 1}).decode())
            await served.until(lambda: hub.pending(client) == [2, 3])
            ws.transport.abort()  # forced: no close handshake
        await served.until(lambda: hub.connection(client) is None)
        assert await served.send(client, 2) == [4, 5]
        assert [(r.seq, r.reason) for r in served.fallback.records] == [(4, "offline"), (5, "offline")]

        async with connect(f"{served.ws_url}?last_seq=3", additional_headers=served.token("d1")) as ws:
            replay = await recv_frames(ws, 2)
            assert [f["seq"] for f in replay] == [4, 5]
            assert [f["data"] for f in replay] == [{"n": 0}, {"n": 1}]
            assert await served.send(client, 1) == [6]
            assert [f["seq"] for f in await recv_frames(ws, 1)] == [6]
            await no_more_frames(ws)
            await ws.send(orjson.dumps({"ack": [2, 3, 4]}))  # a binary frame is read the same
            await served.until(lambda: hub.pending(client) == [5, 6])
            await ws.send(orjson.dumps({"ack": [5, 6]}).decode())
            await served.until(lambda: hub.pending(client) == [])

    run(scenario)


def test_ws_newer_connection_replaces_the_older(served: Served) -> None:
    async def scenario() -> None:
        client = "rider:r7"
        headers = served.token("r7", "rider")
        async with connect(served.ws_url, additional_headers=headers) as old:
            await served.until(lambda: served.hub.connection(client) is not None)
            first = served.hub.connection
            old_conn = await served.read(lambda: first(client))
            async with connect(served.ws_url, additional_headers=headers) as new:
                await served.until(lambda: served.hub.connection(client) not in (None, old_conn))
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(old.recv(), 5)
                assert info.value.rcvd is not None
                assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "replaced")
                assert await served.send(client, 2) == [1, 2]
                assert [f["seq"] for f in await recv_frames(new, 2)] == [1, 2]
            await served.until(lambda: served.hub.connection(client) is None)

    run(scenario)


@pytest.mark.parametrize("served", [PushParams(heartbeat_interval_s=0.1)], indirect=True, ids=["100ms"])
def test_ws_heartbeats_every_interval_of_silence(served: Served) -> None:
    async def scenario() -> None:
        async with connect(served.ws_url, additional_headers=served.token("d1")) as ws:
            start = time.monotonic()
            beats, times = [], []
            for _ in range(3):
                beats.append(orjson.loads(await asyncio.wait_for(ws.recv(), 5)))
                times.append(time.monotonic() - start)
            assert [(b["seq"], b["kind"], b["data"]) for b in beats] == [
                (None, "heartbeat", {"head_seq": 0})
            ] * 3
            gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
            assert all(0.07 <= g <= 0.6 for g in gaps), gaps
            assert await served.send("driver:d1", 1) == [1]
            assert [f["seq"] for f in await recv_frames(ws, 1)] == [1]
            nxt = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            assert (nxt["kind"], nxt["data"]) == ("heartbeat", {"head_seq": 1})

    run(scenario)


def test_ws_refuses_missing_or_wrong_credentials(served: Served) -> None:
    async def scenario() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(served.ws_url):
                pass
        assert info.value.response.status_code == 403
        merchant = served.token("m1", "merchant", tenant="shop1")
        with pytest.raises(InvalidStatus) as info:
            async with connect(served.ws_url, additional_headers=merchant):
                pass
        assert info.value.response.status_code == 403
        assert served.hub.client_count == 0

    run(scenario)


@pytest.mark.parametrize("frame", ["not json", '{"ack": 99}', '{"ack": -1}', '{"nack": 1}', '{"ack": "1"}'])
def test_ws_malformed_ack_closes_with_1007_and_changes_nothing(served: Served, frame: str) -> None:
    async def scenario() -> None:
        async with connect(served.ws_url, additional_headers=served.token("d1")) as ws:
            await served.until(lambda: served.hub.connection("driver:d1") is not None)
            await served.send("driver:d1", 2)
            await recv_frames(ws, 2)
            await ws.send(frame)
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1007
        assert await served.read(lambda: served.hub.pending("driver:d1")) == [1, 2]

    run(scenario)


# -- Server-Sent Events ------------------------------------------------------------------------------
async def sse_events(lines: AsyncIterator[str], n: int) -> list[dict[str, str]]:
    """The next ``n`` events (heartbeats and the retry hint skipped), as field dicts."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    while len(events) < n:
        line = await asyncio.wait_for(anext(lines), 5)
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        if fields.get("event") not in (None, "heartbeat"):
            events.append(fields)
        fields = {}
    return events


def test_sse_resumes_from_last_event_id_and_acks_over_http(served: Served) -> None:
    async def scenario() -> None:
        hub, client = served.hub, "driver:d1"
        headers = served.token("d1")
        async with httpx.AsyncClient(timeout=5) as http:
            async with http.stream("GET", f"{served.http_url}/sse", headers=headers) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                lines = response.aiter_lines()
                assert await asyncio.wait_for(anext(lines), 5) == "retry: 2000"
                await served.until(lambda: hub.connection(client) is not None)
                assert await served.send(client, 3) == [1, 2, 3]
                events = await sse_events(lines, 3)
                assert [e["id"] for e in events] == ["1", "2", "3"]
                assert [e["event"] for e in events] == ["offer"] * 3
                assert [orjson.loads(e["data"])["seq"] for e in events] == [1, 2, 3]
                assert orjson.loads(events[2]["data"])["data"] == {"n": 2}
            await served.until(lambda: hub.connection(client) is None)
            assert await served.send(client, 1) == [4]

            acked = await http.post(f"{served.http_url}/ack", json={"ack": 2}, headers=headers)
            assert (acked.status_code, acked.json()) == (200, {"acked": 2, "pending": 2})
            bad = await http.post(f"{served.http_url}/ack", json={"ack": 9}, headers=headers)
            assert (bad.status_code, bad.json()["code"]) == (400, "InvalidAck")
            assert await served.read(lambda: hub.pending(client)) == [3, 4]

            resume = {**headers, "Last-Event-ID": "3"}
            async with http.stream("GET", f"{served.http_url}/sse", headers=resume) as response:
                lines = response.aiter_lines()
                events = await sse_events(lines, 1)
                assert [(e["id"], orjson.loads(e["data"])["data"]) for e in events] == [("4", {"n": 0})]
                assert await served.send(client, 1) == [5]
                assert [e["id"] for e in await sse_events(lines, 1)] == ["5"]

    run(scenario)


def test_sse_and_ack_refuse_bad_requests(served: Served) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            anonymous = await http.get(f"{served.http_url}/sse")
            assert (anonymous.status_code, anonymous.json()["code"]) == (401, "Unauthenticated")
            merchant = served.token("m1", "merchant", tenant="shop1")
            refused = await http.post(f"{served.http_url}/ack", json={"ack": 0}, headers=merchant)
            assert (refused.status_code, refused.json()["code"]) == (403, "Forbidden")
            bad_id = {**served.token("d1"), "Last-Event-ID": "abc"}
            invalid = await http.get(f"{served.http_url}/sse", headers=bad_id)
            assert (invalid.status_code, invalid.json()["code"]) == (400, "InvalidPush")
            wrong = await http.post(f"{served.http_url}/ack", json={"ack": "1"}, headers=served.token("d1"))
            assert wrong.status_code == 422
        assert served.hub.client_count == 0

    run(scenario)
