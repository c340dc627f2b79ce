"""Identity and access: tokens, API keys, middleware, dependencies, tenancy and OpenAPI."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Annotated, Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from starlette.routing import Route

from hexcity.infra.auth import (
    ROUTING_ROUTE_SCOPES,
    ApiKeyStore,
    AuthSettings,
    Forbidden,
    Principal,
    Role,
    TokenService,
    Unauthenticated,
    authorize_owner,
    generate_api_key,
    install_auth,
    mint_demo_token,
    require,
)
from hexcity.infra.auth.tokens import load_key
from hexcity.kernel import HexcityError

ISSUER, AUDIENCE = "hexcity-test", "hexcity-test-api"


def _secret() -> str:
    return secrets.token_urlsafe(48)


def _service(secret: str | None = None, kid: str = "k1", **kw: Any) -> TokenService:
    key = load_key(kid, "HS256", secret or _secret())
    params: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "leeway_s": 5}
    params.update(kw)
    verification = params.pop("verification_keys", [])
    return TokenService(signing_key=key, verification_keys=verification, **params)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """Sign by hand, as an attacker would (PyJWT refuses to HMAC with a PEM key)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "r1",
        "role": "rider",
        "scope": "routing:read",
    }
    claims |= {"iat": now, "nbf": now, "exp": now + 600}
    claims.update(over)
    return claims


# -- tokens --------------------------------------------------------------------------------------
def test_valid_token_round_trips() -> None:
    tokens = _service()
    principal = tokens.verify(tokens.issue("r1", Role.RIDER, ttl_s=600))
    assert principal.subject == "r1"
    assert principal.role is Role.RIDER
    assert "trips:read" in principal.scopes
    assert "shops:read" not in principal.scopes
    assert not principal.demo
    claims = jwt.decode(tokens.issue("r1", "rider"), options={"verify_signature": False}, audience=AUDIENCE)
    assert {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "role", "scope"} <= set(claims)
    assert claims["exp"] - claims["iat"] <= 3600


def test_merchant_token_carries_shop() -> None:
    tokens = _service()
    principal = tokens.verify(tokens.issue("m1", "merchant", tenant="shop-1"))
    assert principal.tenant == "shop-1"
    with pytest.raises(ValueError, match="tenant"):
        tokens.issue("m1", "merchant")


def test_scopes_never_exceed_the_role() -> None:
    tokens = _service()
    with pytest.raises(ValueError, match="not allowed"):
        tokens.issue("r1", "rider", scopes={"admin"})
    narrowed = tokens.verify(tokens.issue("r1", "rider", scopes={"routing:read"}))
    assert narrowed.scopes == {"routing:read"}
    # a token claiming more than its role (signed with the real key) is cut down to the role
    key = tokens.signing_key
    assert key is not None
    forged_scope = jwt.encode(
        _claims(scope="admin routing:read"), key.key, algorithm="HS256", headers={"kid": "k1"}
    )
    assert tokens.verify(forged_scope).scopes == {"routing:read"}


def test_lifetime_is_bounded() -> None:
    tokens = _service(max_ttl_s=600)
    with pytest.raises(ValueError, match="ttl_s"):
        tokens.issue("r1", "rider", ttl_s=601)
    key = tokens.signing_key
    assert key is not None
    long_lived = jwt.encode(
        _claims(exp=int(time.time()) + 10_000), key.key, algorithm="HS256", headers={"kid": "k1"}
    )
    with pytest.raises(Unauthenticated, match="lifetime"):
        tokens.verify(long_lived)


def test_expired_token() -> None:
    tokens = _service()
    old = tokens.issue("r1", "rider", ttl_s=600, now=time.time() - 3000)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(old)


def test_not_yet_valid_token() -> None:
    tokens = _service()
    future = tokens.issue("r1", "rider", ttl_s=600, now=time.time() + 300)
    with pytest.raises(Unauthenticated, match="not yet valid"):
        tokens.verify(future)
    key = tokens.signing_key
    assert key is not None
    nbf_future = jwt.encode(
        _claims(nbf=int(time.time()) + 300), key.key, algorithm="HS256", headers={"kid": "k1"}
    )
    with pytest.raises(Unauthenticated, match="not yet valid"):
        tokens.verify(nbf_future)


def test_leeway_tolerates_small_skew() -> None:
    tokens = _service(leeway_s=30)
    assert tokens.verify(tokens.issue("r1", "rider", now=time.time() + 10)).subject == "r1"
    with pytest.raises(ValueError, match="leeway"):
        _service(leeway_s=3600)


