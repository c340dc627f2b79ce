"""API keys for services: ``hx_<id>_<secret>``, stored only as a digest, compared in constant time.

The id is looked up, then the secret's digest (SHA-256, or HMAC-SHA256 keyed with a pepper from
settings) is compared with :func:`hmac.compare_digest`. An unknown id costs the same comparison,
so timing does not tell which ids exist.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from hexcity.infra.auth.errors import Unauthenticated
from hexcity.infra.auth.principal import ALL_SCOPES, Principal, Role

PREFIX = "hx_"
KEY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
MAX_KEY_LENGTH = 256
_DUMMY_DIGEST = bytes(32)


def parse_api_key(key: str) -> tuple[str, str]:
    """``(id, secret)`` of a ``hx_<id>_<secret>`` key; the id has no underscore."""
    if len(key) > MAX_KEY_LENGTH or not key.startswith(PREFIX):
        raise Unauthenticated("malformed API key")
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or not secret or not KEY_ID.fullmatch(key_id):
        raise Unauthenticated("malformed API key")
    return key_id, secret


def digest(secret: str, pepper: str | None = None) -> str:
    """Hex digest stored in settings: HMAC-SHA256(pepper, secret), or SHA-256 without a pepper."""
    data = secret.encode()
    if pepper:
        return hmac.new(pepper.encode(), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def generate_api_key(key_id: str, scopes: set[str], pepper: str | None = None) -> tuple[str, str]:
    """A new ``(key, settings_entry)``: hand the key to the service, put the entry in settings."""
    if not KEY_ID.fullmatch(key_id):
        raise ValueError("key id must be 1-64 characters of [A-Za-z0-9-]")
    unknown = set(scopes) - ALL_SCOPES
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}")
    secret = secrets.token_urlsafe(32)
    return f"{PREFIX}{key_id}_{secret}", f"{key_id}:{digest(secret, pepper)}:{' '.join(sorted(scopes))}"


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """One configured key: its id, the digest of its secret, and its scopes."""

    key_id: str
    digest: bytes
    scopes: frozenset[str]


def parse_entry(entry: str) -> ApiKeyRecord:
    """A settings entry ``id:sha256hex:scope1 scope2`` (scopes may themselves contain ':')."""
    key_id, _, rest = entry.strip().partition(":")
    hex_digest, _, scope_text = rest.partition(":")
    if not KEY_ID.fullmatch(key_id):
        raise ValueError(f"API key entry has an invalid id {key_id!r}")
    try:
        raw = bytes.fromhex(hex_digest)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"API key {key_id!r}: digest must be 64 hex characters (SHA-256)")
    scopes = frozenset(scope_text.split())
    if not scopes <= ALL_SCOPES:
        raise ValueError(f"API key {key_id!r}: unknown scopes {sorted(scopes - ALL_SCOPES)}")
    return ApiKeyRecord(key_id, raw, scopes)


class ApiKeyStore:
    """The configured keys, by id."""

    def __init__(self, records: list[ApiKeyRecord], pepper: str | None = None) -> None:
        self.records = {r.key_id: r for r in records}
        if len(self.records) != len(records):
            raise ValueError("duplicate API key ids")
        self.pepper = pepper

    @classmethod
    def from_entries(cls, entries: list[str], pepper: str | None = None) -> ApiKeyStore:
        """Parse settings entries (see :func:`parse_entry`)."""
        return cls([parse_entry(e) for e in entries], pepper)

    def verify(self, key: str) -> Principal:
        """The service a key proves; raises :class:`Unauthenticated` otherwise."""
        key_id, secret = parse_api_key(key)
        record = self.records.get(key_id)
        expected = record.digest if record is not None else _DUMMY_DIGEST
        actual = bytes.fromhex(digest(secret, self.pepper))
        if not hmac.compare_digest(actual, expected) or record is None:
            raise Unauthenticated("invalid API key")
        return Principal(subject=record.key_id, role=Role.SERVICE, scopes=record.scopes, method="api_key")
