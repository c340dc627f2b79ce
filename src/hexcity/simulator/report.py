"""What a headless run reports, read back from the platform over its public APIs at the end.

* trips: ``GET /dispatch/v1/trips/{id}`` (admin) for every trip the riders created — final status
  and the pickup ETA the platform offered;
* ledger: ``GET /payments/v1/ledger/accounts/{id}`` and every page of
  ``GET /payments/v1/accounts/{id}/entries`` for every account the run can have moved money on
  (system accounts, the shop's merchant account, customers' and riders' wallets, drivers'
  earnings — ids follow the payments naming scheme; a 404 means the account was never opened);
* events: the dashboard's live feed (``GET /web/v1/live``, SSE) folds the ``ride.status`` events it
  consumed from the bus into counters; a trip the API shows requested / completed / cancelled
  whose event the feed never counted is an event lost between publisher and consumer;
* flash sale: whether the app serves ``/commerce/v1`` at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx
import orjson

from hexcity.simulator.kpis import check_ledger

__all__ = ["LedgerWatch", "fetch_feed_counters", "fetch_ledger", "fetch_trips", "ledger_summary", "probe"]

MAX_ENTRY_PAGES = 1_000
PAGE = 1_000
FETCH_CONCURRENCY = 16
SSE_TIMEOUT_S = 10.0


async def _gather_limited(jobs: list[Any]) -> list[Any]:
    slots = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def one(job: Any) -> Any:
        async with slots:
            return await job

    return await asyncio.gather(*(one(j) for j in jobs))


async def fetch_trips(
    http: httpx.AsyncClient, headers: Mapping[str, str], trip_ids: Iterable[str]
) -> list[dict[str, Any]]:
    """The current public view of each trip (ids the API no longer knows are left out)."""

    async def one(trip_id: str) -> dict[str, Any] | None:
        r = await http.get(f"/dispatch/v1/trips/{trip_id}", headers=dict(headers))
        if r.status_code == 404:
            return None
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    found = await _gather_limited([one(t) for t in trip_ids])
    return [t for t in found if t is not None]


async def fetch_ledger(
    http: httpx.AsyncClient, headers: Mapping[str, str], account_ids: Iterable[str]
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Accounts that exist among ``account_ids`` and all their entries (in ``seq`` order)."""

    async def one(account_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        r = await http.get(f"/payments/v1/ledger/accounts/{account_id}", headers=dict(headers))
        if r.status_code == 404:
            return None, []
        r.raise_for_status()
        account: dict[str, Any] = r.json()
        rows: list[dict[str, Any]] = []
        after = 0
        for _ in range(MAX_ENTRY_PAGES):
            r = await http.get(
                f"/payments/v1/accounts/{account_id}/entries",
                params={"after_seq": after, "limit": PAGE},
                headers=dict(headers),
            )
            r.raise_for_status()
            page = r.json()
            rows.extend(page["entries"])
            if page["next_after_seq"] is None:
                break
            after = int(page["next_after_seq"])
        return account, rows

    accounts: list[dict[str, Any]] = []
    entries: dict[str, list[dict[str, Any]]] = {}
    for account, rows in await _gather_limited([one(a) for a in sorted(set(account_ids))]):
        if account is not None:
            accounts.append(account)
            entries[str(account["id"])] = rows
    return accounts, entries


async def fetch_feed_counters(http: httpx.AsyncClient, headers: Mapping[str, str]) -> dict[str, int] | None:
    """The live feed's trip counters from its first ``tick`` frame (None if the feed is absent)."""
    with contextlib.suppress(httpx.HTTPError, TimeoutError, ValueError, KeyError):
        async with asyncio.timeout(SSE_TIMEOUT_S):
            async with http.stream("GET", "/web/v1/live", headers=dict(headers)) as r:
                if r.status_code != 200:
                    return None
                event = ""
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:].strip()
                    elif line.startswith("data: ") and event == "tick":
                        kpi = orjson.loads(line[6:])["kpi"]
                        return {
                            "requested": int(kpi["trips_requested"]),
                            "completed": int(kpi["trips_completed"]),
                            "cancelled": int(kpi["trips_cancelled"]),
                        }
    return None


