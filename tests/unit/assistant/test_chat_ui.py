"""The chat's generative UI over HTTP: an answer about the asker's own order carries the validated
order-status card (never another customer's), a refund question adds the sandboxed refund form, and
``/components`` lists the permitted components with their JSON schemas."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient
from tests.conftest import require_service
from tests.e2e.conftest import serve_in_thread
from tests.unit.assistant.conftest import build_service
from tests.unit.assistant.test_http import client, headers  # noqa: F401 - fixture
from tests.unit.assistant.test_support_actions import (
    ORDER_AMOUNT,
    _refund_rows,
    build_real_platform,
    paid_order,
)

from hexcity.assistant import AssistantService, Viewer
from hexcity.assistant.domain.acl import CUSTOMER
from hexcity.assistant.domain.components import default_registry
from hexcity.assistant.http import build_assistant_router
from hexcity.assistant.mcp_server import app_html
from hexcity.assistant.ui import _route, component_catalog, order_card, refund_form
from hexcity.infra.auth import AuthSettings, Role, TokenService, install_auth

RIDER_SCOPES = frozenset({"orders:read", "payments:write", "trips:read"})


def test_answer_about_own_order_carries_the_validated_tracking_card(
    client: tuple[TestClient, TokenService],  # noqa: F811
) -> None:
    http, tokens = client
    response = http.post(
        "/assistant/v1/answers",
        json={"question": "Where is my order and why was it split?"},
        headers=headers(tokens, "alice", Role.RIDER),
    )
    body = response.json()
    assert [c["doc_id"] for c in body["citations"]] == ["split-shipments", "split-shipments"]
    assert [ui["component"] for ui in body["ui"]] == ["order-status-card@1.0.0"]
    card = body["ui"][0]
    assert card["sandbox"] is None
    assert card["props"]["order_id"] == "ORD-1042" and card["props"]["status"] == "shipped"
    assert card["props"]["estimated_delivery"] == "2026-11-26T14:00"
    assert sorted(card["props"]["shipments"]) == [
        "SHP-1: shipped, from Heidelberg Nord, split: no single warehouse had every item, "
        "ETA 2026-11-26T14:00",
        "SHP-2: processing, from Heidelberg Sued, split: no single warehouse had every item",
    ]
    assert "ORD-2000" not in response.text and "bob" not in response.text


def test_refund_question_adds_the_sandboxed_refund_form_for_own_order_only(
    client: tuple[TestClient, TokenService],  # noqa: F811
) -> None:
    http, tokens = client
    response = http.post(
        "/assistant/v1/answers",
        json={"question": "I want a refund for my order ORD-1042"},
        headers=headers(tokens, "alice", Role.RIDER),
    )
    ui = response.json()["ui"]
    assert [u["component"] for u in ui] == ["order-status-card@1.0.0", "refund-form@1.0.0"]
    assert ui[1]["sandbox"] == "allow-scripts"
    assert ui[1]["props"]["submit_url"] == "/assistant/v1/actions/refund"
    bob = http.post(
        "/assistant/v1/answers",
        json={"question": "I want a refund for order ORD-1042, where is it?"},
        headers=headers(tokens, "bob", Role.RIDER),
    )
    assert not [f for f in bob.json()["facts"] if "ORD-1042" in f or ("SHP-" in f and "SHP-9" not in f)]
    assert "Heidelberg Sued" not in bob.text and "SHP-1" not in bob.text  # alice's shipments
    assert all(u["props"]["order_id"] != "ORD-1042" for u in bob.json()["ui"])


def test_components_lists_what_the_caller_may_render_with_schemas(
    client: tuple[TestClient, TokenService],  # noqa: F811
) -> None:
    http, tokens = client
    rider = http.get("/assistant/v1/components", headers=headers(tokens, "alice", Role.RIDER)).json()
    keys = {item["key"]: item for item in rider["items"]}
    assert set(keys) == {"fare-breakdown@1.0.0", "order-status-card@1.0.0", "refund-form@1.0.0"}
    assert keys["refund-form@1.0.0"]["iframe_sandbox"] == "allow-scripts"
    assert keys["order-status-card@1.0.0"]["schema"]["additionalProperties"] is False
    driver = http.get("/assistant/v1/components", headers=headers(tokens, "dan", Role.DRIVER)).json()
    assert {item["key"] for item in driver["items"]} <= {"fare-breakdown@1.0.0"}
    assert http.get("/assistant/v1/components").status_code == 401


def test_cards_are_only_for_own_orders_and_need_the_permission(service: AssistantService) -> None:
    registry = default_registry()
    alice, bob = Viewer("alice", CUSTOMER), Viewer("bob", CUSTOMER)
    assert order_card(service, bob, RIDER_SCOPES, registry, "ORD-1042") is None
    assert refund_form(service, bob, RIDER_SCOPES, registry, "ORD-1042") is None
    assert order_card(service, alice, frozenset({"trips:read"}), registry, "ORD-1042") is None
    card = order_card(service, alice, RIDER_SCOPES, registry, "ORD-1042")
    assert card is not None and card["props"]["route"] == []
    assert [c["name"] for c in component_catalog(registry, {"trips:read"})] == ["fare-breakdown"]


def test_route_attribute_parses_or_gives_no_route() -> None:
    assert _route("42.5,1.52;42.51,1.53") == [(42.5, 1.52), (42.51, 1.53)]
    assert _route("") == []
    assert _route("42.5,1.52;oops") == []
    assert _route("95,1") == []


# -- the chat in real Chromium against the real endpoints ------------------------------------------

STATIC = Path(__file__).resolve().parents[3] / "src/hexcity/web/static"
CHROMIUM = os.environ.get("HEXCITY_CHROMIUM", "/usr/bin/chromium")
UI_TIMEOUT_MS = 30_000


def _chat_page_html() -> str:
    """The dashboard's own chat section, alone on a page with the dashboard's CSS and chat.js."""
    dashboard = (STATIC / "dashboard.html").read_text()
    start = dashboard.index('<section class="panel chat"')
    end = dashboard.index("</section>\n", dashboard.index('id="chat-article"')) + len("</section>")
    end = dashboard.index("</section>", end) + len("</section>")  # the chat panel's own end
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>hexcity support chat</title>'
        '<link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="/web/static/dashboard.css"></head><body><main>'
        f"{dashboard[start:end]}</main>"
        '<script src="/web/static/chat.js"></script></body></html>'
    )


@pytest.fixture(scope="module")
def chat_server(
    tmp_path_factory: pytest.TempPathFactory, graph_dir: Callable[[str, str], Path]
) -> Iterator[dict[str, Any]]:
    chromium_ok = Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is not None
    require_service("Chromium", chromium_ok, f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        require_service("Playwright", False, f"pip install playwright ({exc})")
    work = tmp_path_factory.mktemp("chat-ui")
    platform = build_real_platform(work / "platform.db", graph_dir("andorra", "car"))
    paid_order(platform, "alice", "ORD-1042")
    paid_order(platform, "bob", "ORD-2000")
    settings = AuthSettings(
        jwt_issuer="chat",
        jwt_audience="chat-api",
        jwt_secret=secrets.token_urlsafe(48),
        public_paths=[
            "/chat",
            "/web/v1/demo/customer-token",
            "/web/static/chat.js",
            "/web/static/dashboard.css",
        ],
    )
    tokens = TokenService.from_settings(settings)
    app = FastAPI()
    app.include_router(build_assistant_router(build_service(), actions=platform.actions))

    @app.get("/chat")
    async def page() -> HTMLResponse:
        return HTMLResponse(_chat_page_html())

    @app.get("/web/v1/demo/customer-token")
    async def customer_token() -> dict[str, str]:
        return {"token": tokens.issue("alice", Role.RIDER, ttl_s=600), "subject": "alice"}

    app.mount("/web/static", StaticFiles(directory=STATIC), name="static")
    install_auth(app, settings)
    try:
        with serve_in_thread(app, "chat-ui-uvicorn") as base:
            yield {"base": base, "platform": platform, "work": work}
    finally:
        platform.engine.dispose()


@pytest.fixture(scope="module")
def chat_page(chat_server: dict[str, Any]) -> Iterator[tuple[Any, list[str]]]:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        pg = browser.new_page(viewport={"width": 900, "height": 900})
        pg.on(
            "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
        )
        pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        pg.goto(f"{chat_server['base']}/chat")
        pg.wait_for_function("window.hexcityChat !== undefined", timeout=UI_TIMEOUT_MS)
        assert problems == []
        yield pg, problems
        browser.close()


def _ask_in_browser(page: Any, question: str) -> None:
    before = page.evaluate("window.hexcityChat.state.answers")
    page.locator("#chat-input").fill(question)
    page.locator("#chat-input").press("Enter")
    page.wait_for_function(f"window.hexcityChat.state.answers > {before}", timeout=UI_TIMEOUT_MS)


@pytest.mark.slow
def test_refund_form_submit_in_chromium_refunds_and_shows_the_refund(
    chat_page: tuple[Any, list[str]], chat_server: dict[str, Any]
) -> None:
    page, problems = chat_page
    platform = chat_server["platform"]
    _ask_in_browser(page, "I want a refund for my order ORD-1042")
    shown = page.locator("#chat-log .msg.support")
    last = shown.nth(shown.count() - 1)  # fixed: the outcome turns arrive below it
    iframe = last.locator("iframe[data-component=refund-form]")
    assert iframe.get_attribute("sandbox") == "allow-scripts"  # never allow-same-origin
    form = last.frame_locator("iframe[data-component=refund-form]")
    form.locator("#r option").nth(1).wait_for(state="attached", timeout=UI_TIMEOUT_MS)
    form.get_by_label("Reason").select_option("item damaged")
    form.get_by_label("I confirm this refund request").press("Space")
    answers = page.evaluate("window.hexcityChat.state.answers")
    form.get_by_role("button", name="Submit refund request").press("Enter")
    page.wait_for_function(f"window.hexcityChat.state.answers > {answers}", timeout=UI_TIMEOUT_MS)

    [refund] = _refund_rows(platform, "order:ORD-1042")
    assert (refund.kind, refund.amount_minor) == ("refund", ORDER_AMOUNT)
    mine = page.locator("#chat-log .msg.you").last.locator("p").all_inner_texts()
    assert mine == ["You", "Please refund order ORD-1042, reason: item damaged. I confirm."]
    turn = page.locator("#chat-log .msg.support").last
    assert turn.locator("p").nth(1).inner_text() == (
        f"Your refund {refund.id} of 25.00 EUR for order ORD-1042 is succeeded."
    )
    outcome = turn.locator("dl[data-outcome=refund] dd").all_inner_texts()
    assert outcome == [refund.id, "ORD-1042", "25.00 EUR", "succeeded"]

    # the same form submitted again: the same Idempotency-Key, so the same refund, not a second one
    answers = page.evaluate("window.hexcityChat.state.answers")
    form.get_by_role("button", name="Submit refund request").press("Enter")
    page.wait_for_function(f"window.hexcityChat.state.answers > {answers}", timeout=UI_TIMEOUT_MS)
    again = (
        page.locator("#chat-log .msg.support").last.locator("dl[data-outcome=refund] dd").all_inner_texts()
    )
    assert again[0] == refund.id
    assert len(_refund_rows(platform, "order:ORD-1042")) == 1

    # a message that does not come from the frame the page made is ignored
    page.evaluate(
        "window.postMessage({type: 'hexcity-action', action: 'request_refund', order_id: 'ORD-1042',"
        " reason: 'other', confirmed: true}, '*')"
    )
    page.wait_for_timeout(300)
    assert len(_refund_rows(platform, "order:ORD-1042")) == 1
    assert problems == []


@pytest.mark.slow
def test_chat_with_components_has_no_serious_accessibility_violations(
    chat_page: tuple[Any, list[str]], chat_server: dict[str, Any]
) -> None:
    page, _ = chat_page
    del chat_server
    if page.evaluate("window.hexcityChat.state.answers") == 0:
        _ask_in_browser(page, "Where is my order ORD-1042?")
    page.add_script_tag(path=str(STATIC / "vendor/axe-core/axe.min.js"))
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}));
        }"""
    )
    assert violations == []


