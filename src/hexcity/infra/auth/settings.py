"""Typed settings of the access layer (environment prefix ``HEXCITY_AUTH_``).

No secret has a default: either key material is configured, or ``demo_mode`` is switched on
explicitly (a random per-process secret, loudly logged; see ``docs/auth.md``).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

JwtAlgorithm = Literal["HS256", "RS256", "EdDSA"]
MIN_HS256_SECRET_BYTES = 32
# /metrics is public by default so Prometheus can scrape it; it carries no request data
DEFAULT_PUBLIC_PATHS = [
    "/health/live",
    "/health/ready",
    "/metrics",
    "/docs",
    "/docs/oauth2-redirect",
    "/openapi.json",
]


def _split_list(value: object) -> object:
    """Accept a JSON list, or (from the environment) a comma or newline separated string."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    return value


class AuthSettings(BaseSettings):
    """Who may call the API and how callers prove it."""

    model_config = SettingsConfigDict(env_prefix="HEXCITY_AUTH_", extra="ignore")

    enabled: bool = Field(default=True, description="authenticate every non-public request")
    demo_mode: bool = Field(
        default=False,
        description="DEMO ONLY: allow locally minted tokens (claim demo=true); random secret if none",
    )
    jwt_issuer: str = Field(default="hexcity", min_length=1)
    jwt_audience: str = Field(default="hexcity-api", min_length=1)
    jwt_algorithm: JwtAlgorithm = Field(default="HS256", description="algorithm of the signing key")
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 signing and verification secret (>= 32 bytes)"
    )
    jwt_private_key: SecretStr | None = Field(
        default=None, description="PEM private key for RS256/EdDSA signing"
    )
    jwt_kid: str = Field(default="k1", min_length=1, max_length=64, description="kid of the signing key")
    jwt_verification_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='more accepted keys, JSON {"kid": "ALG:material"}; material is a secret or PEM',
    )
    jwt_leeway_s: int = Field(default=30, ge=0, le=300, description="clock skew tolerated")
    jwt_max_ttl_s: int = Field(default=3600, ge=60, le=7 * 86_400, description="longest token lifetime")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="service keys, each 'id:sha256hex:scope1 scope2'"
    )
    api_key_pepper: SecretStr | None = Field(
        default=None, description="if set, key digests are HMAC-SHA256(pepper, secret)"
    )
    public_paths: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_PUBLIC_PATHS))

    @field_validator("api_keys", "public_paths", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_HS256_SECRET_BYTES:
            raise ValueError(f"jwt_secret must be at least {MIN_HS256_SECRET_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _keys_or_demo(self) -> Self:
        if self.jwt_secret is not None and self.jwt_private_key is not None:
            raise ValueError("set either jwt_secret (HS256) or jwt_private_key (RS256/EdDSA), not both")
        if not self.enabled or self.demo_mode:
            return self
        if not (self.has_jwt_keys or self.api_keys):
            raise ValueError(
                "auth is enabled but no key is configured: set HEXCITY_AUTH_JWT_SECRET (or a key) "
                "or HEXCITY_AUTH_API_KEYS, or switch HEXCITY_AUTH_DEMO_MODE=true for a demo"
            )
        return self

    @property
    def has_jwt_keys(self) -> bool:
        """Whether any JWT signing or verification key is configured."""
        return bool(self.jwt_secret or self.jwt_private_key or self.jwt_verification_keys)
