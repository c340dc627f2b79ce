"""The shipped page and its script agree: every element the script looks up exists, the flash-sale
console is labelled, the map layers the browser tests query are defined, and the page's own
buffers (active routes, route lookups, warehouses, flash history) are bounded by constants."""

from __future__ import annotations

import re
from collections import Counter
from importlib import resources


def _asset(name: str) -> str:
    return (resources.files("hexcity.web") / "static" / name).read_text(encoding="utf-8")


def test_every_element_the_script_looks_up_is_on_the_page_once() -> None:
    html, js = _asset("dashboard.html"), _asset("dashboard.js")
    wanted = set(re.findall(r'\bel\("([\w-]+)"\)', js))
    assert {"flash", "flash-state", "flash-stock", "flash-stock-text", "flash-figures"} <= wanted
    assert {"routes-count", "warehouse-note"} <= wanted
    ids = Counter(re.findall(r'\bid="([\w-]+)"', html))
    assert sorted(i for i in wanted if ids[i] != 1) == []


def test_flash_sale_console_is_labelled_and_announces_its_state() -> None:
    html = _asset("dashboard.html")
    assert '<section class="panel flash" id="flash" aria-labelledby="h-flash"' in html
    assert '<h2 id="h-flash">Flash sale</h2>' in html
    assert '<p id="flash-state" class="flash-state" role="status" aria-live="polite">' in html
    assert '<label for="flash-stock">Stock left</label>' in html
    assert re.search(r'<progress id="flash-stock"[^>]*aria-describedby="flash-stock-text"', html)


def test_map_layers_and_legend_for_routes_and_warehouses() -> None:
    html, js = _asset("dashboard.html"), _asset("dashboard.js")
    layers = set(re.findall(r'\bid: "([\w-]+)", type:', js))
    assert {"active-routes-trip", "active-routes-pickup", "warehouses", "drivers", "roads"} <= layers
    for text in ("driver → pickup", "rider on board → drop-off", "warehouse"):
        assert f"</i>{text}</span>" in html


def test_page_buffers_are_bounded() -> None:
    js = _asset("dashboard.js")
    limits = {name: int(value) for name, value in re.findall(r"const (MAX_[A-Z_]+) = (\d+);", js)}
    assert limits["MAX_ACTIVE_ROUTES"] == 150
    assert limits["MAX_ROUTE_QUEUE"] == 40
    assert limits["MAX_ROUTE_FETCHES"] == 2
    assert limits["MAX_WAREHOUSES"] == 100
    assert limits["MAX_FLASH_HISTORY"] == 200
    # each bound is used where the buffer grows
    assert "STATE.activeRoutes.size + STATE.routePending.size >= MAX_ACTIVE_ROUTES" in js
    assert "STATE.routeQueue.length >= MAX_ROUTE_QUEUE" in js
    assert "STATE.routeFetching < MAX_ROUTE_FETCHES" in js
    assert "STATE.flashLeft.length > MAX_FLASH_HISTORY" in js


def test_delivery_routes_are_drawn_from_the_plans_endpoint_bounded_and_in_the_legend() -> None:
    html, js = _asset("dashboard.html"), _asset("dashboard.js")
    found = re.findall(r'\bid: "([\w-]+)", type: "(\w+)", source: "([\w-]+)"', js)
    layers = {layer: (kind, source) for layer, kind, source in found}
    assert layers["delivery-routes"] == ("line", "deliveries")
    assert layers["delivery-stops"] == ("circle", "delivery-stops")
    assert '<span><i class="ln delivery"></i>delivery routes</span>' in html
    assert '<span id="deliveries-count">' in html
    limits = {name: int(value) for name, value in re.findall(r"const ([A-Z_]+) = (\d+);", js)}
    assert limits["MAX_DELIVERY_ROUTES"] == 200  # the endpoint's page limit
    assert limits["DELIVERY_POLL_MS"] == 5000
    assert '"/fulfillment/v1/plans?status=active&limit=" + MAX_DELIVERY_ROUTES' in js
    assert "body.features.slice(0, MAX_DELIVERY_ROUTES)" in js
    # a route with nothing left to deliver, or without geometry, is not drawn; only planned stops are
    assert "if (!f.geometry || p.stops_left < 1) continue;" in js
    assert 'if (st.status !== "planned") continue;' in js


def test_cell_inspection_shows_supply_demand_and_surge_in_a_popup_and_the_panel() -> None:
    html, js = _asset("dashboard.html"), _asset("dashboard.js")
    assert '<div id="cell-result" class="result" role="status" aria-live="polite"></div>' in html
    assert '<input type="radio" name="mode" value="cell">' in html
    for label in ("Supply (drivers available)", "Demand (riders waiting)", "Surge"):
        assert f'["{label}", ' in js
    assert "new maplibregl.Popup(" in js and ".setDOMContent(box)" in js  # text nodes, never HTML
    assert ".setHTML(" not in js and "innerHTML" not in js
    # the keyboard reaches every map action: Enter on the focused map picks its centre
    assert 'ev.key !== "Enter"' in js and "pick([c.lng, c.lat]);" in js
    assert "press Enter for the map's centre" in html
