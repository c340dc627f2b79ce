"""Dashboard panels as data sources: a module that runs registers one; the others say "not running".

A panel is a name, a title and a ``source()`` returning a small JSON-able dict of figures (flat
``{label: number | str}`` is rendered as a table; nested values are shown as JSON). The dashboard
lists :data:`EXPECTED_PANELS` always, so a module that is not wired yet is visibly absent rather
than faked. A source that raises shows ``state: "error"`` with the exception's type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hexcity.infra import get_logger

__all__ = ["EXPECTED_PANELS", "Panel", "PanelRegistry", "flash_sale_figures", "ledger_figures", "money"]

log = get_logger(__name__)

# ledger account kinds in the order the ledger panel lists them, with their labels
LEDGER_KINDS: tuple[tuple[str, str], ...] = (
    ("external_settlement", "outside world (cards, banks)"),
    ("wallet", "customer and rider wallets"),
    ("merchant", "shops"),
    ("driver_earnings", "drivers"),
    ("platform_revenue", "platform revenue"),
    ("campaign_budget", "campaign budgets"),
)
# the platform's business modules, in dashboard order: (name, title)
EXPECTED_PANELS: tuple[tuple[str, str], ...] = (
    ("dispatch", "Ride-hailing dispatch"),
    ("fulfillment", "Fulfillment (warehouses, deliveries)"),
    ("commerce", "Commerce (flash sales, orders)"),
    ("payments", "Payments (ledger)"),
)
MAX_PANELS = 32
MAX_FIGURES = 40


@dataclass(frozen=True)
class Panel:
    name: str
    title: str
    source: Callable[[], dict[str, Any]]


class PanelRegistry:
    """The panels shown on the dashboard; ``snapshot()`` is called once per live tick."""

    def __init__(self, expected: tuple[tuple[str, str], ...] = EXPECTED_PANELS) -> None:
        self._titles = dict(expected)
        self._panels: dict[str, Panel] = {}

    def register(self, name: str, title: str, source: Callable[[], dict[str, Any]]) -> None:
        """Show ``source()`` in panel ``name``; raises ValueError on a bad name or too many panels."""
        if not name.replace("_", "").isalnum() or len(name) > 32:
            raise ValueError("a panel name is 1-32 letters, digits or underscores")
        if name not in self._panels and len(self._panels) >= MAX_PANELS:
            raise ValueError(f"at most {MAX_PANELS} panels")
        self._panels[name] = Panel(name, title, source)
        self._titles.setdefault(name, title)

    def unregister(self, name: str) -> None:
        self._panels.pop(name, None)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{name: {"title", "state": running|not_running|error, "data"}}`` in display order."""
        out: dict[str, dict[str, Any]] = {}
        for name, title in self._titles.items():
            panel = self._panels.get(name)
            if panel is None:
                out[name] = {"title": title, "state": "not_running", "data": None}
                continue
            try:
                data = panel.source()
            except Exception as exc:  # a broken source must not break the feed
                log.warning("web_panel_failed", panel=name, error=type(exc).__name__)
                out[name] = {"title": panel.title, "state": "error", "data": {"error": type(exc).__name__}}
                continue
            items = list(data.items())[:MAX_FIGURES]
            out[name] = {"title": panel.title, "state": "running", "data": dict(items)}
        return out


def money(amount_minor: int, currency: str) -> str:
    """``-12345, "EUR"`` → ``"-123.45 EUR"`` (integer arithmetic, no float rounding)."""
    sign = "-" if amount_minor < 0 else ""
    units, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{units}.{cents:02d} {currency}"


def ledger_figures(balance_by_kind_minor: dict[str, int], currency: str, accounts: int) -> dict[str, Any]:
    """The ledger panel: balances by account kind and their sum, which must be 0.00 (every
    transfer debits one account and credits another; the outside world's account is negative by
    exactly the money that came in). ``balanced`` says it in words."""
    out: dict[str, Any] = {"accounts": accounts}
    for kind, label in LEDGER_KINDS:
        if kind in balance_by_kind_minor:
            out[label] = money(balance_by_kind_minor[kind], currency)
    for kind in sorted(set(balance_by_kind_minor) - {k for k, _ in LEDGER_KINDS}):
        out[kind] = money(balance_by_kind_minor[kind], currency)
    total = sum(balance_by_kind_minor.values())
    out["sum of all balances"] = money(total, currency)
    out["balanced"] = "yes" if total == 0 else "NO"
    return out


def flash_sale_figures(
    units: int | None, sold: int | None, oversold: int | None, state: str
) -> dict[str, Any]:
    """The flash-sale panel (``state``: scheduled, open, sold out, closed or not running)."""
    if units is None:
        return {"state": state}
    left = None if sold is None else max(0, units - sold)
    return {"state": state, "units": units, "sold": sold, "left": left, "oversold": oversold}