@pytest.mark.parametrize("field", ["issuer", "audience"])
def test_wrong_issuer_or_audience(field: str) -> None:
    secret = _secret()
    other = _service(secret, **{field: "someone-else"})
    with pytest.raises(Unauthenticated, match="invalid token"):
        _service(secret).verify(other.issue("r1", "rider"))


def test_missing_claims_refused() -> None:
    tokens = _service()
    key = tokens.signing_key
    assert key is not None
    claims = _claims()
    del claims["exp"]
    token = jwt.encode(claims, key.key, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated):
        tokens.verify(token)


def test_forged_signature() -> None:
    real, attacker = _service(), _service()  # same kid, different secrets
    with pytest.raises(Unauthenticated, match="invalid token"):
        real.verify(attacker.issue("r1", "admin"))
    header, payload, sig = real.issue("r1", "rider").split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered["role"] = "admin"
    with pytest.raises(Unauthenticated):
        real.verify(f"{header}.{_b64(json.dumps(tampered).encode())}.{sig}")
    with pytest.raises(Unauthenticated, match="malformed"):
        real.verify("not-a-jwt")


def test_alg_none_refused() -> None:
    tokens = _service()
    unsigned = jwt.encode(_claims(role="admin"), "", algorithm="none", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated, match="algorithm"):
        tokens.verify(unsigned)
    no_kid = jwt.encode(_claims(), "", algorithm="none")
    with pytest.raises(Unauthenticated):
        tokens.verify(no_kid)


def test_unknown_kid() -> None:
    secret = _secret()
    with pytest.raises(Unauthenticated, match="unknown signing key"):
        _service(secret, kid="k1").verify(_service(secret, kid="k9").issue("r1", "rider"))


def test_rotated_keys() -> None:
    old_secret, new_secret = _secret(), _secret()
    old = _service(old_secret, kid="k1")
    old_token = old.issue("r1", "rider")
    rotated = _service(new_secret, kid="k2", verification_keys=[load_key("k1", "HS256", old_secret)])
    assert rotated.verify(old_token).subject == "r1"
    assert rotated.verify(rotated.issue("r2", "rider")).subject == "r2"
    retired = _service(new_secret, kid="k2")
    with pytest.raises(Unauthenticated):
        retired.verify(old_token)


def test_settings_key_ring_and_rotation() -> None:
    old_secret, new_secret = _secret(), _secret()
    old = TokenService.from_settings(_settings(jwt_secret=old_secret, jwt_kid="2025"))
    new = TokenService.from_settings(
        _settings(
            jwt_secret=new_secret,
            jwt_kid="2026",
            jwt_verification_keys={"2025": f"HS256:{old_secret}"},
        )
    )
    assert new.verify(old.issue("r1", "rider")).subject == "r1"
    with pytest.raises(ValueError):
        TokenService.from_settings(_settings(jwt_verification_keys={"x": "no-algorithm"}))
    with pytest.raises(ValueError):
        TokenService.from_settings(_settings(jwt_verification_keys={"x": "none:abc"}))


def _rsa_pems() -> tuple[str, str]:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def test_rs256_and_hs_rs_confusion() -> None:
    private_pem, public_pem = _rsa_pems()
    signer = TokenService(
        issuer=ISSUER,
        audience=AUDIENCE,
        signing_key=load_key("rsa1", "RS256", private_pem, private=True),
        verification_keys=[],
    )
    verifier = TokenService(
        issuer=ISSUER,
        audience=AUDIENCE,
        signing_key=None,
        verification_keys=[load_key("rsa1", "RS256", public_pem)],
    )
    assert verifier.verify(signer.issue("d1", "driver")).role is Role.DRIVER
    # the classic attack: HMAC-sign with the (public) RSA key as secret and claim HS256
    confused = _raw_hs256({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}, _claims(), public_pem.encode())
    with pytest.raises(Unauthenticated, match="algorithm"):
        verifier.verify(confused)
    # a PEM is never accepted as an HS256 secret
    with pytest.raises(ValueError):
        load_key("bad", "HS256", public_pem)
    with pytest.raises(ValueError, match="private"):
        load_key("pub", "RS256", public_pem, private=True)