@pytest.mark.slow
def test_mcp_app_documents_render_a_tool_result_in_a_sandboxed_frame(
    chat_page: tuple[Any, list[str]],
) -> None:
    """What an MCP Apps host does: the ``ui://`` document in a sandboxed iframe, the tool result
    posted as ``ui/notifications/tool-result``; the app renders the validated props as text, asks
    the host (``tools/call``) for the refund, and rejects props that do not match the schema."""
    registry = default_registry()
    card = order_card(build_service(), Viewer("alice", CUSTOMER), RIDER_SCOPES, registry, "ORD-1042")
    assert card is not None
    page = chat_page[0].context.browser.new_page()  # the chat's Chromium, a page of its own
    try:
        page.set_content('<!doctype html><html lang="en"><head><title>host</title></head><body></body>')
        host = """([doc, result]) => new Promise((resolve) => {
            window.fromApp = [];
            const f = document.createElement('iframe');
            f.setAttribute('sandbox', 'allow-scripts');
            f.title = 'app';
            window.addEventListener('message', (e) => {
                if (e.source !== f.contentWindow) return;
                window.fromApp.push(e.data);
                if (e.data.method === 'ui/initialize') {
                    f.contentWindow.postMessage({jsonrpc: '2.0', method: 'ui/notifications/tool-result',
                                                 params: result}, '*');
                    setTimeout(resolve, 300);
                }
            });
            f.srcdoc = doc;
            document.body.appendChild(f);
        })"""
        order_doc = app_html(registry.get("order-status-card"))
        page.evaluate(host, [order_doc, {"structuredContent": {"card": card}}])
        frame = page.frames[1]
        assert frame.locator("h1").inner_text() == "Order tracking card with shipments and a route map"
        facts = frame.locator("dd").all_inner_texts()
        assert "ORD-1042" in facts and "shipped" in facts
        assert frame.locator("ul[aria-label=shipments] li").count() == 2
        assert page.evaluate("window.fromApp[0].method") == "ui/initialize"

        bad = {"structuredContent": {"card": {**card, "props": {**card["props"], "evil": "<img>"}}}}
        page.evaluate("document.body.replaceChildren()")
        page.evaluate(host, [order_doc, bad])
        assert page.frames[-1].locator("main").inner_text() == "This card could not be shown."

        form = refund_form(
            build_service(), Viewer("alice", CUSTOMER), RIDER_SCOPES, registry, "ORD-1042", 2500
        )
        assert form is not None
        page.evaluate("document.body.replaceChildren()")
        page.evaluate(host, [app_html(registry.get("refund-form")), {"structuredContent": {"ui": form}}])
        app = page.frames[-1]
        app.get_by_label("Reason").select_option("arrived late")
        app.get_by_role("button", name="Request refund").press("Enter")
        assert app.locator("p[role=status]").inner_text() == "Please confirm the request first."
        app.get_by_label("I confirm this refund request").check()
        app.get_by_role("button", name="Request refund").press("Enter")
        page.wait_for_function("window.fromApp.some(m => m.method === 'tools/call')")
        call = page.evaluate("window.fromApp.find(m => m.method === 'tools/call').params")
        assert call == {
            "name": "request_refund",
            "arguments": {"order_id": "ORD-1042", "reason": "arrived late"},
        }
    finally:
        page.close()


