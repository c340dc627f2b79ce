"""Generative-UI components: a versioned registry of typed, sanitised component contracts.

Each component declares its props model (its JSON schema is the contract), the permissions a user
must hold and its sandbox level. Props are validated before anything is emitted: invalid or
unsafe props (tags, ``javascript:`` / non-https URLs, inline handlers) render nothing and the
text fallback is returned instead. Sandboxed components run in an iframe with
``sandbox="allow-scripts"`` and NEVER ``allow-same-origin`` (requirements §12–16).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_UNSAFE = re.compile(r"(?i)(<|>|javascript:|data:|vbscript:|\bon[a-z]+\s*=)")
SANDBOX_ATTRIBUTE = "allow-scripts"


def _safe_text(value: str) -> str:
    if _UNSAFE.search(value):
        raise ValueError("markup, script URLs and inline handlers are not allowed")
    return value


def _safe_url(value: str) -> str:
    _safe_text(value)
    if not (value.startswith("https://") or (value.startswith("/") and not value.startswith("//"))):
        raise ValueError("URLs must be https:// or relative")
    return value


class _Props(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    aria_label: str = Field(min_length=1, max_length=200)

    @field_validator("*", mode="after")
    @classmethod
    def _no_markup(cls, value: Any) -> Any:
        return _check_nested(value)


def _check_nested(value: Any) -> Any:
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_nested(item)
    if isinstance(value, BaseModel):
        for item in value.__dict__.values():
            _check_nested(item)
    return value


class OrderItem(_Props):
    aria_label: str = Field(default="item", min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=120)
    quantity: int = Field(gt=0, le=10_000)
    price_cents: int = Field(ge=0, le=10**12)


class OrderStatusCard(_Props):
    """The order tracking card (requirements §12 ``order-status-card``) with an optional route map."""

    order_id: str = Field(min_length=1, max_length=64)
    status: Literal["pending", "processing", "shipped", "delivered", "cancelled"]
    items: list[OrderItem] = Field(default_factory=list, max_length=100)
    tracking_number: str | None = Field(default=None, max_length=50)
    estimated_delivery: str | None = Field(
        default=None, pattern=r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?)?$"
    )
    allowed_actions: list[Literal["track", "cancel", "return", "reorder"]] = Field(
        default_factory=list, max_length=4
    )
    route: list[tuple[float, float]] = Field(
        default_factory=list, max_length=500, description="[lat, lng] polyline"
    )
    shipments: list[str] = Field(default_factory=list, max_length=10, description="one line per shipment")


class FareBreakdown(_Props):
    quote_id: str = Field(min_length=1, max_length=64)
    product: Literal["standard", "comfort", "xl"]
    base_fare_cents: int = Field(ge=0, le=10**9)
    surge_multiplier: float = Field(ge=1.0, le=3.5)
    total_cents: int = Field(ge=0, le=10**9)
    platform_fee_cents: int = Field(ge=0, le=10**9)
    valid_for_s: int = Field(ge=0, le=3600)


class RefundForm(_Props):
    order_id: str = Field(min_length=1, max_length=64)
    max_refund_cents: int = Field(ge=0, le=10**12)
    reasons: list[str] = Field(min_length=1, max_length=10)
    submit_url: str = Field(max_length=300, description="internal relative route only")
    requires_confirmation: Literal[True] = True

    @field_validator("submit_url")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith("//"):
            raise ValueError("forms submit only to internal relative routes")
        return _safe_url(value)


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    name: str
    version: str
    props: type[_Props]
    permissions: frozenset[str]
    sandbox: Literal["trusted", "sandboxed"]
    description: str

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def json_schema(self) -> dict[str, Any]:
        return self.props.model_json_schema()

    def iframe_sandbox(self) -> str | None:
        """The iframe ``sandbox`` attribute for sandboxed components (never allow-same-origin)."""
        return SANDBOX_ATTRIBUTE if self.sandbox == "sandboxed" else None


@dataclass(frozen=True, slots=True)
class Rendered:
    component: str | None  # "name@version", None when nothing may be rendered
    props: dict[str, Any] | None
    fallback_text: str
    sandbox: str | None


class ComponentRegistry:
    """Components keyed ``name@version`` with a ``latest`` alias; registration at run time."""

    def __init__(self, specs: Iterable[ComponentSpec] = ()) -> None:
        self._specs: dict[str, ComponentSpec] = {}
        self._latest: dict[str, str] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: ComponentSpec) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9-]{1,40}", spec.name) or not re.fullmatch(
            r"\d+\.\d+\.\d+", spec.version
        ):
            raise ValueError("component name must be kebab-case and version semver")
        if spec.key in self._specs:
            raise ValueError(f"component {spec.key} is already registered")
        self._specs[spec.key] = spec
        current = self._latest.get(spec.name)
        if current is None or _semver(spec.version) > _semver(current):
            self._latest[spec.name] = spec.version

    def get(self, name: str, version: str = "latest") -> ComponentSpec:
        resolved = self._latest.get(name) if version == "latest" else version
        spec = self._specs.get(f"{name}@{resolved}")
        if spec is None:
            raise KeyError(f"no component {name}@{version}")
        return spec

    def specs(self) -> list[ComponentSpec]:
        """Every registered version of every component, by key."""
        return [self._specs[key] for key in sorted(self._specs)]

    def permitted(self, permissions: Iterable[str]) -> list[ComponentSpec]:
        """The latest version of every component whose permissions the user holds all of."""
        held = frozenset(permissions)
        return [self.get(name) for name in sorted(self._latest) if self.get(name).permissions <= held]

    def to_mcp_tools(self, permissions: Iterable[str]) -> list[dict[str, Any]]:
        """``render_<name>`` tool descriptions for the permitted components only."""
        return [
            {
                "name": f"render_{spec.name.replace('-', '_')}",
                "description": spec.description,
                "inputSchema": spec.json_schema(),
                "version": spec.version,
            }
            for spec in self.permitted(permissions)
        ]

    def render(
        self, name: str, props: Mapping[str, Any], permissions: Iterable[str], fallback_text: str
    ) -> Rendered:
        """Validated props of a permitted component, or only ``fallback_text``."""
        try:
            spec = self.get(name)
        except KeyError:
            return Rendered(None, None, fallback_text, None)
        if not spec.permissions <= frozenset(permissions):
            return Rendered(None, None, fallback_text, None)
        try:
            model = spec.props.model_validate(dict(props))
        except ValidationError:
            return Rendered(None, None, fallback_text, None)
        return Rendered(spec.key, model.model_dump(mode="json"), fallback_text, spec.iframe_sandbox())


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def default_registry() -> ComponentRegistry:
    return ComponentRegistry(
        [
            ComponentSpec(
                "order-status-card",
                "1.0.0",
                OrderStatusCard,
                frozenset({"orders:read"}),
                "trusted",
                "Order tracking card with shipments and a route map",
            ),
            ComponentSpec(
                "fare-breakdown",
                "1.0.0",
                FareBreakdown,
                frozenset({"trips:read"}),
                "trusted",
                "Ride fare breakdown: base fare, surge, platform fee",
            ),
            ComponentSpec(
                "refund-form",
                "1.0.0",
                RefundForm,
                frozenset({"orders:read", "payments:write"}),
                "sandboxed",
                "Refund request form; submitting needs a confirmation",
            ),
        ]
    )
