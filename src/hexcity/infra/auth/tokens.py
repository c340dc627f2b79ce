"""Signed tokens (JWT) for riders, drivers, merchants and admins: issue and verify.

Every key is bound to exactly one algorithm and named by a ``kid``; a token's header must name a
known kid *and* that key's algorithm, so ``alg=none`` and HS/RS algorithm confusion are refused
before a signature is even checked. Every token has ``iss``, ``aud``, ``sub``, ``iat``, ``nbf``,
``exp`` and a lifetime of at most ``max_ttl_s``.
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from hexcity.infra.auth.errors import Unauthenticated
from hexcity.infra.auth.principal import ROLE_SCOPES, Principal, Role
from hexcity.infra.auth.settings import AuthSettings
from hexcity.infra.logging import get_logger

log = get_logger(__name__)

ALGORITHMS: frozenset[str] = frozenset({"HS256", "RS256", "EdDSA"})
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub"]
DEMO_KID = "demo"
CACHE_SIZE = 1024  # verified tokens remembered until they expire (PyJWT parsing costs ~0.3 ms)
MAX_CACHED_TOKEN_LENGTH = 2048
_demo_secret: str | None = None


def demo_secret() -> str:
    """The random per-process secret of demo mode (generated once, never persisted)."""
    global _demo_secret  # noqa: PLW0603 - one secret per process, by design
    if _demo_secret is None:
        _demo_secret = secrets.token_urlsafe(48)
    return _demo_secret


@dataclass(frozen=True, slots=True)
class Key:
    """One key, bound to one algorithm: ``key`` is a secret (HS256) or a loaded key object."""

    kid: str
    algorithm: str
    key: Any


def load_key(kid: str, algorithm: str, material: str, *, private: bool = False) -> Key:
    """Load and check ``material`` for ``algorithm`` (PEM for RS256/EdDSA, a secret for HS256)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"key {kid!r}: algorithm {algorithm!r} is not one of {sorted(ALGORITHMS)}")
    try:
        prepared = jwt.get_algorithm_by_name(algorithm).prepare_key(material)
    except (jwt.InvalidKeyError, ValueError, TypeError, NotImplementedError) as exc:
        raise ValueError(f"key {kid!r} is not a valid {algorithm} key: {exc}") from None
    if algorithm == "HS256" and len(material.encode()) < 32:
        raise ValueError(f"key {kid!r}: an HS256 secret must be at least 32 bytes")
    if algorithm != "HS256":
        is_private = hasattr(prepared, "public_key")
        if private and not is_private:
            raise ValueError(f"key {kid!r}: a private key is needed to sign")
    return Key(kid, algorithm, prepared)


def _public(key: Key) -> Key:
    """The verification half of a signing key."""
    if key.algorithm == "HS256" or not hasattr(key.key, "public_key"):
        return key
    return Key(key.kid, key.algorithm, key.key.public_key())


