"""Access rules of chunks, graph nodes and graph edges, checked for one :class:`Viewer`.

A rule names the audiences that may see an item and, for personal data, its owners. Staff see
everything; everyone else needs their audience listed and, when the item has owners, to be one
of them. The graph applies this to every node AND every edge before traversing (never only to
the end of a path).
"""

from __future__ import annotations

from dataclasses import dataclass

CUSTOMER, DRIVER, MERCHANT, STAFF = "customer", "driver", "merchant", "staff"
ALL_AUDIENCES = frozenset({CUSTOMER, DRIVER, MERCHANT, STAFF})


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks: ``subject`` is the customer/driver/merchant id, ``audience`` their kind."""

    subject: str
    audience: str

    def __post_init__(self) -> None:
        if self.audience not in ALL_AUDIENCES:
            raise ValueError(f"unknown audience {self.audience!r}")
        if not self.subject:
            raise ValueError("subject must not be empty")


@dataclass(frozen=True, slots=True)
class Access:
    """Who may see an item: ``audiences`` and, for personal data, ``owners`` (empty: not personal)."""

    audiences: frozenset[str] = ALL_AUDIENCES
    owners: frozenset[str] = frozenset()

    def allows(self, viewer: Viewer) -> bool:
        if viewer.audience == STAFF:
            return True
        if viewer.audience not in self.audiences:
            return False
        return not self.owners or viewer.subject in self.owners


PUBLIC = Access()
STAFF_ONLY = Access(frozenset({STAFF}))


def owned_by(*owners: str) -> Access:
    """Personal data of ``owners`` (customers, drivers or merchants)."""
    if not owners or any(not owner for owner in owners):
        raise ValueError("owned data needs at least one non-empty owner")
    return Access(ALL_AUDIENCES, frozenset(owners))


def for_audience(audience: str) -> Access:
    """The rule of a help article written for ``audience`` (staff articles: staff only)."""
    if audience not in ALL_AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    if audience == STAFF:
        return STAFF_ONLY
    return Access(frozenset({audience, STAFF}))
