"""Reading the outcome back over HTTP: the ledger watch, the live-feed counters, the module probe."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

from hexcity.simulator.report import LedgerWatch, fetch_feed_counters, fetch_ledger, ledger_summary, probe

ACCOUNTS = {
    "external:settlement:EUR": ("external_settlement", -1000),
    "wallet:c1:EUR": ("wallet", 400),
    "merchant:s1:EUR": ("merchant", 600),
}


def _ledger_api(seen_at: list[float]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        account_id = parts[5] if parts[3] == "ledger" else parts[4]
        if account_id not in ACCOUNTS:
            return httpx.Response(404, json={"code": "AccountNotFound", "message": "no"})
        kind, balance = ACCOUNTS[account_id]
        if request.url.path.endswith("/entries"):
            direction = "CREDIT" if balance > 0 else "DEBIT"
            entry = {
                "seq": 1,
                "direction": direction,
                "amount_minor": abs(balance),
                "balance_after_minor": balance,
            }
            return httpx.Response(200, json={"entries": [entry], "next_after_seq": None})
        body = {"id": account_id, "kind": kind, "currency": "EUR", "balance_minor": balance,
                "available_minor": balance, "overdraft": "unbounded" if balance < 0 else "none"}  # fmt: skip
        if "at_s" in request.url.params:
            seen_at.append(float(request.url.params["at_s"]))
            body["balance_at_minor"] = balance
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handler)


def test_the_watch_sums_point_in_time_balances_by_kind() -> None:
    seen_at: list[float] = []
    watch = LedgerWatch(lambda: [*ACCOUNTS, "wallet:never-opened:EUR"], settle_s=2.0)

    async def go() -> None:
        async with httpx.AsyncClient(transport=_ledger_api(seen_at), base_url="http://x") as http:
            await watch.refresh(http, {})

    before = time.time()
    asyncio.run(go())
    assert watch.by_kind == {"external_settlement": -1000, "wallet": 400, "merchant": 600}
    assert watch.accounts == 3 and watch.currency == "EUR"
    assert len(set(seen_at)) == 1  # one moment for every account
    assert watch.as_of_s == seen_at[0] and before - 2.1 <= seen_at[0] <= time.time() - 1.9


def test_fetch_ledger_reads_accounts_and_entries_and_the_books_balance() -> None:
    async def go() -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        async with httpx.AsyncClient(transport=_ledger_api([]), base_url="http://x") as http:
            return await fetch_ledger(http, {}, [*ACCOUNTS, "wallet:never-opened:EUR"])

    accounts, entries = asyncio.run(go())
    assert sorted(a["id"] for a in accounts) == sorted(ACCOUNTS)
    summary = ledger_summary(accounts, entries)
    assert summary["balanced"] is True and summary["sum_minor"] == {"EUR": 0} and summary["problems"] == []
    assert summary["balance_by_kind_minor"] == {"external_settlement": -1000, "merchant": 600, "wallet": 400}


def test_feed_counters_come_from_the_first_tick() -> None:
    snapshot = orjson.dumps({"type": "snapshot", "kpis": []}).decode()
    tick = orjson.dumps({"type": "tick", "kpi": {"trips_requested": 7, "trips_completed": 3,
                                                 "trips_cancelled": 1}}).decode()  # fmt: skip
    stream = f"event: snapshot\ndata: {snapshot}\n\nevent: tick\ndata: {tick}\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=stream, headers={"content-type": "text/event-stream"})

    async def go() -> dict[str, int] | None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://x") as http:
            return await fetch_feed_counters(http, {})

    assert asyncio.run(go()) == {"requested": 7, "completed": 3, "cancelled": 1}


def test_probe_tells_an_unrouted_path_from_a_served_one() -> None:
    answers = {
        "/absent": httpx.Response(400, json={"code": "InvalidUrl", "message": "URL is not valid"}),
        "/missing": httpx.Response(404),
        "/served": httpx.Response(200, json={"campaigns": []}),
        "/served-bad-query": httpx.Response(400, json={"code": "InvalidInput", "message": "limit"}),
    }

    async def go() -> dict[str, bool]:
        transport = httpx.MockTransport(lambda request: answers[request.url.path])
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
            return {path: await probe(http, {}, path) for path in answers}

    assert asyncio.run(go()) == {
        "/absent": False,
        "/missing": False,
        "/served": True,
        "/served-bad-query": True,
    }