async def probe(http: httpx.AsyncClient, headers: Mapping[str, str], path: str) -> bool:
    """Whether the app serves ``path``: the app answers an unrouted path with 400 ``InvalidUrl``
    (404 and 405 count as absent too)."""
    try:
        r = await http.get(path, headers=dict(headers))
    except httpx.HTTPError:
        return False
    if r.status_code in (404, 405):
        return False
    if r.status_code == 400:
        with contextlib.suppress(ValueError):
            return bool(r.json().get("code") != "InvalidUrl")
    return True


def ledger_summary(
    accounts: list[dict[str, Any]], entries: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """``balanced`` plus the figures behind it (totals by kind, problems found, first 20)."""
    check = check_ledger(accounts, entries)
    by_kind: dict[str, int] = {}
    for a in accounts:
        by_kind[str(a["kind"])] = by_kind.get(str(a["kind"]), 0) + int(a["balance_minor"])
    problems = check.problems
    return {
        "balanced": check.balanced,
        "accounts": len(accounts),
        "entries": sum(c.entries for c in check.accounts),
        "balance_by_kind_minor": dict(sorted(by_kind.items())),
        "sum_minor": check.totals_minor,
        "debits_minor": check.debits_minor,
        "credits_minor": check.credits_minor,
        "problems": problems[:20],
    }


class LedgerWatch:
    """Reads the balances of the accounts a simulation touched every ``every_s`` wall seconds
    (for the dashboard's ledger panel): ``by_kind`` is ``{kind: sum of balances}`` as of
    ``as_of_s`` (epoch seconds, ``settle_s`` in the past). Reading many accounts one by one while
    money moves would mix moments; the ledger's point-in-time balance (``?at_s=``) gives one
    consistent moment, so the sum is exactly zero when the books balance."""

    def __init__(
        self, account_ids: Callable[[], Iterable[str]], every_s: float = 5.0, settle_s: float = 2.0
    ) -> None:
        if not 0.5 <= every_s <= 3600 or not 0 <= settle_s <= 60:
            raise ValueError("every_s must be in [0.5, 3600] and settle_s in [0, 60]")
        self.account_ids = account_ids
        self.every_s = every_s
        self.settle_s = settle_s
        self.by_kind: dict[str, int] = {}
        self.accounts = 0
        self.currency = ""
        self.as_of_s: float | None = None
        self.errors = 0

    async def refresh(self, http: httpx.AsyncClient, headers: Mapping[str, str]) -> None:
        as_of_s = round(time.time() - self.settle_s, 3)

        async def one(account_id: str) -> dict[str, Any] | None:
            r = await http.get(
                f"/payments/v1/ledger/accounts/{account_id}", params={"at_s": as_of_s}, headers=dict(headers)
            )
            if r.status_code == 404:
                return None
            r.raise_for_status()
            body: dict[str, Any] = r.json()
            return body

        found = [a for a in await _gather_limited([one(i) for i in sorted(set(self.account_ids()))]) if a]
        by_kind: dict[str, int] = {}
        for a in found:
            by_kind[str(a["kind"])] = by_kind.get(str(a["kind"]), 0) + int(a["balance_at_minor"])
        self.by_kind, self.accounts, self.as_of_s = by_kind, len(found), as_of_s
        self.currency = str(found[0]["currency"]) if found else ""

    async def run(self, http: httpx.AsyncClient, headers: Mapping[str, str], stop: asyncio.Event) -> None:
        """Refresh until ``stop``; waits at least twice as long as a refresh took (a long demo's
        thousands of accounts must not keep the API busy)."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            try:
                await self.refresh(http, headers)
            except (httpx.HTTPError, KeyError, ValueError):
                self.errors += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(self.every_s, 2 * (loop.time() - started)))
