"""``hexcity demo`` on Andorra, looked at in real headless Chromium (Debian's, driven by Playwright).

One demo process (embedded defaults, seeded simulator) and one browser page for the module: the
map draws our road features, simulated drivers appear and move, clicking two points gives a route
with duration and distance, the SSE feed delivers frames and events, modules not wired show "not
running", the page has labels and a working skip link, and nothing is logged to the console as an
error. Active trips show their route (driver → pickup, pickup → drop-off) and the flash sale, opening
seconds after the start, counts down to "sold out" in its console. Ctrl-C (SIGINT) then stops the
demo cleanly. Screenshots are kept as test artefacts (``HEXCITY_TEST_ARTEFACTS`` or the test's tmp dir).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service
from tests.e2e.conftest import free_port, start_process, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = os.environ.get("HEXCITY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
UI_TIMEOUT_MS = 30_000
# the sale opens 90 simulated s (9 s at --speed 10) after start: after the page has connected, so
# the page sees the whole countdown; the demo's sale has 50 units and 150 buyers
FLASH_MINUTE = 1.5
FLASH_UNITS = 50
ROUTE_LAYERS = "['active-routes-trip', 'active-routes-pickup']"


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    chromium_ok = Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is not None
    require_service("Chromium", chromium_ok, f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        require_service("Playwright", False, f"pip install playwright ({exc})")
    work = tmp_path_factory.mktemp("demo-e2e")
    port = free_port()
    env = {**os.environ, "HEXCITY_ROUTING_CACHE_DIR": str(work / "graphs")}
    cmd = [
        sys.executable, "-m", "hexcity.demo", "--map", "andorra", "--port", str(port), "--seed", "3",
        "--speed", "10", "--drivers", "15", "--riders-per-hour", "400", "--data-dir", str(work / "var"),
        "--flash-minute", str(FLASH_MINUTE),
    ]  # fmt: skip
    log_path = work / "demo.log"
    proc = start_process(cmd, env, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, log_path)
        yield {"base": base, "proc": proc, "log": log_path, "work": work}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def console_problems() -> list[str]:
    """Console errors and uncaught page errors of the dashboard page (filled by ``page``)."""
    return []


@pytest.fixture(scope="module")
def page(demo_server: dict[str, Any], console_problems: list[str]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1366, "height": 768})
        problems = console_problems
        pg.on(
            "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
        )
        pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        pg.goto(f"{demo_server['base']}/dashboard")
        yield pg
        browser.close()


def _state(page: Any, expr: str) -> Any:
    return page.evaluate(
        f"(() => {{ const s = window.hexcity.state; const map = window.hexcity.map; return {expr}; }})()"
    )


def test_map_renders_road_features_from_our_graph(page: Any) -> None:
    page.wait_for_function("window.hexcity && window.hexcity.state.roadsLoaded > 1000", timeout=UI_TIMEOUT_MS)
    page.wait_for_function(
        "window.hexcity.map.loaded()"
        " && window.hexcity.map.queryRenderedFeatures({layers: ['roads']}).length > 500",
        timeout=UI_TIMEOUT_MS,
    )
    assert _state(page, "map.getCanvas().width") > 0


def test_drivers_appear_and_move(page: Any) -> None:
    page.wait_for_function("window.hexcity.state.drivers.size >= 10", timeout=UI_TIMEOUT_MS)
    page.wait_for_function(
        "window.hexcity.map.queryRenderedFeatures({layers: ['drivers']}).length >= 10", timeout=UI_TIMEOUT_MS
    )
    before = {d[0]: (d[1], d[2]) for d in _state(page, "[...s.drivers.values()]")}
    deadline = time.monotonic() + 60
    moved: list[str] = []
    while time.monotonic() < deadline and not moved:
        time.sleep(1.0)
        now = {d[0]: (d[1], d[2]) for d in _state(page, "[...s.drivers.values()]")}
        moved = [i for i, p in now.items() if i in before and p != before[i]]
    assert moved, "no driver moved within 60 s"
    assert _state(page, "[...s.drivers.values()].every(d => d[3] === 'online' || d[3] === 'busy')")


def test_active_trip_routes_appear_on_the_map(page: Any) -> None:
    page.wait_for_function(
        f"window.hexcity.map.queryRenderedFeatures({{layers: {ROUTE_LAYERS}}}).length >= 1",
        timeout=UI_TIMEOUT_MS,
    )
    routes = _state(
        page,
        """[...s.activeRoutes.entries()].filter(([id, r]) => r.geometry).map(([id, r]) => ({
            id: id, phase: r.phase, n: r.geometry.coordinates.length,
            status: s.trips.has(id) ? s.trips.get(id).status : null}))""",
    )
    assert routes, "a route is rendered but none is kept in the page state"
    for r in routes:  # every drawn route belongs to a live trip in the matching phase
        assert r["n"] >= 2
        expected = {"trip": {"in_trip"}, "arriving": {"matched", "driver_arriving"}}[r["phase"]]
        assert r["status"] in expected, r
    assert _state(page, "s.activeRoutes.size + s.routePending.size") <= 150
    assert re.fullmatch(r"\d+ active routes?", page.locator("#routes-count").inner_text())


def test_warehouses_appear_on_the_map(page: Any) -> None:
    page.wait_for_function("window.hexcity.state.warehouses.length >= 1", timeout=10_000)
    assert _state(page, "map.queryRenderedFeatures({layers: ['warehouses']}).length") >= 1


def test_clicking_two_points_shows_a_route_with_duration_and_distance(page: Any) -> None:
    # two road vertices on screen: the first and the last vertex of the longest rendered road
    points = _state(
        page,
        """(() => {
            const fs = map.queryRenderedFeatures({layers: ['roads']});
            const coords = fs.map(f => f.geometry.coordinates).filter(c => typeof c[0][0] === 'number');
            coords.sort((a, b) => b.length - a.length);
            const line = coords[0];
            return [map.project(line[0]), map.project(line[line.length - 1])].map(p => [p.x, p.y]);
        })()""",
    )
    box = page.locator("#map").bounding_box()
    for x, y in points:
        page.mouse.click(box["x"] + x, box["y"] + y)
    result = page.locator("#route-result")
    page.wait_for_function("window.hexcity.state.lastRoute && window.hexcity.state.lastRoute.duration_s > 0")
    assert re.fullmatch(r"Duration (\d+ min )?\d+ s · Distance [\d.]+ k?m", result.inner_text())
    route = _state(page, "s.lastRoute")
    assert route["distance_m"] > 0
    assert _state(page, "map.getSource('route')._data.features.length") == 1


def test_flash_sale_panel_counts_down_and_sells_out(page: Any, demo_server: dict[str, Any]) -> None:
    page.wait_for_function("window.hexcity.state.flashSoldOut", timeout=45_000)
    left = _state(page, "s.flashLeft")
    assert left[0] == FLASH_UNITS, f"the page connected after the sale opened: {left}"
    assert left[-1] == 0
    assert all(a > b for a, b in pairwise(left)), left  # only ever down
    assert len(left) >= 3, f"no stock level between full and sold out was shown: {left}"
    assert page.locator("#flash-state").inner_text() == f"SOLD OUT: all {FLASH_UNITS} units sold"
    assert page.locator("#flash").get_attribute("data-state") == "sold_out"
    assert page.locator("#flash-stock").get_attribute("aria-valuetext") == f"0 of {FLASH_UNITS} units left"
    assert _state(page, "document.getElementById('flash-stock').value") == 0
    assert page.locator("dd[data-flash=left]").inner_text() == "0"
    assert page.locator("dd[data-flash=sold]").inner_text() == str(FLASH_UNITS)
    assert page.locator("dd[data-flash=oversold]").inner_text() == "0"
    assert page.locator("#flash-state").get_attribute("role") == "status"
    assert page.locator("label[for=flash-stock]").inner_text() == "Stock left"
    artefacts = Path(os.environ.get("HEXCITY_TEST_ARTEFACTS", str(demo_server["work"])))
    artefacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artefacts / "dashboard-flash-sold-out.png"))


def test_live_feed_delivers_frames_events_and_module_states(page: Any, demo_server: dict[str, Any]) -> None:
    page.wait_for_function("window.hexcity.state.framesReceived >= 5", timeout=UI_TIMEOUT_MS)
    page.wait_for_function("window.hexcity.state.eventsReceived >= 3", timeout=UI_TIMEOUT_MS)
    assert page.locator("#events li").count() >= 3
    assert page.locator("#conn").inner_text() == "live"
    states = {
        el.get_attribute("data-panel"): el.get_attribute("data-state")
        for el in page.locator("#panels .module").all()
    }
    assert states == {  # every module is wired into the demo, and the simulator drives them all
        "dispatch": "running",
        "fulfillment": "running",
        "commerce": "running",
        "payments": "running",
        "simulator": "running",
    }
    assert page.locator("[data-panel=fulfillment] .badge").inner_text() == "running"
    on_road = [
        int(page.locator(f"dd[data-kpi={k}]").inner_text()) for k in ("drivers_online", "drivers_busy")
    ]
    assert sum(on_road) >= 1
    artefacts = Path(os.environ.get("HEXCITY_TEST_ARTEFACTS", str(demo_server["work"])))
    artefacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artefacts / "dashboard.png"))  # the live city, for humans


def test_page_is_labelled_and_keyboard_reachable(page: Any) -> None:
    unlabeled = page.evaluate(
        "[...document.querySelectorAll('input, select, textarea')]"
        ".filter(i => i.labels.length === 0 && !i.getAttribute('aria-label')).length"
    )
    assert unlabeled == 0
    assert page.locator("#map").get_attribute("aria-label")
    assert page.locator("canvas#kpi-chart").get_attribute("aria-label")
    unnamed_buttons = page.evaluate(
        "[...document.querySelectorAll('button')]"
        ".filter(b => !(b.innerText.trim() || b.getAttribute('aria-label') || b.title)).length"
    )
    assert unnamed_buttons == 0  # ours have text; MapLibre's zoom buttons have aria-label
    fresh = page.context.browser.new_page()  # focus order from the top of a newly opened page
    try:
        fresh.goto(page.url)
        fresh.keyboard.press("Tab")
        assert fresh.evaluate("document.activeElement.className") == "skip"
        assert fresh.evaluate("document.activeElement.innerText") == "Skip to the panels"
        fresh.keyboard.press("Enter")
        assert fresh.evaluate("document.activeElement.id") == "sidebar"
    finally:
        fresh.close()


def test_no_console_errors(page: Any, console_problems: list[str]) -> None:
    del page
    assert console_problems == []


def test_ctrl_c_stops_the_demo_cleanly(demo_server: dict[str, Any], page: Any) -> None:
    del page  # the browser tests ran first
    proc: subprocess.Popen[bytes] = demo_server["proc"]
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    log = demo_server["log"].read_text()
    assert "stopping: simulator, live streams, server" in log
    assert re.search(r"stopped: \d+ trips requested, \d+ completed", log)
    assert "Traceback" not in log
