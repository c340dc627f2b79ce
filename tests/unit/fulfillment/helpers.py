"""Small hand-made problems shared by the fulfillment unit tests."""

from __future__ import annotations

import numpy as np

from hexcity.fulfillment.domain.problem import I64, Depot, Job, Shipment, VehicleType, VrpProblem

# Points on a line at x = 0 (depot), 10, 20, 30, 40: distance = duration = |dx|.
XS = [0, 10, 20, 30, 40]


def line_matrix(xs: list[int] = XS) -> I64:
    a = np.asarray(xs, dtype=np.int64)
    out: I64 = np.abs(a[:, None] - a[None, :])
    return out


def line_problem(
    jobs: list[Job] | None = None,
    shipments: list[Shipment] | None = None,
    vehicles: list[VehicleType] | None = None,
) -> VrpProblem:
    m = line_matrix()
    return VrpProblem(
        distances=[m],
        durations=[m],
        depots=[Depot(0)],
        vehicle_types=vehicles or [VehicleType(count=2, capacity=(10,))],
        jobs=jobs if jobs is not None else [Job(location=i, delivery=(3,)) for i in range(1, 5)],
        shipments=shipments or [],
    )
