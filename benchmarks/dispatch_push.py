"""Push delivery: decision → delivered latency for N WebSocket clients on localhost (dispatch.md §2.8).

A server process (this script with ``--serve``) runs uvicorn with the real push router
(``build_push_router`` on a ``PushHub``, JWT auth on) and, for the anchor, a bare WebSocket endpoint.
A client process (this script) opens N WebSocket connections, then for R rounds asks the server to
fan one message out to every client (``POST /bench/fanout``) and records, per received message,
``time.time()`` at the client minus ``decided_at_s`` stamped by the server when the round started
(same host, same clock). Hub clients ack every 10th seq (``--ack-every``; batched acks), as a real
client would; every repeat ends fully acked (``--rounds`` is a multiple of it), so the next repeat
of the same client ids replays nothing.

* ``hexcity PushHub``: ``hub.send`` per client (seq, ring, bounded queue), one writer task per
  connection drains it (``Connection.next_frame`` → ``send_text``);
* anchor, same run, same N: the server loops ``await websocket.send_text(frame)`` over the raw
  sockets (no seq, no ring, no queue, no ack) — the floor of this server and client stack.

Latency includes the client process's scheduling of N sockets (both sides share 2 cores with
other work), so the ratio hub/anchor is the number to read. Repeated ``--repeats`` times with the
order alternating; the tables show the median p50/p99 over repeats. Target (issue 4 brief): p99 ≤
200 ms. The server's full (generation 2) garbage collections during the rounds are counted and
timed: they are the latency tail. ``--gc-freeze`` makes the server call ``gc.freeze()`` after
startup (what the app can do) and writes ``dispatch_push_gc_freeze.{json,md}`` instead.
Writes ``benchmarks/results/dispatch_push.{json,md}``.

    .venv/bin/python benchmarks/dispatch_push.py            # N = 100, 500, 1000; 20 rounds; 3 repeats
    .venv/bin/python benchmarks/dispatch_push.py --quick    # N = 100; 5 rounds; 1 repeat; no files
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from prometheus_client import CollectorRegistry
from websockets.asyncio.client import connect

from hexcity.dispatch.adapters.push_memory import LoggingFallbackPusher
from hexcity.dispatch.adapters.push_metrics import LATENCY_BUCKETS_S
from hexcity.dispatch.http_push import build_push_router
from hexcity.dispatch.push import PushHub, PushParams
from hexcity.infra.auth import AuthSettings, TokenService, install_auth

REPO = Path(__file__).resolve().parents[1]
RESULT_JSON = REPO / "benchmarks" / "results" / "dispatch_push.json"
RESULT_MD = REPO / "benchmarks" / "results" / "dispatch_push.md"
SECRET = "bench-push-secret-0123456789-abcdefghijkl"
TARGET_P99_MS = 200.0
ACK_EVERY = 10  # default of --ack-every
ROUND_TIMEOUT_S = 10.0
PUBLIC = ["/health/live", "/anchor/ws", "/bench/fanout", "/bench/status"]


# -- server ---------------------------------------------------------------------------------------
def serve(port: int, gc_freeze: bool) -> None:
    gc_ms = {"full_collections": 0.0, "full_ms": 0.0, "young_ms": 0.0}
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
            return
        elapsed_ms = (time.perf_counter() - gc_started[0]) * 1000
        if info["generation"] == 2:
            gc_ms["full_collections"] += 1
            gc_ms["full_ms"] += elapsed_ms
        else:
            gc_ms["young_ms"] += elapsed_ms

    gc.callbacks.append(on_gc)
    fallback = LoggingFallbackPusher()
    registry = CollectorRegistry()
    hub = PushHub(PushParams(), fallback=fallback, registry=registry)
    anchor: dict[str, WebSocket] = {}
    app = FastAPI()
    install_auth(app, AuthSettings(jwt_secret=SECRET, public_paths=PUBLIC))
    app.include_router(build_push_router(hub))

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/bench/status")
    async def status() -> dict[str, Any]:
        return {
            "hub_connected": hub.connected_count,
            "anchor_connected": len(anchor),
            "fallback": dict(fallback.counts),
            "cpu_s": time.process_time(),
            "gc": dict(gc_ms),
            "socket_latency_buckets": {
                str(le): registry.get_sample_value(
                    "dispatch_push_latency_seconds_bucket", {"le": "+Inf" if le == math.inf else str(le)}
                )
                or 0.0
                for le in (*LATENCY_BUCKETS_S, math.inf)
            },
        }

    @app.websocket("/anchor/ws")
    async def anchor_ws(websocket: WebSocket, client: str) -> None:
        await websocket.accept()
        anchor[client] = websocket
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            anchor.pop(client, None)

    @app.post("/bench/fanout")
    async def fanout(mode: str, round_no: int, n: int) -> dict[str, int]:
        decided_at_s = time.time()
        payload = {"round": round_no, "decided_at_s": decided_at_s, "trip_id": "t" * 24, "eta_s": 240}
        if mode == "hub":
            for i in range(n):
                await hub.send(f"driver:b{i}", "offer", payload, priority="high")
        else:
            frame = {"seq": round_no, "kind": "offer", "data": payload, "sent_at_s": decided_at_s}
            text = orjson.dumps(frame).decode()
            for websocket in list(anchor.values()):
                await websocket.send_text(text)
        return {"sent": n}

    if gc_freeze:  # what an app can do after startup: the imported world is never scanned again
        gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_max_queue=256)


# -- client ---------------------------------------------------------------------------------------
class Receiver:
    def __init__(self, n: int) -> None:
        self.latencies_ms: list[float] = []
        self.per_round: dict[int, int] = {}
        self.n = n
        self.round_done: dict[int, asyncio.Event] = {}

    def event(self, round_no: int) -> asyncio.Event:
        return self.round_done.setdefault(round_no, asyncio.Event())

    def got(self, data: dict[str, Any]) -> None:
        now = time.time()
        self.latencies_ms.append((now - data["decided_at_s"]) * 1000)
        round_no = data["round"]
        count = self.per_round.get(round_no, 0) + 1
        self.per_round[round_no] = count
        if count == self.n:
            self.event(round_no).set()


async def client_loop(url: str, headers: dict[str, str], receiver: Receiver, ack_every: int) -> None:
    async with connect(url, additional_headers=headers, max_queue=256, open_timeout=60) as ws:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame["kind"] == "heartbeat":
                continue
            receiver.got(frame["data"])
            if ack_every and frame["seq"] % ack_every == 0:
                await ws.send(orjson.dumps({"ack": frame["seq"]}).decode())


async def measure(
    base: str, mode: str, n: int, rounds: int, tokens: list[str], ack_every: int = ACK_EVERY
) -> dict[str, Any]:
    receiver = Receiver(n)
    ws_base = base.replace("http://", "ws://")
    tasks = []
    for i in range(n):
        if mode == "hub":
            headers = {"Authorization": f"Bearer {tokens[i]}"}
            url, ack = f"{ws_base}/dispatch/v1/push/ws", ack_every
        else:
            headers = {}
            url, ack = f"{ws_base}/anchor/ws?client=b{i}", 0
        tasks.append(asyncio.create_task(client_loop(url, headers, receiver, ack)))
        if i % 50 == 49:
            await asyncio.sleep(0.01)  # do not SYN-flood the listen backlog
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        key = "hub_connected" if mode == "hub" else "anchor_connected"
        deadline = time.monotonic() + 60
        while (await http.get("/bench/status")).json()[key] < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only some of {n} clients connected")
            await asyncio.sleep(0.05)
        status_before = (await http.get("/bench/status")).json()
        before = status_before["socket_latency_buckets"]
        started = time.monotonic()
        for round_no in range(rounds):
            await http.post("/bench/fanout", params={"mode": mode, "round_no": round_no, "n": n})
            await asyncio.wait_for(receiver.event(round_no).wait(), ROUND_TIMEOUT_S)
            await asyncio.sleep(0.05)
        elapsed_s = time.monotonic() - started
        status = (await http.get("/bench/status")).json()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = sorted(receiver.latencies_ms)
    after = status["socket_latency_buckets"]
    buckets = [(float(le), after[le] - before[le]) for le in after]
    return {
        "mode": mode,
        "n_clients": n,
        "rounds": rounds,
        "messages": len(lat),
        "p50_ms": _quantile(lat, 0.50),
        "p99_ms": _quantile(lat, 0.99),
        "max_ms": lat[-1],
        "elapsed_s": elapsed_s,
        "fallback": status["fallback"],
        # the server's garbage collector during the rounds: full (gen 2) collections and their time
        "server_full_gc": status["gc"]["full_collections"] - status_before["gc"]["full_collections"],
        "server_full_gc_ms": status["gc"]["full_ms"] - status_before["gc"]["full_ms"],
        "server_young_gc_ms": status["gc"]["young_ms"] - status_before["gc"]["young_ms"],
        # server process CPU per delivered message (robust against the shared machine's noise)
        "server_cpu_us_per_message": (status["cpu_s"] - status_before["cpu_s"]) * 1e6 / max(1, len(lat)),
        # hub only: the server's own decision -> socket-write histogram (bucket upper bounds)
        "server_p50_le_ms": _bucket_quantile(buckets, 0.50) if mode == "hub" else None,
        "server_p99_le_ms": _bucket_quantile(buckets, 0.99) if mode == "hub" else None,
    }


def _bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound (ms) of the first cumulative bucket holding a fraction ``q`` of the samples."""
    total = buckets[-1][1]
    if total <= 0:
        return None
    for le, cumulative in buckets:
        if cumulative >= q * total:
            return le * 1000
    return None


