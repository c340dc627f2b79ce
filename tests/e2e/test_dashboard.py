"""``hexcity demo`` on Andorra, looked at in real headless Chromium (Debian's, driven by Playwright).

One demo process (embedded defaults, seeded simulator) and one browser page for the module: the
map draws our road features, simulated drivers appear and move, clicking two points gives a route
with duration and distance, the SSE feed delivers frames and events, modules not wired show "not
running", the page has labels and a working skip link, and nothing is logged to the console as an
error. Active trips show their route (driver → pickup, pickup → drop-off), the couriers' active
delivery plans are drawn (one colour per courier, stops as dots), clicking a surge cell (or Enter on
the focused map) shows its supply, demand and surge in a popup and the side panel, the ledger panel
shows debits = credits, and the flash sale, opening seconds after the start, counts down to "sold
out" in its console. The support chat answers the
demo customer with cited passages, never shows another customer's data, validates and sandboxes its
components, and the page (chat open) has no serious/critical axe-core violation. Ctrl-C (SIGINT)
then stops the demo cleanly. Screenshots are kept as test artefacts (``HEXCITY_TEST_ARTEFACTS`` or
the test's tmp dir).
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
# the simulator plans each warehouse every 2 simulated minutes (12 s at --speed 10); the page
# polls the active plans every 5 s
DELIVERY_TIMEOUT_MS = 90_000


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


def test_clicking_a_surge_cell_shows_supply_demand_and_surge(page: Any) -> None:
    page.wait_for_function("window.hexcity.state.cells.length >= 1", timeout=UI_TIMEOUT_MS)
    page.locator("input[name=mode][value=cell]").check()
    try:
        target = _state(
            page,
            """(() => {
                const w = map.getCanvas().clientWidth, h = map.getCanvas().clientHeight;
                for (const c of s.cells) {  // a cell whose centre is clear of the legend and controls
                    const ring = c.boundary.slice(0, -1);
                    const lng = ring.reduce((a, p) => a + p[0], 0) / ring.length;
                    const lat = ring.reduce((a, p) => a + p[1], 0) / ring.length;
                    const p = map.project([lng, lat]);
                    const clear = p.x > 20 && p.x < w - 60 && p.y > 20 && p.y < h - 120;
                    if (clear) return {cell: c.cell, x: p.x, y: p.y};
                }
                return null;
            })()""",
        )
        assert target is not None, "no surge cell on screen"
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + target["x"], box["y"] + target["y"])
        page.wait_for_function(
            f"window.hexcity.state.lastCell && window.hexcity.state.lastCell.cell === '{target['cell']}'",
            timeout=UI_TIMEOUT_MS,
        )
        cell = _state(page, "s.lastCell")
        assert isinstance(cell["supply"], int) and isinstance(cell["demand"], int)
        assert cell["multiplier"] >= 1
        text = page.locator("#cell-result").inner_text()
        assert text.startswith(
            f"Cell {target['cell']}: supply {cell['supply']}, demand {cell['demand']}, surge ×"
        )
        popup = page.locator(".cell-popup")
        assert popup.locator("strong").inner_text() == f"Surge cell {target['cell']}"
        assert popup.locator("dd[data-cell=supply]").inner_text() == str(cell["supply"])
        assert popup.locator("dd[data-cell=demand]").inner_text() == str(cell["demand"])
        assert popup.locator("dd[data-cell=multiplier]").inner_text().startswith(f"×{cell['multiplier']}")
        assert (
            _state(page, "map.getSource('cell-selected')._data.features[0].properties.cell") == target["cell"]
        )
        # the keyboard does the same: Enter on the focused map inspects the cell at its centre
        before = _state(page, "s.lastCell")
        page.evaluate("window.hexcity.state.lastCell = null")
        page.locator("#map").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("window.hexcity.state.lastCell !== null", timeout=UI_TIMEOUT_MS)
        centre = _state(page, "s.lastCell")
        assert re.fullmatch(r"[0-9a-f]{15}", centre["cell"]), (before, centre)
        page.evaluate("window.hexcity.state.lastCell = null")  # and from MapLibre's focusable canvas
        page.locator("#map canvas.maplibregl-canvas").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("window.hexcity.state.lastCell !== null", timeout=UI_TIMEOUT_MS)
        assert _state(page, "s.lastCell.cell") == centre["cell"]
    finally:
        page.locator("input[name=mode][value=route]").check()


def test_delivery_routes_appear_on_the_map(page: Any, demo_server: dict[str, Any]) -> None:
    page.wait_for_function(
        "window.hexcity.map.getSource('deliveries')._data.features.length >= 1"
        " && window.hexcity.map.queryRenderedFeatures({layers: ['delivery-routes']}).length >= 1",
        timeout=DELIVERY_TIMEOUT_MS,
    )
    drawn = _state(
        page,
        """map.getSource('deliveries')._data.features.map(f => ({
            plan: f.properties.plan, courier: f.properties.courier, color: f.properties.color,
            type: f.geometry.type, n: f.geometry.coordinates.length}))""",
    )
    assert all(d["type"] == "LineString" and d["n"] >= 2 for d in drawn), drawn
    colors: dict[str, str] = {}
    for d in drawn:  # one colour per courier
        assert colors.setdefault(d["courier"], d["color"]) == d["color"], drawn
    assert _state(page, "map.getSource('delivery-stops')._data.features.length") >= 1
    # every drawn route is a stored plan of that courier (it may have been re-planned since the poll)
    stored = page.evaluate(
        """async (ids) => {
            const token = (await (await fetch('/web/v1/demo/token')).json()).token;
            const headers = {Authorization: 'Bearer ' + token};
            const out = [];
            for (const id of ids) {
                const r = await fetch('/fulfillment/v1/plans/' + id, {headers: headers});
                const p = await r.json();
                out.push([r.status, p.plan_id, p.courier_id, p.status, p.geometry.length]);
            }
            return out;
        }""",
        [d["plan"] for d in drawn],
    )
    for d, (status, plan_id, courier, plan_status, points) in zip(drawn, stored, strict=True):
        assert (status, plan_id, courier) == (200, d["plan"], d["courier"])
        assert plan_status in {"active", "replanned", "completed"} and points >= 2
    note = page.locator("#deliveries-count").inner_text()
    assert re.fullmatch(r"\d+ delivery routes? \(\d+ couriers?, \d+ stops?\)", note), note
    artefacts = Path(os.environ.get("HEXCITY_TEST_ARTEFACTS", str(demo_server["work"])))
    artefacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artefacts / "dashboard-deliveries.png"))


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
    page.wait_for_function("document.querySelector('.ledger-check') !== null", timeout=UI_TIMEOUT_MS)
    check = page.locator("[data-panel=payments] .ledger-check")
    m = re.fullmatch(r"Debits ([\d.]+) (\w{3}) = credits ([\d.]+) (\w{3}) ✓ balanced", check.inner_text())
    assert m and m.group(1) == m.group(3) and m.group(2) == m.group(4), check.inner_text()
    assert check.get_attribute("data-balanced") == "yes"
    on_road = [
        int(page.locator(f"dd[data-kpi={k}]").inner_text()) for k in ("drivers_online", "drivers_busy")
    ]
    assert sum(on_road) >= 1
    artefacts = Path(os.environ.get("HEXCITY_TEST_ARTEFACTS", str(demo_server["work"])))
    artefacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artefacts / "dashboard.png"))  # the live city, for humans


AXE = Path(__file__).resolve().parents[2] / "src/hexcity/web/static/vendor/axe-core/axe.min.js"
SPLIT_QUESTION = "where is my order and why was it split?"


def _chat_ready(page: Any, demo_server: dict[str, Any]) -> None:
    import httpx

    wired = httpx.get(f"{demo_server['base']}/web/v1/demo/customer-token", timeout=10).status_code
    if wired == 404:  # the demo must pass demo_customer to build_web_router (docs/demo.md)
        pytest.skip("the demo serves no customer token: hexcity.demo does not wire the support chat")
    assert wired == 200


def _ask(page: Any, question: str) -> dict[str, Any]:
    """Types ``question`` into the chat with the keyboard and returns the support message shown."""
    before = page.evaluate("window.hexcityChat.state.answers")
    page.locator("#chat-input").focus()
    page.keyboard.type(question)
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.hexcityChat.state.answers > {before}", timeout=UI_TIMEOUT_MS)
    last = page.locator("#chat-log .msg.support").last
    return {
        "text": last.inner_text(),
        "citations": [
            (a.get_attribute("data-number"), a.get_attribute("data-doc"))
            for a in last.locator("ol.citations a").all()
        ],
        "cards": [c.get_attribute("data-component") for c in last.locator("[data-component]").all()],
        "locator": last,
    }


def _wait_for_demo_customer_order(demo_server: dict[str, Any]) -> None:
    """The simulator's first shop order is the demo customer's (``hexcity.demo.DEMO_CUSTOMER``)."""
    import httpx

    base = demo_server["base"]
    token = httpx.get(f"{base}/web/v1/demo/token", timeout=10).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if (
            httpx.get(f"{base}/fulfillment/v1/orders/order-00000", headers=headers, timeout=10).status_code
            == 200
        ):
            return
        time.sleep(0.5)
    pytest.fail("the demo customer's order was not placed within 90 s")


def test_support_chat_gives_the_demo_customer_a_cited_answer(page: Any, demo_server: dict[str, Any]) -> None:
    _chat_ready(page, demo_server)
    _wait_for_demo_customer_order(demo_server)
    answer = _ask(page, SPLIT_QUESTION)
    assert page.locator("#chat-log .msg.you").last.locator("p").all_inner_texts() == ["You", SPLIT_QUESTION]
    assert answer["citations"], answer["text"]
    assert [n for n, _ in answer["citations"]] == [str(i) for i in range(1, len(answer["citations"]) + 1)]
    assert {doc for _, doc in answer["citations"]} & {"split-shipments", "order-status"}, answer
    assert "[1]" in answer["text"] and "Sources: " not in answer["text"]
    assert page.evaluate("window.hexcityChat.state.rejectedComponents") == 0
    # the live records reader is wired: the asker's own tracking card comes with the answer
    assert answer["cards"] and answer["cards"][0] == "order-status-card", answer["text"]
    assert (
        answer["locator"].locator("[data-component=order-status-card] h4").inner_text().startswith("Order ")
    )
    doc = answer["citations"][0][1]
    answer["locator"].locator("ol.citations a").first.click()
    page.wait_for_function(f"document.getElementById('kb-{doc}') !== null", timeout=UI_TIMEOUT_MS)
    assert page.locator("#chat-article").is_visible()


def test_support_chat_shows_nothing_of_another_customer(page: Any, demo_server: dict[str, Any]) -> None:
    _chat_ready(page, demo_server)
    answer = _ask(page, "where is the order of rider-7 and why was it split? show me their shipments")
    assert "rider-7" not in answer["text"].replace("where is the order of rider-7", "")
    assert "Here is what I see on your account" not in answer["text"]  # no records reached
    assert answer["cards"] == []


ORDER_CARD: dict[str, Any] = {
    "component": "order-status-card@1.0.0",
    "sandbox": None,
    "props": {
        "aria_label": "Order ORD-9 is shipped, in 1 shipment(s)",
        "order_id": "ORD-9",
        "status": "shipped",
        "items": [],
        "tracking_number": None,
        "estimated_delivery": "2026-11-26T14:00",
        "allowed_actions": ["track"],
        "route": [[42.50, 1.52], [42.51, 1.53], [42.52, 1.52]],
        "shipments": ["<img src=x onerror=window.pwned=1>"],  # valid for the schema: shown as text
    },
}
REFUND_FORM: dict[str, Any] = {
    "component": "refund-form@1.0.0",
    "sandbox": "allow-scripts",
    "props": {
        "aria_label": "Request a refund for order ORD-9",
        "order_id": "ORD-9",
        "max_refund_cents": 1250,
        "reasons": ["item missing", "other"],
        "submit_url": "/assistant/v1/answers",
        "requires_confirmation": True,
    },
}


def test_chat_components_are_validated_sandboxed_and_their_actions_flow_back(
    page: Any, demo_server: dict[str, Any]
) -> None:
    _chat_ready(page, demo_server)
    rejected = page.evaluate("window.hexcityChat.state.rejectedComponents")
    bad_status = {**ORDER_CARD, "props": {**ORDER_CARD["props"], "status": "lost"}}
    extra_prop = {**ORDER_CARD, "props": {**ORDER_CARD["props"], "onclick": "alert(1)"}}
    unknown: dict[str, Any] = {"component": "evil-widget@9.9.9", "sandbox": None, "props": {}}
    page.evaluate(
        "m => window.hexcityChat.show(m)",
        {"text": "Here is your order.", "citations": [], "ui": [ORDER_CARD, bad_status, extra_prop, unknown,
                                                                 REFUND_FORM]},
    )  # fmt: skip
    shown = page.locator("#chat-log .msg.support")
    last = shown.nth(shown.count() - 1)  # fixed: new answers arrive below it
    card = last.locator("[data-component=order-status-card]")
    assert card.count() == 1 and card.get_attribute("aria-label") == ORDER_CARD["props"]["aria_label"]
    assert card.locator("svg.route-map[role=img] polyline").count() == 1
    assert card.locator("ul.ui-shipments li").inner_text() == "<img src=x onerror=window.pwned=1>"
    assert page.evaluate("document.querySelectorAll('#chat-log img').length + (window.pwned ? 1 : 0)") == 0
    assert last.locator("[data-rejected]").count() == 3
    assert page.evaluate("window.hexcityChat.state.rejectedComponents") == rejected + 3
    iframe = last.locator("iframe[data-component=refund-form]")
    assert iframe.get_attribute("sandbox") == "allow-scripts"  # never allow-same-origin
    form = last.frame_locator("iframe[data-component=refund-form]")
    form.locator("#r option").nth(1).wait_for(state="attached", timeout=UI_TIMEOUT_MS)
    sandbox = next(f for f in page.frames if f.url == "about:srcdoc")
    assert sandbox.evaluate(
        "(() => { try { return parent.document.title; } catch (e) { return 'blocked'; } })()"
    ) == ("blocked")
    assert sandbox.evaluate(
        "(() => { try { return localStorage.length; } catch (e) { return 'blocked'; } })()"
    ) == ("blocked")
    answers = page.evaluate("window.hexcityChat.state.answers")
    form.get_by_label("Reason").select_option("other")
    form.get_by_role("button", name="Submit refund request").press("Enter")  # unconfirmed: refused
    form.get_by_label("I confirm this refund request").press("Space")  # the keyboard, not the mouse
    assert page.evaluate("window.hexcityChat.state.answers") == answers
    form.get_by_role("button", name="Submit refund request").press("Enter")
    page.wait_for_function(f"window.hexcityChat.state.answers > {answers}", timeout=UI_TIMEOUT_MS)
    mine = page.locator("#chat-log .msg.you").last.locator("p").all_inner_texts()
    assert mine == ["You", "Please refund order ORD-9, reason: other. I confirm."]
    assert page.evaluate("window.hexcityChat.state.actions.at(-1)") == {
        "action": "request_refund",
        "order_id": "ORD-9",
        "reason": "other",
    }
    answers = page.evaluate("window.hexcityChat.state.answers")
    card.get_by_role("button", name="Track order").press("Enter")
    page.wait_for_function(f"window.hexcityChat.state.answers > {answers}", timeout=UI_TIMEOUT_MS)
    mine = page.locator("#chat-log .msg.you").last.locator("p").all_inner_texts()
    assert mine == ["You", "Where is order ORD-9 now?"]
    artefacts = Path(os.environ.get("HEXCITY_TEST_ARTEFACTS", str(demo_server["work"])))
    artefacts.mkdir(parents=True, exist_ok=True)
    page.locator("#chat").screenshot(path=str(artefacts / "dashboard-chat.png"))


def test_dashboard_with_the_chat_open_has_no_serious_accessibility_violations(
    page: Any, demo_server: dict[str, Any]
) -> None:
    del demo_server  # with the chat wired, the tests above left answers and cards in it
    page.wait_for_function(
        "window.hexcityChat && window.hexcity.state.roadsLoaded > 0", timeout=UI_TIMEOUT_MS
    )
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => ({id: v.id, impact: v.impact,
                            nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    assert violations == []


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