def test_eddsa_via_settings() -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    signer = TokenService.from_settings(_settings(jwt_algorithm="EdDSA", jwt_private_key=pem, jwt_kid="ed1"))
    verifier = TokenService.from_settings(
        _settings(jwt_verification_keys={"ed1": f"EdDSA:{public}"}, api_keys=[_entry()[1]])
    )
    assert verifier.verify(signer.issue("a1", "admin")).is_admin


def test_service_role_tokens_refused() -> None:
    tokens = _service()
    key = tokens.signing_key
    assert key is not None
    token = jwt.encode(_claims(role="service"), key.key, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated, match="API key"):
        tokens.verify(token)


# -- settings and demo mode ----------------------------------------------------------------------
def _settings(**kw: Any) -> AuthSettings:
    base: dict[str, Any] = {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    base.update(kw)
    return AuthSettings(**base)


def test_settings_need_keys_or_explicit_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JWT_SECRET", "API_KEYS", "DEMO_MODE", "JWT_PRIVATE_KEY", "JWT_VERIFICATION_KEYS"):
        monkeypatch.delenv(f"HEXCITY_AUTH_{name}", raising=False)
    with pytest.raises(ValidationError, match="no key is configured"):
        AuthSettings()
    with pytest.raises(ValidationError, match="32 bytes"):
        AuthSettings(jwt_secret="short")
    assert AuthSettings(demo_mode=True).demo_mode
    assert not AuthSettings(enabled=False).enabled


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key, entry = _entry()
    monkeypatch.setenv("HEXCITY_AUTH_API_KEYS", f"{entry}, {generate_api_key('other', set())[1]}")
    monkeypatch.setenv("HEXCITY_AUTH_PUBLIC_PATHS", '["/health/live"]')
    monkeypatch.setenv("HEXCITY_AUTH_JWT_SECRET", _secret())
    loaded = AuthSettings()
    assert len(loaded.api_keys) == 2
    assert loaded.public_paths == ["/health/live"]
    assert key not in repr(loaded)
    assert loaded.jwt_secret is not None
    assert loaded.jwt_secret.get_secret_value() not in repr(loaded)


def test_demo_tokens_only_in_demo_mode() -> None:
    with pytest.raises(ValueError, match="DEMO_MODE"):
        mint_demo_token(_settings(jwt_secret=_secret()), "rider", "r1")
    secret = _secret()
    demo = _settings(jwt_secret=secret, demo_mode=True)
    token = mint_demo_token(demo, "rider", "r1", ttl_s=60)
    assert jwt.decode(token, options={"verify_signature": False})["demo"] is True
    assert TokenService.from_settings(demo).verify(token).demo
    with pytest.raises(Unauthenticated, match="demo"):
        TokenService.from_settings(_settings(jwt_secret=secret)).verify(token)
    # without any key: a random per-process secret, shared by minting and verifying
    keyless = _settings(demo_mode=True)
    assert TokenService.from_settings(keyless).verify(mint_demo_token(keyless, "admin", "a1")).is_admin


# -- API keys ------------------------------------------------------------------------------------
def _entry(key_id: str = "svc1", scopes: frozenset[str] = frozenset({"routing:read"})) -> tuple[str, str]:
    return generate_api_key(key_id, set(scopes))


def test_api_key_valid_wrong_unknown() -> None:
    key, entry = _entry()
    store = ApiKeyStore.from_entries([entry])
    principal = store.verify(key)
    assert principal.role is Role.SERVICE
    assert principal.subject == "svc1"
    assert principal.scopes == {"routing:read"}
    with pytest.raises(Unauthenticated, match="invalid"):
        store.verify(key[:-2] + ("AA" if not key.endswith("AA") else "BB"))
    with pytest.raises(Unauthenticated, match="invalid"):
        store.verify(key.replace("hx_svc1_", "hx_svc2_"))
    for bad in ("", "svc1", "hx_", "hx_svc1", "hx__abc", "hx_a b_c", "x" * 1000):
        with pytest.raises(Unauthenticated, match="malformed"):
            store.verify(bad)


def test_api_key_digest_with_pepper() -> None:
    pepper = _secret()
    key, entry = generate_api_key("svc1", {"routing:read"}, pepper)
    assert ApiKeyStore.from_entries([entry], pepper).verify(key).subject == "svc1"
    with pytest.raises(Unauthenticated):
        ApiKeyStore.from_entries([entry]).verify(key)


def test_api_key_entries_validated() -> None:
    with pytest.raises(ValueError, match="digest"):
        ApiKeyStore.from_entries(["svc1:abc:routing:read"])
    with pytest.raises(ValueError, match="unknown scopes"):
        ApiKeyStore.from_entries([f"svc1:{'0' * 64}:nuke:all"])
    with pytest.raises(ValueError, match="duplicate"):
        ApiKeyStore.from_entries([_entry()[1], _entry()[1]])


def test_api_key_compare_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    key, entry = _entry()
    store = ApiKeyStore.from_entries([entry])
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # api_keys calls hmac.compare_digest
    store.verify(key)
    with pytest.raises(Unauthenticated):
        store.verify("hx_nobody_" + "x" * 43)  # unknown ids are compared too
    assert len(calls) == 2


# -- principal and tenancy -----------------------------------------------------------------------
def test_authorize_owner() -> None:
    rider = Principal("r1", Role.RIDER)
    driver = Principal("d1", Role.DRIVER)
    merchant = Principal("m1", Role.MERCHANT, tenant="s1")
    admin = Principal("a1", Role.ADMIN)
    service = Principal("svc", Role.SERVICE)
    assert authorize_owner(rider, "rider", "r1") is rider
    assert authorize_owner(driver, "driver", "d1") is driver
    assert authorize_owner(merchant, "shop", "s1") is merchant
    for kind, owner in (("rider", "r1"), ("driver", "d1"), ("shop", "s1")):
        assert authorize_owner(admin, kind, owner) is admin  # type: ignore[arg-type]
    refusals = [
        (rider, "rider", "r2"),
        (rider, "driver", "r1"),
        (driver, "rider", "d1"),
        (merchant, "shop", "s2"),
        (merchant, "rider", "m1"),
        (service, "rider", "svc"),
    ]
    for principal, kind, owner in refusals:
        with pytest.raises(Forbidden):
            authorize_owner(principal, kind, owner)  # type: ignore[arg-type]
    assert rider.can_read("r1") and not rider.can_read("r2")
    assert merchant.can_write("s1") and not merchant.can_write("m1")
    assert admin.can_read("anything") and not service.can_read("svc")


class SyncClient:
    """A synchronous face on ``httpx.AsyncClient(transport=httpx.ASGITransport(app))``."""

    def __init__(self, app: FastAPI) -> None:
        self.transport = httpx.ASGITransport(app, raise_app_exceptions=False)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url="http://test") as client:
                return await client.request(method, path, **kw)

        return asyncio.run(call())

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)