@pytest.mark.slow
def test_fare_question_with_two_map_points_shows_the_fare_card_of_a_real_quote(
    chat_page: tuple[Any, list[str]],
) -> None:
    page, problems = chat_page
    # what the dashboard's map holds after two clicks: [lng, lat] points (Andorra la Vella → Escaldes)
    page.evaluate("window.hexcity = {state: {routePoints: [[1.5218, 42.5063], [1.5388, 42.5096]]}}")
    _ask_in_browser(page, "How much will this ride cost?")
    card = page.locator("#chat-log .msg.support").last.locator("[data-component=fare-breakdown]")
    assert card.count() == 1
    rows = dict(zip(card.locator("dt").all_inner_texts(), card.locator("dd").all_inner_texts(), strict=True))
    assert set(rows) == {"Base fare", "Surge", "Platform fee", "Total", "Valid for"}
    total_cents = round(float(rows["Total"]) * 100)
    assert total_cents >= 600 and rows["Valid for"] == "60 s"  # the standard minimum at least
    assert round(float(rows["Platform fee"]) * 100) == total_cents * 1500 // 10_000
    assert (
        card.get_attribute("aria-label") == f"Your standard ride costs {total_cents / 100:.2f} (surge 1.0x)."
    )
    page.evaluate("delete window.hexcity")
    assert problems == []
