"""Typed settings of the fulfillment module (environment prefix ``HEXCITY_FULFILLMENT_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Manual (virtual) clock default for ``vrp_max_iterations``: plans then depend on input + seed
# only, not on how fast the machine was (see docs/fulfillment.md "Virtual time").
VIRTUAL_VRP_MAX_ITERATIONS = 500


class FulfillmentSettings(BaseSettings):
    """Solver budgets, request limits and allocation costs."""

    model_config = SettingsConfigDict(env_prefix="HEXCITY_FULFILLMENT_", extra="ignore")

    enabled: bool = Field(default=True, description="mount the fulfillment and /vrp/v1 APIs")

    vrp_time_limit_s: float = Field(default=15.0, gt=0, le=3600, description="interactive re-plan budget")
    vrp_nightly_time_limit_s: float = Field(default=300.0, gt=0, le=3600, description="nightly plan budget")
    vrp_max_time_limit_s: float = Field(
        default=60.0, gt=0, le=3600, description="most a caller may ask over HTTP"
    )
    vrp_seed: int = Field(default=0, ge=0)
    vrp_max_iterations: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="stop PyVRP after this many iterations (the time limit stays as a safety net); "
        "None: time limit only. On the manual clock it defaults to VIRTUAL_VRP_MAX_ITERATIONS",
    )
    vrp_backend: str = Field(default="pyvrp", pattern="^(pyvrp|ortools)$")
    max_tasks: int = Field(default=2_000, ge=1, le=20_000, description="jobs + 2 x shipments per problem")
    max_vehicles: int = Field(default=500, ge=1, le=5_000)
    max_locations: int = Field(default=2_500, ge=2, le=20_000)
    max_body_bytes: int = Field(default=20_000_000, ge=1_000)
    split_penalty_minor: int = Field(default=500, ge=0, description="P_split per extra parcel (5.00)")
    allocation_time_limit_s: float = Field(default=10.0, gt=0, le=600, description="CP-SAT batch budget")
    max_order_lines: int = Field(default=100, ge=1, le=10_000)
    max_batch_orders: int = Field(default=5_000, ge=1, le=100_000)

    def for_virtual_clock(self) -> FulfillmentSettings:
        """These settings on the platform's manual clock: an iteration-limited search (the default
        ``VIRTUAL_VRP_MAX_ITERATIONS`` unless ``vrp_max_iterations`` is set), so a plan is a pure
        function of its input and seed."""
        if self.vrp_max_iterations is not None:
            return self
        return self.model_copy(update={"vrp_max_iterations": VIRTUAL_VRP_MAX_ITERATIONS})