# -- the HTTP edge -------------------------------------------------------------------------------
class TripIn(BaseModel):
    """A tiny JSON body to fuzz."""

    rider_id: str
    pickup: tuple[float, float]
    seats: int = 1


RoutingCaller = Annotated[Principal, Depends(require("routing:read"))]
TripReader = Annotated[Principal, Depends(require("trips:read"))]
TripWriter = Annotated[Principal, Depends(require("trips:write"))]
OrderReader = Annotated[Principal, Depends(require("orders:read"))]
AnyCaller = Annotated[Principal, Depends(require())]


def _build_app(settings: AuthSettings) -> FastAPI:
    app = FastAPI()

    async def plain_route(request: Request) -> Response:
        """OSRM-style route."""
        principal = request.state.principal
        return JSONResponse({"code": "Ok", "sub": principal.subject})

    app.router.routes[:0] = [Route("/route/v1/{profile}/{coordinates:path}", plain_route, methods=["GET"])]

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/whoami")
    async def whoami(principal: RoutingCaller) -> dict[str, str]:
        return {"sub": principal.subject, "role": principal.role.value}

    @app.get("/riders/{rider_id}/trips")
    async def trips(rider_id: str, principal: TripReader) -> dict[str, Any]:
        authorize_owner(principal, "rider", rider_id)
        return {"rider": rider_id, "trips": []}

    @app.get("/shops/{shop_id}/orders")
    async def orders(shop_id: str, principal: OrderReader) -> dict[str, Any]:
        authorize_owner(principal, "shop", shop_id)
        return {"shop": shop_id, "orders": []}

    @app.post("/trips", status_code=201)
    async def create_trip(body: TripIn, principal: TripWriter) -> dict[str, Any]:
        authorize_owner(principal, "rider", body.rider_id)
        return {"rider": body.rider_id}

    @app.exception_handler(HexcityError)
    async def hexcity_error(_: Request, exc: HexcityError) -> Response:
        return JSONResponse({"code": exc.code, "message": exc.message}, exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"code": "InvalidQuery", "message": "invalid"}, 400)

    install_auth(app, settings, route_scopes=ROUTING_ROUTE_SCOPES)
    return app