def _quantile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("bench server exited")
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("bench server did not start")


async def run_all(
    base: str, sizes: list[int], rounds: int, repeats: int, ack_every: int
) -> list[dict[str, Any]]:
    issuer = TokenService.from_settings(AuthSettings(jwt_secret=SECRET))
    tokens = [issuer.issue(f"b{i}", "driver") for i in range(max(sizes))]
    rows: list[dict[str, Any]] = []
    for n in sizes:
        for repeat in range(repeats):
            order = ["hub", "anchor"] if repeat % 2 == 0 else ["anchor", "hub"]
            for mode in order:
                row = await measure(base, mode, n, rounds, tokens, ack_every)
                row["repeat"] = repeat
                rows.append(row)
                print(
                    f"N={n:5d} {mode:6s} repeat {repeat}: p50 {row['p50_ms']:7.2f} ms  "
                    f"p99 {row['p99_ms']:7.2f} ms  ({row['messages']} messages; server CPU "
                    f"{row['server_cpu_us_per_message']:.1f} µs/message; socket-write p50 <= "
                    f"{row['server_p50_le_ms']} ms, p99 <= {row['server_p99_le_ms']} ms; full GCs "
                    f"{row['server_full_gc']:.0f} = {row['server_full_gc_ms']:.0f} ms)",
                    flush=True,
                )
                await asyncio.sleep(0.5)  # let the server reap the closed sockets
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for n in sorted({r["n_clients"] for r in rows}):
        by_mode = {
            mode: [r for r in rows if r["n_clients"] == n and r["mode"] == mode] for mode in ("hub", "anchor")
        }
        med = {
            mode: {
                k: statistics.median(r[k] for r in rs)
                for k in ("p50_ms", "p99_ms", "max_ms", "server_cpu_us_per_message")
            }
            | {
                "full_gc_total": sum(r["server_full_gc"] for r in rs),
                "full_gc_ms_total": sum(r["server_full_gc_ms"] for r in rs),
            }
            for mode, rs in by_mode.items()
        }
        for mode in ("hub", "anchor"):
            out.append(
                {
                    "n_clients": n,
                    "mode": mode,
                    **med[mode],
                    "messages_per_repeat": by_mode[mode][0]["messages"],
                    "p50_vs_anchor": med[mode]["p50_ms"] / med["anchor"]["p50_ms"],
                    "p99_vs_anchor": med[mode]["p99_ms"] / med["anchor"]["p99_ms"],
                    "cpu_vs_anchor": med[mode]["server_cpu_us_per_message"]
                    / med["anchor"]["server_cpu_us_per_message"],
                    "p99_within_target": med[mode]["p99_ms"] <= TARGET_P99_MS,
                }
            )
    return out


