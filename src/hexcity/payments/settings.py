"""Typed settings of the payments module (environment prefix ``HEXCITY_PAYMENTS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DAY_S = 86_400


class PaymentsSettings(BaseSettings):
    """Limits and knobs of the ledger, the payment API, the sagas and the campaigns."""

    model_config = SettingsConfigDict(env_prefix="HEXCITY_PAYMENTS_", extra="ignore")

    enabled: bool = Field(default=True, description="mount the payments API and run its worker")
    events_topic: str = Field(default="payments.events", min_length=1, max_length=255)
    idempotency_retention_s: int = Field(
        default=DAY_S, ge=DAY_S, le=30 * DAY_S, description="keys are kept at least this long, then pruned"
    )
    max_batch_size: int = Field(default=1000, ge=1, le=8190, description="transfers per ledger batch call")
    retry_max_attempts: int = Field(default=5, ge=1, le=20)
    retry_base_delay_s: float = Field(default=0.025, ge=0, le=5)
    retry_max_delay_s: float = Field(default=0.5, ge=0, le=30)
    platform_fee_bps: int = Field(default=1500, ge=0, le=10_000, description="ride fee: 15 % of the fare")
    ride_authorization_timeout_s: int = Field(default=4 * 3600, ge=60, le=7 * DAY_S)
    order_payment_timeout_s: int = Field(default=900, ge=10, le=DAY_S)
    reconciliation_threshold_minor: int = Field(
        default=0, ge=0, description="differences above this many minor units are flagged (0 = any)"
    )
    max_settlement_rows: int = Field(default=1_000_000, ge=1, le=10_000_000)
    prune_batch_size: int = Field(default=10_000, ge=1, le=1_000_000)
    maintenance_interval_s: float = Field(
        default=30.0, ge=0.01, le=3600, description="expire overdue authorisations, prune keys this often"
    )