class Edge:
    """The test app with its credentials."""

    def __init__(self) -> None:
        self.secret = _secret()
        self.key, entry = _entry()
        self.weak_key, weak_entry = generate_api_key("weak", set())
        self.settings = _settings(jwt_secret=self.secret, api_keys=[entry, weak_entry])
        self.tokens = TokenService.from_settings(self.settings)
        self.client = SyncClient(_build_app(self.settings))

    def bearer(self, subject: str, role: str, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue(subject, role, **kw)}"}


@pytest.fixture(scope="module")
def edge() -> Edge:
    return Edge()


PROTECTED = [
    ("GET", "/route/v1/car/7.5,42.5;7.6,42.6"),
    ("GET", "/whoami"),
    ("GET", "/riders/r1/trips"),
    ("GET", "/shops/s1/orders"),
    ("POST", "/trips"),
]
OWNER_OF = {"/riders/r1/trips": ("r1", "rider", None), "/shops/s1/orders": ("m1", "merchant", "s1")}


def _call(edge: Edge, method: str, path: str, headers: dict[str, str]) -> Any:
    body = {"rider_id": "r1", "pickup": [42.5, 1.5]} if method == "POST" else None
    return edge.client.request(method, path, headers=headers, json=body)


def _assert_refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_endpoint_refuses_bad_credentials(edge: Edge, method: str, path: str) -> None:
    expired = edge.tokens.issue("r1", "rider", now=time.time() - 7200)
    forged = _service(kid="k1", issuer=ISSUER, audience=AUDIENCE).issue("a1", "admin")
    other_issuer = _service(edge.secret, issuer="elsewhere").issue("a1", "admin")
    cases: list[dict[str, str]] = [
        {},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": f"Bearer {other_issuer}"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer a.b.c"},
        {"X-API-Key": edge.key + "x"},
        {"X-API-Key": "hx_svc1_wrong"},
        {"X-API-Key": "garbage"},
    ]
    for headers in cases:
        _assert_refused(_call(edge, method, path, headers), 401, "Unauthenticated")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_endpoint_refuses_wrong_tenant(edge: Edge, method: str, path: str) -> None:
    strangers = [
        edge.bearer("r2", "rider"),
        edge.bearer("d1", "driver"),
        edge.bearer("m2", "merchant", tenant="s2"),
        {"X-API-Key": edge.weak_key},
    ]
    if path.startswith("/route/") or path == "/whoami":
        strangers = [{"X-API-Key": edge.weak_key}]  # every logged-in role may route
    for headers in strangers:
        _assert_refused(_call(edge, method, path, headers), 403, "Forbidden")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_admin_sees_all(edge: Edge, method: str, path: str) -> None:
    response = _call(edge, method, path, edge.bearer("a1", "admin"))
    assert response.status_code in {200, 201}, response.text


def test_owners_see_their_own(edge: Edge) -> None:
    for path, (subject, role, tenant) in OWNER_OF.items():
        assert _call(edge, "GET", path, edge.bearer(subject, role, tenant=tenant)).status_code == 200
    assert _call(edge, "POST", "/trips", edge.bearer("r1", "rider")).status_code == 201


def test_routing_with_api_key_and_tokens(edge: Edge) -> None:
    response = _call(edge, "GET", "/route/v1/car/1,2;3,4", {"X-API-Key": edge.key})
    assert response.json() == {"code": "Ok", "sub": "svc1"}
    for role, tenant in (("rider", None), ("driver", None), ("merchant", "s1"), ("admin", None)):
        headers = edge.bearer("u1", role, tenant=tenant)
        assert _call(edge, "GET", "/route/v1/car/1,2;3,4", headers).status_code == 200
    # a rider token narrowed to trips only may not route
    narrowed = edge.bearer("r1", "rider", scopes={"trips:read"})
    _assert_refused(_call(edge, "GET", "/route/v1/car/1,2", narrowed), 403, "Forbidden")
    both = {"X-API-Key": edge.key, **edge.bearer("r1", "rider")}
    _assert_refused(_call(edge, "GET", "/whoami", both), 401, "Unauthenticated")


