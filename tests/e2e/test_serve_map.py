"""`hexcity serve --map PBF`: builds into the cache, turns ready, reuses the cache next time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hexcity.infra.auth import generate_api_key
from tests.conftest import EXTRACTS
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.slow
KEY, ENTRY = generate_api_key("e2e-map", {"routing:read"})


def start(cache_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HEXCITY_ROUTING_CACHE_DIR": str(cache_dir), "HEXCITY_AUTH_API_KEYS": ENTRY}
    cmd = [sys.executable, "-m", "hexcity.cli", "serve", "--map", str(EXTRACTS["andorra"])]
    cmd += ["--profile", "car", "--port", str(port)]
    log = (cache_dir.parent / f"serve-{port}.log").open("wb")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> list[int]:
    """Poll readiness; returns every status seen (each must be 503 'loading' until the 200)."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            response = httpx.get(f"{base}/health/ready", timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        seen.append(response.status_code)
        if response.status_code == 200:
            return seen
        assert response.json()["profiles"]["car"]["state"] == "loading"
        # while loading, queries get NotReady, not a crash
        early = httpx.get(
            f"{base}/route/v1/car/1.5211,42.5063;1.5394,42.5116", timeout=5.0, headers={"X-API-Key": KEY}
        )
        assert (early.status_code, early.json()["code"]) in {(503, "NotReady"), (200, "Ok")}
        time.sleep(0.05)
    pytest.fail("not ready in time")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=15)


def test_serve_map_builds_then_reuses_the_cached_artefact(tmp_path: Path) -> None:
    tmp_path = tmp_path / "cache"
    tmp_path.mkdir()
    for attempt in range(2):
        port = free_port()
        proc = start(tmp_path, port)
        try:
            seen = wait_ready(f"http://127.0.0.1:{port}", proc)
            assert seen[-1] == 200 and all(s == 503 for s in seen[:-1])
            body = httpx.get(
                f"http://127.0.0.1:{port}/route/v1/driving/1.5211,42.5063;1.5394,42.5116",
                headers={"X-API-Key": KEY},
            ).json()
            assert body["code"] == "Ok"
        finally:
            stop(proc)
        artefacts = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
        assert len(artefacts) == 1, f"attempt {attempt}: {artefacts}"
        assert artefacts[0].name == body["graph_version"]
        assert (artefacts[0] / "manifest.json").is_file()
        if attempt == 0:
            mtime = (artefacts[0] / "manifest.json").stat().st_mtime_ns
    assert (artefacts[0] / "manifest.json").stat().st_mtime_ns == mtime  # reused, not rebuilt
