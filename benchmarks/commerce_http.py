"""End-to-end purchase requests/s over HTTP vs a trivial endpoint of the same server (issue 6).

A server process (this script with ``--serve``) runs uvicorn with the real commerce router (auth
on: every request verifies a demo JWT), the Redis engine and limiter, an InProcessBus and the
order writer on SQLite; a ``GET /bench/ping`` endpoint behind the same auth is the anchor. The
load process sends ``REQUESTS`` purchase attempts from ``USERS`` buyers (limit 1) at
``CONCURRENCY`` in flight against a sale of ``STOCK`` units, then the same number of pings, and
reports requests/s, p50/p99 latency, and how many attempts each layer answered (sold-out flag,
rate limit / gate, engine). Writes ``benchmarks/results/commerce_http.{json,md}``.

    .venv/bin/python benchmarks/commerce_http.py           # ~1 min
    .venv/bin/python benchmarks/commerce_http.py --quick   # no files written
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from hexcity.infra.auth import AuthSettings, Role, mint_demo_token

PORT = 18_766
CONCURRENCY = 50
STOCK = 1_000
SECRET = "commerce-http-bench-" + "x" * 40
RESULTS = Path(__file__).parent / "results"
PURCHASE = "/commerce/v1/campaigns/sale/purchase"


def serve(tmp: str) -> None:
    import uvicorn
    from fastapi import APIRouter, Depends, FastAPI

    from hexcity.commerce import (
        Campaign,
        CommerceSettings,
        OrderWriter,
        Sku,
        build_commerce_router,
        build_commerce_service,
    )
    from hexcity.infra.auth import Principal, install_auth, require
    from hexcity.infra.bus import InProcessBus
    from hexcity.infra.http import json_response
    from hexcity.infra.sql import make_engine
    from hexcity.kernel import HexcityError

    settings = CommerceSettings(
        redis_url="redis://127.0.0.1:6379/0",
        key_prefix=f"hxbench:http:{uuid.uuid4().hex[:8]}:",
        user_capacity=5,
        ip_capacity=1_000_000,
        ip_refill_per_s=1_000_000,
        global_capacity=1_000_000,
        global_refill_per_s=1_000_000,
    )
    bus = InProcessBus(max_events_per_topic=100_000)
    service = build_commerce_service(settings, sql_engine=make_engine(f"sqlite:///{tmp}/bench.db"), bus=bus)
    writer = OrderWriter(service.store, bus, batch_size=500, flush_s=0.2)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        await writer.start()
        await service.start(reconcile=False)
        now = time.time()
        await service.add_merchant("shop", "Bench shop")
        await service.add_product("p", "shop", "Phone")
        await service.add_sku(Sku("sku", "p", "shop", 100, "EUR", STOCK))
        await service.schedule_campaign(
            Campaign("sale", "sku", "shop", now - 1, now + 3600, 1, "EUR", STOCK, 1, 8)
        )
        yield
        await writer.stop()
        await service.stop()
        await service.engine.drop("sale")

    app = FastAPI(lifespan=lifespan)
    install_auth(app, AuthSettings(jwt_secret=SECRET, demo_mode=True))
    app.include_router(build_commerce_router(service))
    bench = APIRouter()

    @bench.get("/bench/ping")
    async def ping(_: Principal = Depends(require("orders:read"))) -> Any:  # noqa: B008
        return json_response({"ok": True})

    @bench.get("/bench/stats")
    async def stats(_: Principal = Depends(require("orders:read"))) -> Any:  # noqa: B008
        snap = await service.engine.snapshot("sale")
        rows = len(service.store.list_orders(campaign_id="sale", limit=10_000))
        return json_response(
            {"engine_calls": service.engine_calls, "held": snap.held if snap else None, "orders": rows}
        )

    app.include_router(bench)

    @app.exception_handler(HexcityError)
    async def error(_: Any, exc: HexcityError) -> Any:
        return json_response({"code": exc.code, "message": exc.message}, exc.status)

    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")


async def load(requests: int, users: int) -> dict[str, Any]:
    auth = AuthSettings(jwt_secret=SECRET, demo_mode=True)
    tokens = [f"Bearer {mint_demo_token(auth, Role.RIDER, f'u{i}')}" for i in range(users)]
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", limits=limits, timeout=30) as client:

        async def run(kind: str) -> dict[str, Any]:
            latencies: list[float] = []
            codes: dict[str, int] = {}
            counter = iter(range(requests))

            async def worker() -> None:
                for i in counter:
                    headers = {"Authorization": tokens[i % users]}
                    began = time.perf_counter()
                    if kind == "ping":
                        r = await client.get("/bench/ping", headers=headers)
                    else:
                        r = await client.post(PURCHASE, json={"quantity": 1}, headers=headers)
                    latencies.append(time.perf_counter() - began)
                    code = (
                        str(r.status_code)
                        if r.status_code < 300
                        else f"{r.status_code} {r.json().get('code')}"
                    )
                    codes[code] = codes.get(code, 0) + 1

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            elapsed = time.perf_counter() - began
            latencies.sort()
            return {
                "requests_per_s": round(requests / elapsed),
                "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
                "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
                "answers": codes,
            }

        admin = {"Authorization": tokens[0]}
        ping = await run("ping")
        purchase = await run("purchase")
        ping_after = await run("ping")
        await asyncio.sleep(1.0)  # let the writer flush
        stats = (await client.get("/bench/stats", headers=admin)).json()
    return {"ping": ping, "purchase": purchase, "ping_after": ping_after, "server": stats}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", metavar="TMPDIR")
    ns = parser.parse_args()
    if ns.serve:
        serve(ns.serve)
        return
    requests, users = (3_000, 3_000) if ns.quick else (8_000, 8_000)
    tmp = f"/tmp/hxbench-{uuid.uuid4().hex[:8]}"
    os.makedirs(tmp)
    server = subprocess.Popen([sys.executable, __file__, "--serve", tmp])
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{PORT}/bench/ping", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        result = asyncio.run(load(requests, users))
    finally:
        server.terminate()
        server.wait(10)
    anchor = statistics.mean([result["ping"]["requests_per_s"], result["ping_after"]["requests_per_s"]])
    report = {
        "benchmark": "commerce_http",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "requests": requests,
        "users": users,
        "concurrency": CONCURRENCY,
        "stock": STOCK,
        **result,
        "purchase_ratio_to_ping": round(result["purchase"]["requests_per_s"] / anchor, 3),
    }
    answers = result["purchase"]["answers"]
    engine_calls = result["server"]["engine_calls"]

    def row(name: str, r: dict[str, Any]) -> str:
        return f"| {name} | {r['requests_per_s']:,} | {r['p50_ms']} | {r['p99_ms']} |"

    md_lines = [
        "# commerce_http — purchase over HTTP vs a trivial endpoint of the same server",
        "",
        f"{report['when']}, {requests} purchase attempts from {users} buyers (limit 1), stock {STOCK},",
        f"{CONCURRENCY} in flight (httpx), uvicorn 1 process, auth on (JWT per request), Redis engine,",
        "shared 2-vCPU box with other agents running (absolute numbers are lower bounds).",
        "",
        "| endpoint | requests/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
        row("GET /bench/ping (before)", result["ping"]),
        row("POST purchase", result["purchase"]),
        row("GET /bench/ping (after)", result["ping_after"]),
        "",
        f"purchase / ping = {report['purchase_ratio_to_ping']}. Answers: {answers}.",
        f"Engine (Redis script) calls: {engine_calls} of {requests} attempts; the others were answered by",
        "the in-process sold-out flag (or the gate / rate limiter) without a Redis round trip.",
        f"Orders in SQL 1 s after the load: {result['server']['orders']}.",
    ]
    md = "\n".join(md_lines) + "\n"
    print(md)
    if not ns.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "commerce_http.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / "commerce_http.md").write_text(md)


if __name__ == "__main__":
    main()