def test_public_paths_and_unknown_paths(edge: Edge) -> None:
    assert edge.client.get("/health/live").status_code == 200
    assert edge.client.get("/openapi.json").status_code == 200
    assert edge.client.get("/docs").status_code == 200
    _assert_refused(edge.client.get("/no/such/path"), 401, "Unauthenticated")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps(value).encode()),
        st.fixed_dictionaries(
            {
                "rider_id": st.one_of(st.text(max_size=5), st.integers()),
                "pickup": st.lists(st.floats(), max_size=3),
            }
        ).map(lambda value: json.dumps(value).encode()),
    )
)
def test_garbage_bodies_get_4xx(edge: Edge, body: bytes) -> None:
    headers = {**edge.bearer("r1", "rider"), "Content-Type": "application/json"}
    response = edge.client.post("/trips", content=body, headers=headers)
    assert response.status_code < 500, response.text
    assert response.status_code in {201, 400, 403, 422}
    anonymous = edge.client.post("/trips", content=body, headers={"Content-Type": "application/json"})
    assert anonymous.status_code == 401


def test_openapi_declares_security(edge: Edge) -> None:
    schema = edge.client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["bearerAuth"]["description"],
    }
    assert schemes["apiKeyAuth"]["in"] == "header"
    assert schemes["apiKeyAuth"]["name"] == "X-API-Key"
    paths = schema["paths"]
    assert "/route/v1/{profile}/{coordinates}" in paths
    assert "routing:read" in paths["/route/v1/{profile}/{coordinates}"]["get"]["description"]
    public = set(edge.settings.public_paths)
    protected = 0
    for path, item in paths.items():
        for method, operation in item.items():
            if path in public:
                assert "security" not in operation
                continue
            protected += 1
            assert operation["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}], (path, method)
            assert {"401", "403"} <= set(operation["responses"])
    assert protected == len(PROTECTED)


def test_auth_disabled_lets_everyone_in() -> None:
    app = _build_app(_settings(enabled=False))
    client = SyncClient(app)
    assert client.get("/riders/r9/trips").status_code == 200
    assert client.get("/whoami").json() == {"sub": "anonymous", "role": "admin"}


def test_demo_mode_app_accepts_minted_tokens() -> None:
    demo = _settings(demo_mode=True)
    client = SyncClient(_build_app(demo))
    token = mint_demo_token(demo, "rider", "r1")
    assert client.get("/riders/r1/trips", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_require_rejects_unknown_scopes() -> None:
    with pytest.raises(ValueError, match="unknown scopes"):
        require("trips:delete-everything")


def test_dependency_errors_use_the_same_body() -> None:
    """``require`` on a public path authenticates by itself and answers like the middleware."""
    secret = _secret()
    settings_ = _settings(jwt_secret=secret, public_paths=["/open"])
    app = FastAPI()

    @app.get("/open")
    async def open_(principal: AnyCaller) -> dict[str, str]:
        return {"sub": principal.subject}

    install_auth(app, settings_)
    client = SyncClient(app)
    _assert_refused(client.get("/open"), 401, "Unauthenticated")
    token = TokenService.from_settings(settings_).issue("r1", "rider")
    assert client.get("/open", headers={"Authorization": f"Bearer {token}"}).json() == {"sub": "r1"}


def test_websockets_are_authenticated_too() -> None:
    """The middleware closes an unauthenticated WebSocket before accepting it (server: 403)."""
    from hexcity.infra.auth import Authenticator, AuthMiddleware

    reached: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["state"]["principal"].subject)

    settings_ = _settings(jwt_secret=_secret())
    authenticator = Authenticator.from_settings(settings_)
    middleware = AuthMiddleware(inner, authenticator)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def run(headers: list[tuple[bytes, bytes]]) -> None:
        scope = {"type": "websocket", "path": "/ws", "headers": headers}
        await middleware(scope, receive, send)

    asyncio.run(run([]))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "Unauthenticated"}]
    token = authenticator.tokens.issue("r1", "rider")
    asyncio.run(run([(b"authorization", f"Bearer {token}".encode())]))
    assert reached == ["r1"]


def test_secret_and_private_key_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="not both"):
        _settings(jwt_secret=_secret(), jwt_private_key="-----BEGIN PRIVATE KEY-----")


def test_verified_tokens_are_cached_until_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = _service(leeway_s=0, cache_size=2)
    first, second, third = (tokens.issue(f"r{i}", "rider", ttl_s=60) for i in range(3))
    assert tokens.verify(first) is tokens.verify(first)  # second call served from the cache
    tokens.verify(second)
    tokens.verify(third)
    assert len(tokens._cache) == 2  # bounded, least recently used dropped
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(third)
    assert third not in tokens._cache