def write_results(summary: list[dict[str, Any]], rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    result_json, result_md = RESULT_JSON, RESULT_MD
    if meta["gc_freeze"]:
        result_json = RESULT_JSON.with_name("dispatch_push_gc_freeze.json")
        result_md = RESULT_MD.with_name("dispatch_push_gc_freeze.md")
    result_json.write_text(json.dumps({"meta": meta, "summary": summary, "runs": rows}, indent=2) + "\n")
    names = {
        "hub": "hexcity PushHub (seq, ring, bounded queue, acks)",
        "anchor": "anchor: raw send_text loop",
    }
    lines = [
        "# Push delivery: decision → delivered latency over WebSocket on localhost",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}; 1-min load average {meta['load_average_1min'][0]} before, "
        f"{meta['load_average_1min'][1]} after (client and server processes share the 2 cores)",
        f"- {meta['rounds']} rounds per run, one message per client per round (50 ms apart); "
        f"{meta['repeats']} repeats, order alternating; medians over repeats; hub clients ack every "
        f"{meta['ack_every']}th seq; server `gc.freeze()` after startup: {meta['gc_freeze']}",
        "- latency: client `time.time()` at receipt − `decided_at_s` stamped by the server when the round "
        "started (same host clock); includes the client process scheduling N sockets",
        "- anchor ratio = row / raw `send_text` loop over the same N sockets in the same run; "
        f"target: p99 ≤ {TARGET_P99_MS:.0f} ms",
        "- server CPU µs/message = server process CPU time during the rounds / messages delivered "
        "(steadier than latency on a shared machine); full GCs = generation-2 collections in the server "
        "during the measured rounds, summed over repeats (their pauses are the latency tail)",
        "",
        "| clients | path | p50 ms | p99 ms | max ms | p50 vs anchor | p99 vs anchor | p99 ≤ 200 ms "
        "| server CPU µs/message | CPU vs anchor | full GCs in runs (ms) |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['n_clients']:,} | {names[s['mode']]} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
            f"{s['max_ms']:.2f} | {s['p50_vs_anchor']:.2f}x | {s['p99_vs_anchor']:.2f}x | "
            f"{'yes' if s['p99_within_target'] else '**no**'} | {s['server_cpu_us_per_message']:.1f} | "
            f"{s['cpu_vs_anchor']:.2f}x | {s['full_gc_total']:.0f} ({s['full_gc_ms_total']:.0f}) |"
        )
    lines.append("")
    result_md.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="run the bench server (internal)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sizes", default="100,500,1000", help="client counts, comma separated")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ack-every", type=int, default=ACK_EVERY, help="hub clients ack every Nth seq")
    parser.add_argument("--gc-freeze", action="store_true", help="server calls gc.freeze() after startup")
    parser.add_argument("--quick", action="store_true", help="N=100, 5 rounds, 1 repeat, no files")
    parser.add_argument("--no-files", action="store_true", help="print only; leave the results alone")
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.gc_freeze)
        return
    sizes = [100] if args.quick else [int(s) for s in args.sizes.split(",")]
    rounds, repeats = (5, 1) if args.quick else (args.rounds, args.repeats)
    if args.ack_every < 1 or (repeats > 1 and rounds % args.ack_every):
        parser.error("--ack-every must divide --rounds (unacked messages would replay in the next repeat)")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--port",
            str(port),
            *(["--gc-freeze"] if args.gc_freeze else []),
        ],
        cwd=REPO,
        env={**os.environ},
    )
    try:
        _wait_ready(base, proc)
        started = time.monotonic()
        load_before = os.getloadavg()[0]
        rows = asyncio.run(run_all(base, sizes, rounds, repeats, args.ack_every))
        load_after = os.getloadavg()[0]
        total_s = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(10)
    summary = summarise(rows)
    for s in summary:
        print(
            f"N={s['n_clients']:5d} {s['mode']:6s} median p50 {s['p50_ms']:.2f} ms  "
            f"p99 {s['p99_ms']:.2f} ms (p99 {s['p99_vs_anchor']:.2f}x anchor)"
        )
    if args.quick or args.no_files:
        return
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}; Python {platform.python_version()} "
        "(shared with other work)",
        "rounds": rounds,
        "repeats": repeats,
        "ack_every": args.ack_every,
        "gc_freeze": args.gc_freeze,
        "total_s": round(total_s, 1),
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
    }
    write_results(summary, rows, meta)


if __name__ == "__main__":
    main()
