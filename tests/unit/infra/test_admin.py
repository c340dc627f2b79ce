"""The admin server: settings, bearer auth and audit log, profile/heap/tasks/threads, pyroscope."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
import tracemalloc
import types
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import structlog
from pydantic import ValidationError

from hexcity.infra import configure_logging, diagnostics
from hexcity.infra.admin import AdminSettings, create_admin_app, serve_admin, start_pyroscope

TOKEN = "t0ken-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _settings(**kw: Any) -> AdminSettings:
    return AdminSettings(enabled=True, token=TOKEN, **kw)


def _run(
    scenario: Callable[[httpx.AsyncClient], Awaitable[None]],
    settings: AdminSettings | None = None,
    **kw: Any,
) -> None:
    """Run ``scenario`` against the admin app on this test's own event loop (bounded)."""

    async def main() -> None:
        app = create_admin_app(settings or _settings(), **kw)
        transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 4242))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin", timeout=30) as client:
            await scenario(client)

    asyncio.run(asyncio.wait_for(main(), 60))


def _hot_loop_function(stop: threading.Event | asyncio.Event) -> None:
    deadline = time.monotonic() + 0.05
    total = 0
    while time.monotonic() < deadline:
        total += sum(range(200))


def test_settings_defaults_and_token_requirement(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = AdminSettings()
    assert (defaults.enabled, defaults.host, defaults.port, defaults.max_profile_s) == (
        False,
        "127.0.0.1",
        6060,
        60,
    )
    with pytest.raises(ValidationError):
        AdminSettings(enabled=True)
    with pytest.raises(ValidationError):
        AdminSettings(enabled=True, token="short")
    monkeypatch.setenv("HEXCITY_ADMIN_ENABLED", "true")
    monkeypatch.setenv("HEXCITY_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("HEXCITY_ADMIN_PORT", "7070")
    from_env = AdminSettings()
    assert from_env.enabled and from_env.port == 7070
    assert TOKEN not in repr(from_env)


def test_serve_admin_disabled_and_enabled() -> None:
    assert serve_admin(AdminSettings()) is None
    server = serve_admin(_settings(port=7071))
    assert server.config.host == "127.0.0.1" and server.config.port == 7071


@pytest.fixture
def audit(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO", json=True)

    def lines() -> list[dict[str, Any]]:
        err = capsys.readouterr().err
        return [json.loads(line) for line in err.splitlines() if line.startswith("{")]

    try:
        yield lines
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = saved[0], saved[1]


def test_every_request_needs_the_token_and_is_logged(audit: Callable[[], list[dict[str, Any]]]) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = await client.get("/debug/threads", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
        assert (await client.get("/debug/threads?x=1", headers=AUTH)).status_code == 200

    _run(scenario)
    records = [r for r in audit() if r["event"] == "admin_request"]
    assert [r["status"] for r in records] == [401, 401, 401, 200]
    assert records[-1]["requester"] == "10.0.0.7:4242"
    assert records[-1]["params"] == "x=1" and records[-1]["path"] == "/debug/threads"
    assert all(TOKEN not in json.dumps(r) for r in records)


@pytest.mark.parametrize("query", ["seconds=0", "seconds=1000", "seconds=61", "seconds=abc", "format=pdf"])
def test_profile_parameters_are_bounded(query: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.get(f"/debug/profile?{query}", headers=AUTH)
        assert response.status_code == 400, response.text

    _run(scenario)


def test_profile_samples_the_event_loop_and_rejects_a_concurrent_one() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        stop = asyncio.Event()

        async def busy() -> None:  # another task on the same loop, doing CPU work
            while not stop.is_set():
                _hot_loop_function(stop)
                await asyncio.sleep(0)

        worker = asyncio.create_task(busy())
        first = asyncio.create_task(client.get("/debug/profile?seconds=2", headers=AUTH))
        await asyncio.sleep(0.5)
        second = await client.get("/debug/profile?seconds=1", headers=AUTH)
        assert second.status_code == 409
        response = await first
        stop.set()
        await worker
        assert response.status_code == 200
        body = response.json()
        assert body["$schema"] == "https://www.speedscope.app/file-format-schema.json"
        assert body["profiles"]
        names = {frame["name"] for frame in body["shared"]["frames"]}
        assert "_hot_loop_function" in names
        html = await client.get("/debug/profile?seconds=1&format=html", headers=AUTH)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "<html" in html.text.lower()

    _run(scenario)


def test_profile_targets_a_loop_in_another_thread() -> None:
    target = asyncio.new_event_loop()
    stop = threading.Event()

    async def busy() -> None:
        while not stop.is_set():
            _hot_loop_function(stop)
            await asyncio.sleep(0)

    thread = threading.Thread(target=target.run_until_complete, args=(busy(),), daemon=True)
    thread.start()
    try:

        async def scenario(client: httpx.AsyncClient) -> None:
            response = await client.get("/debug/profile?seconds=1", headers=AUTH)
            assert response.status_code == 200
            names = {frame["name"] for frame in response.json()["shared"]["frames"]}
            assert "_hot_loop_function" in names
            tasks = (await client.get("/debug/tasks", headers=AUTH)).json()
            assert any(t["coro"].endswith("busy") for t in tasks["tasks"])

        _run(scenario, target_loop=target)
    finally:
        stop.set()
        thread.join(timeout=5)
        target.close()


def test_a_blocked_target_loop_gives_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnostics, "LOOP_CALL_TIMEOUT_S", 0.2)
    target = asyncio.new_event_loop()
    release = threading.Event()
    thread = threading.Thread(
        target=target.run_until_complete, args=(asyncio.to_thread(lambda: None),), daemon=True
    )
    target.call_soon(lambda: release.wait(5))  # the loop blocks in a callback
    thread.start()
    try:

        async def scenario(client: httpx.AsyncClient) -> None:
            assert (await client.get("/debug/tasks", headers=AUTH)).status_code == 503
            assert (await client.get("/debug/profile?seconds=1", headers=AUTH)).status_code == 503

        _run(scenario, target_loop=target)
    finally:
        release.set()
        thread.join(timeout=10)
        target.close()


def test_heap_starts_on_demand_then_reports_and_stops() -> None:
    was_tracing = tracemalloc.is_tracing()

    async def scenario(client: httpx.AsyncClient) -> None:
        first = (await client.get("/debug/heap", headers=AUTH)).json()
        assert first["tracing"] and first["started"] != was_tracing
        keep = [bytearray(1000) for _ in range(2000)]
        second = (await client.get("/debug/heap?top=5", headers=AUTH)).json()
        assert 1 <= len(second["top"]) <= 5 and second["traced_current_bytes"] > 1_000_000
        more = [bytearray(1000) for _ in range(1000)]
        diff = (await client.get("/debug/heap?top=3&compare=true", headers=AUTH)).json()
        assert "size_diff_bytes" in diff["top"][0]
        assert (await client.get("/debug/heap?top=0", headers=AUTH)).status_code == 400
        assert (await client.get("/debug/heap?top=501", headers=AUTH)).status_code == 400
        alloc = (await client.get("/debug/alloc", headers=AUTH)).json()
        assert alloc["tracemalloc"] and alloc["allocated_blocks"] > 0
        stopped = (await client.delete("/debug/heap", headers=AUTH)).json()
        assert stopped["stopped"] is not was_tracing
        del keep, more

    _run(scenario)
    assert tracemalloc.is_tracing() == was_tracing


def test_tasks_and_threads_dumps() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        sleeper = asyncio.create_task(asyncio.sleep(30), name="the-sleeper")
        await asyncio.sleep(0)
        tasks = (await client.get("/debug/tasks", headers=AUTH)).json()
        sleeper.cancel()
        named = [t for t in tasks["tasks"] if t["name"] == "the-sleeper"]
        assert named and named[0]["stack"] and "sleep" in named[0]["stack"][-1]
        threads = (await client.get("/debug/threads", headers=AUTH)).json()
        main = [t for t in threads["threads"] if t["name"] == "MainThread"]
        assert main and main[0]["stack"]

    _run(scenario)


def test_metrics_on_the_admin_port_need_the_token() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=AUTH)).status_code == 200

    _run(scenario)


def test_pyroscope_is_opt_in_and_fail_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    assert start_pyroscope(AdminSettings()) is False
    configured = AdminSettings(pyroscope_url="http://pyroscope.observability:4040")
    monkeypatch.setitem(sys.modules, "pyroscope", None)  # import fails
    assert start_pyroscope(configured) is False

    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("pyroscope")
    fake.configure = lambda **kw: calls.append(kw)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyroscope", fake)
    assert start_pyroscope(configured, tags={"pod": "p1"}) is True
    assert calls[0]["server_address"] == "http://pyroscope.observability:4040"
    assert calls[0]["sample_rate"] == 100 and calls[0]["tags"] == {"pod": "p1"}

    def broken(**_: Any) -> None:
        raise RuntimeError("agent failed")

    fake.configure = broken  # type: ignore[attr-defined]
    assert start_pyroscope(configured) is False


def test_heap_tracing_stops_after_its_ttl() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc already on (e.g. python -X tracemalloc)")
    tracer = diagnostics.HeapTracer(ttl_s=0.2)

    async def scenario() -> None:
        assert tracer.snapshot(5)["started"] is True
        assert tracemalloc.is_tracing()
        await asyncio.sleep(0.5)
        assert not tracemalloc.is_tracing()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 5))
    finally:
        tracer.stop()
