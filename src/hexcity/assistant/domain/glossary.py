"""The gazetteer: hexcity's entities with their kind, aliases and audience, and query synonyms.

Used for entity linking (help articles and questions) and for query expansion. Aliases are
matched on normalised token sequences; error codes are also found by a regex in
:mod:`hexcity.assistant.domain.extraction`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hexcity.assistant.domain.acl import CUSTOMER, DRIVER, MERCHANT, STAFF


@dataclass(frozen=True, slots=True)
class GlossaryEntry:
    entity_id: str
    kind: str  # Service, Policy, Fee, Promo, PaymentMethod, ErrorCode, AppScreen, VehicleType, ...
    name: str
    aliases: tuple[str, ...] = ()
    audiences: frozenset[str] = frozenset({CUSTOMER, DRIVER, MERCHANT, STAFF})


ENTRIES: tuple[GlossaryEntry, ...] = (
    GlossaryEntry("service:ride", "Service", "ride", ("ride", "trip", "taxi", "driver accept")),
    GlossaryEntry("service:shop", "Service", "shop order", ("shop order", "order", "checkout")),
    GlossaryEntry("service:delivery", "Service", "delivery", ("delivery", "delivered", "courier")),
    GlossaryEntry("policy:refund", "Policy", "refund", ("refund", "money back")),
    GlossaryEntry("policy:cancellation", "Policy", "cancellation", ("cancel", "cancellation")),
    GlossaryEntry("policy:split", "Policy", "split shipment", ("split", "shipment", "parcel")),
    GlossaryEntry("policy:consolidation", "Policy", "consolidation", ("consolidation",)),
    GlossaryEntry("policy:flash_sale", "Policy", "flash sale", ("flash sale", "flash-sale")),
    GlossaryEntry("policy:sla", "Policy", "delivery promise", ("2h", "same_day", "same day", "cut-off")),
    GlossaryEntry("policy:account_safety", "Policy", "account safety", ("password", "fraud", "suspicious")),
    GlossaryEntry("policy:quote_lock", "Policy", "quote lock", ("quote", "locked", "60 seconds")),
    GlossaryEntry("fee:cancellation", "Fee", "cancellation fee", ("cancellation fee",)),
    GlossaryEntry("fee:platform", "Fee", "platform fee", ("platform fee", "15 percent")),
    GlossaryEntry("fee:delivery", "Fee", "delivery fee", ("delivery fee",)),
    GlossaryEntry("fee:surge", "Fee", "surge", ("surge", "multiplier", "price go up")),
    GlossaryEntry("payment:wallet", "PaymentMethod", "wallet", ("wallet", "balance", "top up", "top-up")),
    GlossaryEntry("payment:card", "PaymentMethod", "card", ("card",)),
    GlossaryEntry("payment:payout", "PaymentMethod", "payout", ("payout", "earnings", "bank account")),
    GlossaryEntry("promo:cashback", "Promo", "cashback", ("cashback", "campaign")),
    GlossaryEntry("promo:code", "Promo", "promo code", ("promo", "welcome10")),
    GlossaryEntry("vehicle:xl", "VehicleType", "xl", ("xl", "comfort", "standard ride")),
    GlossaryEntry("screen:report_problem", "AppScreen", "report a problem", ("report a problem",)),
    GlossaryEntry(
        "policy:refund_review",
        "Policy",
        "refund abuse review",
        ("manual review", "second approver", "abuse"),
        frozenset({STAFF}),
    ),
    GlossaryEntry("ledger:reconciliation", "Policy", "reconciliation", ("reconciliation", "discrepancy")),
)

# Query expansion: user words → hexcity vocabulary (paraphrases seen in support tickets).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "money": ("refund", "wallet"),
    "charged": ("fee", "payment"),
    "charge": ("fee", "payment"),
    "pricey": ("surge",),
    "expensive": ("surge", "multiplier"),
    "price": ("fare", "surge"),
    "late": ("delivery", "estimated"),
    "package": ("parcel", "shipment"),
    "packages": ("parcel", "shipment"),
    "parcel": ("shipment",),
    "split": ("shipment", "parcel"),
    "hacked": ("suspicious", "password"),
    "paid": ("payment", "payout"),
    "driver": ("earnings",),
    "taxi": ("ride",),
    "cab": ("ride",),
    "balance": ("wallet",),
    "sale": ("flash",),
    "deal": ("flash", "sale"),
    "hoan": ("refund",),
    "tien": ("refund",),
}
