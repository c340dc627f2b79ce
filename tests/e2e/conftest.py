"""A real ``hexcity serve`` process on a free port, serving the Andorra graphs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

STARTUP_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, name: str, timeout_s: float = 30.0) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port in a daemon thread; yields its base URL and
    stops the server on exit (fails the test if it does not start within ``timeout_s``)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail(f"{name}: uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def start_process(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """A server process in its own session, output to a file (an unread pipe would block it)."""
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_ready(
    proc: subprocess.Popen[bytes], base: str, log_path: Path, timeout_s: float = STARTUP_TIMEOUT_S
) -> None:
    """Poll ``/health/ready`` until 200; fail with the log's tail if the process dies or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{log_path.name}: exited early: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{log_path.name}: not ready in {timeout_s:.0f} s: {log_path.read_text()[-3000:]}")
        time.sleep(0.2)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after 15 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def api_key_entry() -> tuple[str, str]:
    """A service API key for the e2e servers: (key for clients, entry for server settings)."""
    from hexcity.infra.auth import generate_api_key

    return generate_api_key("e2e", {"routing:read", "webhooks:write"})


@pytest.fixture(scope="session")
def routing_only_key_entry() -> tuple[str, str]:
    """A key that may route but not post webhooks (for 403 checks)."""
    from hexcity.infra.auth import generate_api_key

    return generate_api_key("e2e-routing", {"routing:read"})


@pytest.fixture(scope="session")
def api_key(api_key_entry: tuple[str, str]) -> str:
    return api_key_entry[0]


@pytest.fixture(scope="session")
def server(
    graph_dir: Callable[[str, str], Path],
    api_key_entry: tuple[str, str],
    routing_only_key_entry: tuple[str, str],
) -> Iterator[str]:
    """Base URL of a live server with car, bike and foot for Andorra (auth by API key)."""
    port = free_port()
    graphs = [graph_dir("andorra", p) for p in ("car", "bike", "foot")]
    cmd = [sys.executable, "-m", "hexcity.cli", "serve", "--port", str(port)]
    for g in graphs:
        cmd += ["--graph", str(g)]
    env = {
        **os.environ,
        "HEXCITY_ROUTING_MAX_TABLE_SIZE": "100",
        "HEXCITY_AUTH_API_KEYS": f"{api_key_entry[1]},{routing_only_key_entry[1]}",
        "HEXCITY_DATABASE_URL": f"sqlite:///{graphs[0].parent / f'serve-{port}.db'}",
    }
    log_path = graphs[0].parent / f"serve-{port}.log"
    proc = start_process(cmd, env, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, log_path)
        yield base
    finally:
        stop_process(proc)


@pytest.fixture()
def http(server: str, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30.0, headers={"X-API-Key": api_key}) as client:
        yield client
