"""A real uvicorn main server plus the admin server (``run_with_admin``) in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "e2e-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUTE = "/route/v1/{profile}/{coordinates:path}"
STARTUP_TIMEOUT_S = 30.0

SERVER = textwrap.dedent(
    """
    import asyncio, sys, time
    import uvicorn
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from hexcity.infra import configure_logging
    from hexcity.infra.admin import AdminSettings, install_observability, run_with_admin

    def crunch(n):
        return sum(i * i for i in range(n))

    async def route(request):
        return JSONResponse({"code": "Ok", "x": crunch(20_000)})

    async def live(request):
        return JSONResponse({"status": "ok"})

    configure_logging("INFO", json=True)
    registry = CollectorRegistry()
    app = Starlette(routes=[
        Route("/route/v1/{profile}/{coordinates:path}", route), Route("/health/live", live),
    ])
    install_observability(app, registry)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
        timeout_graceful_shutdown=5, http="httptools", loop="uvloop",
    )
    # exactly the wiring recommended for `hexcity serve`
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(run_with_admin(config, AdminSettings()))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"server exited early: {out}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not come up in time")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    script = Path(tmp_path_factory.mktemp("admin")) / "server.py"
    script.write_text(SERVER)
    port, admin_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "HEXCITY_ADMIN_ENABLED": "true",
        "HEXCITY_ADMIN_TOKEN": TOKEN,
        "HEXCITY_ADMIN_PORT": str(admin_port),
        "HEXCITY_ADMIN_MAX_PROFILE_S": "60",
    }
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    try:
        _wait_up(f"{base}/health/live", proc)
        _wait_up(f"{admin}/debug/threads", proc)
        yield base, admin, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def test_metrics_count_requests_by_route_template(servers: tuple[str, str, subprocess.Popen[bytes]]) -> None:
    base, _, _ = servers
    with httpx.Client(base_url=base, timeout=10) as client:
        for i, coords in enumerate(("8.6,49.4;8.7,49.41", "1,2;3,4", "5,6;7,8")):
            response = client.get(f"/route/v1/car/{coords}", headers={"X-Request-ID": f"e2e-{i}"})
            assert response.status_code == 200
            assert response.headers["x-request-id"] == f"e2e-{i}"
        assert client.get("/debug/profile").status_code == 404  # admin is not on the public port
        text = client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    key = ("http_requests_total", (("method", "GET"), ("route", ROUTE), ("status", "200")))
    assert samples[key] == 3
    assert (
        samples[("http_requests_total", (("method", "GET"), ("route", "<unmatched>"), ("status", "404")))]
        == 1
    )
    assert samples[("http_request_duration_seconds_count", (("method", "GET"), ("route", ROUTE)))] == 3
    assert "8.6,49.4" not in text
    assert ("event_loop_lag_seconds_count", ()) in samples  # the lifespan started the monitor
    assert samples[("process_resident_memory_bytes", ())] > 0


def test_admin_requires_the_token(servers: tuple[str, str, subprocess.Popen[bytes]]) -> None:
    _, admin, _ = servers
    assert httpx.get(f"{admin}/debug/threads", timeout=10).status_code == 401
    assert (
        httpx.get(f"{admin}/debug/threads", headers={"Authorization": "Bearer nope"}, timeout=10).status_code
        == 401
    )


@pytest.mark.parametrize("seconds", [0, 1000])
def test_profile_seconds_out_of_bounds(
    servers: tuple[str, str, subprocess.Popen[bytes]], seconds: int
) -> None:
    _, admin, _ = servers
    response = httpx.get(f"{admin}/debug/profile?seconds={seconds}", headers=AUTH, timeout=10)
    assert response.status_code == 400


def test_profile_under_load_and_the_concurrent_one_is_409(
    servers: tuple[str, str, subprocess.Popen[bytes]],
) -> None:
    base, admin, _ = servers
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=base, timeout=10) as client:
            while not stop.is_set():
                client.get("/route/v1/car/1,2;3,4")

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    results: dict[str, httpx.Response] = {}

    def first() -> None:
        results["first"] = httpx.get(f"{admin}/debug/profile?seconds=3", headers=AUTH, timeout=30)

    profiler = threading.Thread(target=first)
    profiler.start()
    try:
        time.sleep(1.0)  # well inside the first profile's 3 s window
        second = httpx.get(f"{admin}/debug/profile?seconds=1", headers=AUTH, timeout=30)
        profiler.join(timeout=30)
    finally:
        stop.set()
        loader.join(timeout=15)
    assert second.status_code == 409
    response = results["first"]
    assert response.status_code == 200
    body = response.json()
    assert body["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert body["profiles"] and body["profiles"][0]["events"]
    names = {frame["name"] for frame in body["shared"]["frames"]}
    assert "crunch" in names  # the served requests' work is in the profile
    html = httpx.get(f"{admin}/debug/profile?seconds=1&format=html", headers=AUTH, timeout=30)
    assert html.status_code == 200 and "<html" in html.text.lower()


def test_heap_tasks_threads_dumps(servers: tuple[str, str, subprocess.Popen[bytes]]) -> None:
    _, admin, _ = servers
    with httpx.Client(base_url=admin, headers=AUTH, timeout=30) as client:
        assert client.get("/debug/heap").json()["tracing"] is True
        heap = client.get("/debug/heap?top=5").json()
        assert 1 <= len(heap["top"]) <= 5
        assert client.delete("/debug/heap").json()["stopped"] is True
        tasks = client.get("/debug/tasks").json()
        assert tasks["count"] >= 1 and any("serve" in t["coro"] for t in tasks["tasks"])
        threads = client.get("/debug/threads").json()
        assert any(t["name"] == "MainThread" for t in threads["threads"])


def test_sigterm_shuts_both_servers_down_cleanly(servers: tuple[str, str, subprocess.Popen[bytes]]) -> None:
    _, admin, proc = servers
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert "servers_stopped" in out
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{admin}/debug/threads", headers=AUTH, timeout=2)
