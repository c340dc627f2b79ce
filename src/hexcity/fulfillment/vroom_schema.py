"""The VROOM problem schema (pydantic): jobs, shipments, vehicles, matrices, validated at the boundary."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VroomStep(_Strict):
    id: int
    location: list[float] | None = Field(default=None, min_length=2, max_length=2)
    location_index: int | None = Field(default=None, ge=0)
    setup: int = Field(default=0, ge=0)
    service: int = Field(default=0, ge=0)
    time_windows: list[list[int]] | None = None
    description: str | None = None


class VroomJob(VroomStep):
    delivery: list[int] = Field(default_factory=list)
    pickup: list[int] = Field(default_factory=list)
    amount: list[int] | None = None  # legacy: same as delivery
    skills: list[int] = Field(default_factory=list)
    priority: int = Field(default=0, ge=0, le=100)


class VroomShipment(_Strict):
    pickup: VroomStep
    delivery: VroomStep
    amount: list[int] = Field(default_factory=list)
    skills: list[int] = Field(default_factory=list)
    priority: int = Field(default=0, ge=0, le=100)


class VroomCosts(_Strict):
    fixed: int = Field(default=0, ge=0)
    per_hour: int = Field(default=3600, ge=0)
    per_km: int = Field(default=0, ge=0)


class VroomVehicle(_Strict):
    id: int
    profile: str = "car"
    start: list[float] | None = Field(default=None, min_length=2, max_length=2)
    start_index: int | None = Field(default=None, ge=0)
    end: list[float] | None = Field(default=None, min_length=2, max_length=2)
    end_index: int | None = Field(default=None, ge=0)
    capacity: list[int] = Field(default_factory=list)
    skills: list[int] = Field(default_factory=list)
    time_window: list[int] | None = Field(default=None, min_length=2, max_length=2)
    max_travel_time: int | None = Field(default=None, ge=0)
    max_distance: int | None = Field(default=None, ge=0)
    costs: VroomCosts = Field(default_factory=VroomCosts)
    description: str | None = None
    speed_factor: float = 1.0
    max_tasks: int | None = None
    breaks: list[Any] | None = None
    steps: list[Any] | None = None

    @model_validator(mode="after")
    def _supported(self) -> VroomVehicle:
        if self.speed_factor != 1.0 or self.max_tasks is not None or self.breaks or self.steps:
            raise ValueError("speed_factor, max_tasks, breaks and steps are not supported")
        if self.start is None and self.start_index is None and self.end is None and self.end_index is None:
            raise ValueError("a vehicle needs a start or an end")
        return self


class VroomMatrix(_Strict):
    durations: list[list[int]] | None = None
    distances: list[list[int]] | None = None
    costs: list[list[int]] | None = None


class VroomProblem(BaseModel):
    model_config = ConfigDict(extra="ignore")  # "options" and friends are accepted and unused

    jobs: list[VroomJob] = Field(default_factory=list)
    shipments: list[VroomShipment] = Field(default_factory=list)
    vehicles: list[VroomVehicle] = Field(min_length=1)
    matrices: dict[str, VroomMatrix] | None = None
    matrix: list[list[int]] | None = None  # legacy: durations of the only profile