class TokenService:
    """Issues and verifies JWTs against a key ring (one signing key, any number of verifiers)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        signing_key: Key | None,
        verification_keys: list[Key],
        leeway_s: int = 30,
        max_ttl_s: int = 3600,
        accept_demo: bool = False,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        if not 0 <= leeway_s <= 300:
            raise ValueError("leeway must be within [0, 300] s")
        self.issuer, self.audience = issuer, audience
        self.signing_key = signing_key
        self.keys: dict[str, Key] = {k.kid: k for k in verification_keys}
        if signing_key is not None:
            self.keys[signing_key.kid] = _public(signing_key)
        self.leeway_s, self.max_ttl_s, self.accept_demo = leeway_s, max_ttl_s, accept_demo
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[Principal, int]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> TokenService:
        """The key ring configured in ``settings``; demo mode without keys gets a random secret."""
        signing: Key | None = None
        if settings.jwt_private_key is not None:
            signing = load_key(
                settings.jwt_kid,
                settings.jwt_algorithm,
                settings.jwt_private_key.get_secret_value(),
                private=True,
            )
        elif settings.jwt_secret is not None:
            if settings.jwt_algorithm != "HS256":
                raise ValueError("jwt_secret is an HS256 secret: set jwt_algorithm=HS256")
            signing = load_key(settings.jwt_kid, "HS256", settings.jwt_secret.get_secret_value())
        verification = [
            _parse_verification_key(kid, v.get_secret_value())
            for kid, v in settings.jwt_verification_keys.items()
        ]
        if settings.demo_mode and signing is None and not verification:
            log.warning(
                "auth_demo_mode",
                message="DEMO MODE: JWTs are signed with a random per-process secret; "
                "never use this in production",
            )
            signing = load_key(DEMO_KID, "HS256", demo_secret())
        elif settings.demo_mode:
            log.warning("auth_demo_mode", message="DEMO MODE: demo tokens (demo=true) are accepted")
        return cls(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            signing_key=signing,
            verification_keys=verification,
            leeway_s=settings.jwt_leeway_s,
            max_ttl_s=settings.jwt_max_ttl_s,
            accept_demo=settings.demo_mode,
        )

    def issue(
        self,
        subject: str,
        role: Role | str,
        *,
        tenant: str | None = None,
        scopes: set[str] | frozenset[str] | None = None,
        ttl_s: int = 3600,
        demo: bool = False,
        now: float | None = None,
    ) -> str:
        """A signed token; ``scopes`` default to the role's row and never exceed it."""
        if self.signing_key is None:
            raise ValueError("no signing key configured")
        role = Role(role)
        if not 0 < ttl_s <= self.max_ttl_s:
            raise ValueError(f"ttl_s must be within (0, {self.max_ttl_s}]")
        if role is Role.MERCHANT and not tenant:
            raise ValueError("a merchant token needs its shop id as tenant")
        allowed = ROLE_SCOPES[role]
        granted = allowed if scopes is None else frozenset(scopes)
        if not granted <= allowed:
            raise ValueError(f"scopes {sorted(granted - allowed)} are not allowed for role {role}")
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "role": role.value,
            "scope": " ".join(sorted(granted)),
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl_s,
            "jti": uuid.uuid4().hex,
        }
        if tenant is not None:
            claims["tenant"] = tenant
        if demo:
            claims["demo"] = True
        key = self.signing_key
        return jwt.encode(claims, key.key, algorithm=key.algorithm, headers={"kid": key.kid})

    def verify(self, token: str) -> Principal:
        """The caller a token proves; raises :class:`Unauthenticated` for anything wrong.

        A token that verified once is remembered (LRU, exact token string) until its ``exp``.
        """
        cached = self._cache.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() <= expires + self.leeway_s:
                with contextlib.suppress(KeyError):  # tolerate a concurrent eviction
                    self._cache.move_to_end(token)
                return principal
            self._cache.pop(token, None)
            raise Unauthenticated("token expired")
        principal, expires = self._verify(token)
        if self.cache_size > 0 and len(token) <= MAX_CACHED_TOKEN_LENGTH:
            self._cache[token] = (principal, expires)
            while len(self._cache) > self.cache_size:
                with contextlib.suppress(KeyError):
                    self._cache.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, int]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token") from None
        kid, alg = header.get("kid"), header.get("alg")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthenticated("unknown signing key")
        if alg != key.algorithm:
            raise Unauthenticated("token algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": REQUIRED_CLAIMS, "strict_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token not yet valid") from None
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token") from None
        return self._principal(claims), int(claims["exp"])

    def _principal(self, claims: dict[str, Any]) -> Principal:
        lifetime = claims["exp"] - claims["iat"]
        if not isinstance(lifetime, int) or lifetime > self.max_ttl_s:
            raise Unauthenticated("token lifetime too long or invalid")
        demo = claims.get("demo") is True
        if demo and not self.accept_demo:
            raise Unauthenticated("demo tokens are not accepted")
        try:
            role = Role(str(claims.get("role")))
        except ValueError:
            raise Unauthenticated("invalid role") from None
        if role is Role.SERVICE:
            raise Unauthenticated("services authenticate with an API key")
        subject, tenant, scope = claims["sub"], claims.get("tenant"), claims.get("scope", "")
        if not (isinstance(subject, str) and subject and isinstance(scope, str)):
            raise Unauthenticated("invalid claims")
        if tenant is not None and not isinstance(tenant, str):
            raise Unauthenticated("invalid tenant")
        if role is Role.MERCHANT and not tenant:
            raise Unauthenticated("merchant token without shop")
        scopes = frozenset(scope.split()) & ROLE_SCOPES[role]
        return Principal(subject=subject, role=role, scopes=scopes, tenant=tenant, demo=demo)


def _parse_verification_key(kid: str, value: str) -> Key:
    algorithm, sep, material = value.partition(":")
    if not sep:
        raise ValueError(f"verification key {kid!r} must be 'ALG:material'")
    alg = algorithm.strip()
    return load_key(kid, alg, material if alg == "HS256" else material.strip())
