"""``hexcity simulate`` on Andorra: a headless, seeded run that ends in a KPI report.

Real processes (``python -m hexcity.simulate``; the CLI registers the same function as
``hexcity simulate``): the embedded app on a free port with a manual clock, driven over HTTP in
lockstep virtual time by the simulator for 3 simulated minutes plus a 5-minute drain. The report
must have every KPI key with its type, trips requested and completed, shop orders placed and paid,
a balanced ledger and no event lost; a second run with the same seed gives the **same KPIs**
(everything but the ``run`` block of wall-clock facts), another seed a different plan;
``--plan-only`` with the same seed gives the same plan as the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow]

RUN_TIMEOUT_S = 240
ARGS = ["--map", "andorra", "--minutes", "3", "--seed", "1", "--drain-minutes", "5"]
NUMBER = (int, float)


def _simulate(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hexcity.simulate", *ARGS, *extra],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def _report(tmp_path_factory: pytest.TempPathFactory, *extra: str) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("simulate") / "kpis.json"
    done = _simulate("--report", str(out), *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    body: dict[str, Any] = json.loads(out.read_text())
    return body


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _report(tmp_path_factory)


def test_same_seed_same_kpis(report: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> None:
    again = _report(tmp_path_factory)
    assert report["run"]["clock"] == again["run"]["clock"] == "virtual"
    assert report["run"]["simulator_errors"] == 0, report["run"]["sample_errors"]
    first = {k: v for k, v in report.items() if k != "run"}
    second = {k: v for k, v in again.items() if k != "run"}
    assert first == second


def test_report_has_every_kpi_with_its_type(report: dict[str, Any]) -> None:
    from hexcity.simulator.kpis import REPORT_KEYS

    assert list(report)[: len(REPORT_KEYS)] == list(REPORT_KEYS)
    assert isinstance(report["trips_requested"], int)
    assert isinstance(report["trips_completed"], int)
    assert set(report["pickup_eta_s"]) == {"p50", "p90", "n"}
    assert isinstance(report["pickup_eta_s"]["p50"], NUMBER)
    assert report["pickup_eta_s"]["p90"] >= report["pickup_eta_s"]["p50"] > 0
    assert isinstance(report["orders_placed"], int)
    assert isinstance(report["orders_delivered"], int)
    for key in ("orders_on_time_rate", "split_rate"):
        assert report[key] is None or 0.0 <= report[key] <= 1.0
    assert report["ledger_balanced"] is True, report["details"]["ledger"]
    assert report["events_lost"] == 0, report["details"]["events"]
    assert isinstance(report["notes"], list)


def test_the_city_moved(report: dict[str, Any]) -> None:
    assert report["trips_requested"] == report["plan"]["trip_requests"] > 0
    assert report["trips_completed"] >= 1
    assert report["orders_placed"] == report["plan"]["shop_orders"] > 0
    assert report["details"]["orders"]["paid"] == report["details"]["orders"]["orders_allocated"]
    # money moved: the outside world paid in exactly what the platform's accounts now hold
    by_kind = report["details"]["ledger"]["balance_by_kind_minor"]
    assert by_kind["external_settlement"] < 0
    assert sum(by_kind.values()) == 0
    shop_revenue_minor = report["details"]["orders"]["revenue_minor"]
    if report["flash_sale_sold"]:  # the sale's checkout pays the flash shop through the ledger too
        assert by_kind["merchant"] > shop_revenue_minor
    else:
        assert by_kind["merchant"] == shop_revenue_minor


def test_flash_sale_is_null_with_a_note_or_never_oversold(report: dict[str, Any]) -> None:
    if report["flash_sale_units"] is None:
        assert report["flash_sale_sold"] is None and report["flash_sale_oversold"] is None
        assert any(n.startswith("flash_sale_") for n in report["notes"])
    else:
        assert report["flash_sale_oversold"] == 0
        assert report["flash_sale_units"] == 50
        # 150 buyers for 50 units, one each: the sale sells out, exactly
        assert report["flash_sale_sold"] == 50, report["details"]["flash_sale"]
        engine = report["details"]["flash_sale"]["engine"]
        assert (engine["initial"], engine["remaining"], engine["confirmed"]) == (50, 0, 50)


def test_same_seed_same_plan(report: dict[str, Any]) -> None:
    done = _simulate("--plan-only")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == report["plan"]
    other = subprocess.run(
        [sys.executable, "-m", "hexcity.simulate", *ARGS[:-4], "--seed", "2", *ARGS[-2:], "--plan-only"],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr[-3000:]
    assert json.loads(other.stdout) != report["plan"]


def test_plan_only_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "never.json"
    done = _simulate("--plan-only", "--report", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert not out.exists()
