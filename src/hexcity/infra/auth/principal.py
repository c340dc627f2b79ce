"""Who is calling: the :class:`Principal`, the roles, and the one scope table per role."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from hexcity.infra.auth.errors import Forbidden


class Role(StrEnum):
    """The kinds of caller; a service authenticates with an API key, the others with a JWT."""

    SERVICE = "service"
    RIDER = "rider"
    DRIVER = "driver"
    MERCHANT = "merchant"
    ADMIN = "admin"


ROUTING_READ = "routing:read"
WEBHOOKS_WRITE = "webhooks:write"
LOCATIONS_WRITE = "locations:write"  # drivers (and trackers/simulators) report positions

# The one place that says what each role may ever do. A token's scopes are cut down to its role's
# row, so a token cannot grant more than its role; an API key's scopes must come from ALL_SCOPES.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.SERVICE: frozenset({ROUTING_READ, WEBHOOKS_WRITE, LOCATIONS_WRITE, "vrp:solve"}),
    Role.RIDER: frozenset(
        {
            ROUTING_READ,
            "trips:read",
            "trips:write",
            "orders:read",
            "orders:write",
            "payments:read",
            "payments:write",
        }
    ),
    Role.DRIVER: frozenset(
        {
            ROUTING_READ,
            LOCATIONS_WRITE,
            "offers:read",
            "offers:write",
            "trips:read",
            "trips:write",
            "payments:read",
        }
    ),
    Role.MERCHANT: frozenset(
        {
            ROUTING_READ,
            "shops:read",
            "shops:write",
            "orders:read",
            "orders:write",
            "payments:read",
            "vrp:solve",
        }
    ),
    Role.ADMIN: frozenset(
        {
            ROUTING_READ,
            WEBHOOKS_WRITE,
            LOCATIONS_WRITE,
            "vrp:solve",
            "payments:read",
            "payments:write",
            "ledger:read",
            "ledger:write",
            "fulfillment:read",
            "fulfillment:write",
            "trips:read",
            "trips:write",
            "orders:read",
            "orders:write",
            "offers:read",
            "offers:write",
            "shops:read",
            "shops:write",
            "admin",
        }
    ),
}
ALL_SCOPES: frozenset[str] = frozenset().union(*ROLE_SCOPES.values())

OwnerKind = Literal["rider", "driver", "shop"]
# which role owns which kind of resource, and whether the owner id is the subject or the tenant
_OWNER_ROLE: dict[OwnerKind, tuple[Role, Literal["subject", "tenant"]]] = {
    "rider": (Role.RIDER, "subject"),
    "driver": (Role.DRIVER, "subject"),
    "shop": (Role.MERCHANT, "tenant"),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``subject`` is the rider, driver, merchant user, admin or service id; ``tenant`` is the shop
    id of a merchant (``None`` for the others). ``demo`` marks a locally minted demo token.
    """

    subject: str
    role: Role
    scopes: frozenset[str] = field(default_factory=frozenset)
    tenant: str | None = None
    demo: bool = False
    method: Literal["jwt", "api_key", "disabled"] = "jwt"

    @property
    def is_admin(self) -> bool:
        """Admins see every tenant's data."""
        return self.role is Role.ADMIN

    def has_scopes(self, *scopes: str) -> bool:
        """Whether every one of ``scopes`` was granted."""
        return set(scopes) <= self.scopes

    def owns(self, owner_kind: OwnerKind, owner_id: str) -> bool:
        """Whether this caller *is* the owner (rider id, driver id, or merchant's shop id)."""
        role, attribute = _OWNER_ROLE[owner_kind]
        mine = self.subject if attribute == "subject" else self.tenant
        return self.role is role and mine is not None and mine == owner_id

    def can_read(self, resource_owner_id: str, owner_kind: OwnerKind | None = None) -> bool:
        """Admin, or the owner; ``owner_kind`` defaults to what this role owns."""
        if self.is_admin:
            return True
        kind = owner_kind or _own_kind(self.role)
        return kind is not None and self.owns(kind, resource_owner_id)

    def can_write(self, resource_owner_id: str, owner_kind: OwnerKind | None = None) -> bool:
        """Same tenancy rule as :meth:`can_read`; the write *scope* is checked by ``require``."""
        return self.can_read(resource_owner_id, owner_kind)


def _own_kind(role: Role) -> OwnerKind | None:
    for kind, (owner_role, _) in _OWNER_ROLE.items():
        if owner_role is role:
            return kind
    return None


def authorize_owner(principal: Principal, owner_kind: OwnerKind, owner_id: str) -> Principal:
    """Raise :class:`Forbidden` unless ``principal`` is admin or owns ``owner_kind``/``owner_id``.

    rider → its own rider id, driver → its own driver id, merchant → its shop id (``tenant``).
    Returns the principal so it can be used inline.
    """
    if owner_kind not in _OWNER_ROLE:
        raise ValueError(f"unknown owner kind {owner_kind!r}")
    if principal.is_admin or principal.owns(owner_kind, owner_id):
        return principal
    raise Forbidden(f"not allowed to access this {owner_kind}")
