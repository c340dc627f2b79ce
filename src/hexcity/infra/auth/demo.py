"""DEMO ONLY: mint tokens locally (``hexcity auth token ...``). Every such token says ``demo: true``.

Servers accept demo tokens only while ``HEXCITY_AUTH_DEMO_MODE=true``. With a configured
``jwt_secret`` the token verifies in any process sharing that secret; without one it is signed
with this process's random secret and verifies only here.
"""

from __future__ import annotations

from hexcity.infra.auth.principal import Role
from hexcity.infra.auth.settings import AuthSettings
from hexcity.infra.auth.tokens import TokenService
from hexcity.infra.logging import get_logger

log = get_logger(__name__)


def mint_demo_token(
    settings: AuthSettings,
    role: Role | str,
    subject: str,
    tenant: str | None = None,
    scopes: set[str] | frozenset[str] | None = None,
    ttl_s: int = 3600,
) -> str:
    """A demo JWT for ``role``/``subject`` (merchants need ``tenant`` = shop id).

    Refuses unless ``settings.demo_mode`` is on; ``scopes`` default to the role's row and cannot
    exceed it; ``ttl_s`` is bounded by ``settings.jwt_max_ttl_s``.
    """
    if not settings.demo_mode:
        raise ValueError("demo tokens need HEXCITY_AUTH_DEMO_MODE=true")
    token = TokenService.from_settings(settings).issue(
        subject, role, tenant=tenant, scopes=scopes, ttl_s=ttl_s, demo=True
    )
    log.warning("auth_demo_token_minted", role=str(Role(role)), subject=subject, ttl_s=ttl_s)
    return token
