"""The support chat on the dashboard: the demo customer's token (demo mode, loopback only), the
panel's markup and the script's safety rules (no innerHTML, sandbox without allow-same-origin),
and the vendored axe-core with its licence."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any, cast

from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.unit.web.test_http import SECRET, FakeRouting, make_app

from hexcity.infra.auth import AuthSettings, Role, TokenService
from hexcity.infra.http import json_response
from hexcity.kernel import HexcityError
from hexcity.routing import RoutingService
from hexcity.web import DEMO_CUSTOMER_TOKEN_PATH, build_web_router, static_files, web_public_paths


def _asset(name: str) -> str:
    return (resources.files("hexcity.web") / "static" / name).read_text(encoding="utf-8")


def _customer_app(subject: str | None) -> tuple[FastAPI, TokenService]:
    app, feed, tokens = make_app(None)
    if subject is None:
        return app, tokens
    auth = AuthSettings(jwt_secret=SECRET, demo_mode=True)
    minted = TokenService.from_settings(auth)
    app = FastAPI()
    mint = (subject, lambda: minted.issue(subject, Role.RIDER, ttl_s=600, demo=True))
    app.include_router(build_web_router(cast(RoutingService, FakeRouting()), feed, demo_customer=mint))

    @app.exception_handler(HexcityError)
    async def error(_: Any, exc: HexcityError) -> Any:
        return json_response({"code": exc.code, "message": exc.message}, exc.status)

    return app, minted


def test_customer_token_is_a_rider_token_for_loopback_callers_in_demo_mode_only() -> None:
    app, tokens = _customer_app("demo-customer")
    body = TestClient(app, client=("127.0.0.1", 5000)).get(DEMO_CUSTOMER_TOKEN_PATH).json()
    assert (body["subject"], body["expires_in_s"]) == ("demo-customer", 3600)
    principal = tokens.verify(body["token"])
    assert (principal.subject, principal.role, principal.demo) == ("demo-customer", Role.RIDER, True)
    remote = TestClient(app, client=("10.0.0.7", 5000)).get(DEMO_CUSTOMER_TOKEN_PATH)
    assert (remote.status_code, remote.json()["code"]) == (403, "Forbidden")
    not_demo, _ = _customer_app(None)
    assert TestClient(not_demo, client=("127.0.0.1", 5000)).get(DEMO_CUSTOMER_TOKEN_PATH).status_code == 404
    assert DEMO_CUSTOMER_TOKEN_PATH in web_public_paths()


def test_chat_panel_is_labelled_and_its_script_is_shipped() -> None:
    html = _asset("dashboard.html")
    assert '<label for="chat-input">Your question</label>' in html
    assert re.search(r'<div id="chat-log"[^>]*role="log"[^>]*aria-live="polite"', html)
    assert '<section class="panel chat" id="chat" aria-labelledby="h-chat">' in html
    assert html.index("dashboard.js") < html.index("/web/static/chat.js")
    js = _asset("chat.js")
    wanted = set(re.findall(r'\bel\("([\w-]+)"\)', js))
    ids = re.findall(r'\bid="([\w-]+)"', html)
    assert wanted == {"chat-who", "chat-log", "chat-form", "chat-input", "chat-status", "chat-article"}
    assert sorted(i for i in wanted if ids.count(i) != 1) == []
    assert {"chat.js", "vendor/axe-core/axe.min.js", "vendor/axe-core/LICENSE.txt"} <= set(static_files())


def test_chat_script_never_injects_markup_and_never_allows_same_origin() -> None:
    js = _asset("chat.js")
    code = re.sub(r"/\*.*?\*/|^\s*//.*$", "", js, flags=re.S | re.M)  # comments may name them
    assert "innerHTML" not in code and "outerHTML" not in code and "insertAdjacentHTML" not in code
    assert "document.write" not in code and "eval(" not in code and "textContent" in code
    assert "allow-same-origin" not in code and "allow-same-origin" in js
    assert 'sandbox: "allow-scripts"' in js
    # messages from frames are accepted only from our own component frames, and bounded
    assert "CHAT.frames.get(e.source)" in js
    limits = {name: int(value) for name, value in re.findall(r"const (MAX_[A-Z_]+) = (\d+);", js)}
    assert limits == {
        "MAX_MESSAGES": 50,
        "MAX_QUESTION_CHARS": 1000,
        "MAX_ROUTE_POINTS": 500,
        "MAX_ACTIONS": 50,
    }


def test_axe_core_is_vendored_with_its_mpl_licence() -> None:
    licence = _asset("vendor/axe-core/LICENSE.txt")
    assert licence.startswith("Mozilla Public License, version 2.0")
    head = _asset("vendor/axe-core/axe.min.js")[:400]
    assert re.search(r"axe v4\.10\.2", head), head[:200]
