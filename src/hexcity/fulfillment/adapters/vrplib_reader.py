"""Read VRPLIB instances (CVRPLIB X, Solomon, Gehring-Homberger, Li & Lim) into our problem model.

Objective conventions (the ones BKS.csv uses, see ../shared/data/vrp/BKS.csv):

- ``round``: CVRP, Euclidean distance rounded to the nearest integer (CVRPLIB); unlimited fleet
  unless the file has VEHICLES.
- ``dimacs``: VRPTW (Solomon, Gehring-Homberger), distances, times and service times x10 and
  truncated, i.e. truncated to 0.1; objective is total distance / 10; fleet <= VEHICLES.
- ``exact``: PDPTW (Li & Lim), x1000 and rounded; objective is total distance / 1000.

Durations equal distances (the VRPLIB convention). Parsing is done by ``vrplib`` (a PyVRP
dependency); everything after that is ours.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import vrplib

from hexcity.fulfillment.domain.problem import (
    I64,
    UNBOUNDED,
    Depot,
    Job,
    Objective,
    Shipment,
    VehicleType,
    VrpProblem,
)
from hexcity.fulfillment.domain.solution import PlannedRoute, SolverStats, Stop, VrpSolution
from hexcity.fulfillment.errors import InvalidProblem

Convention = Literal["round", "dimacs", "exact"]
MAX_VRPLIB_DIMENSION = 20_000

_SCALE: dict[str, tuple[int, int, Callable[[npt.NDArray[Any]], I64]]] = {
    "round": (1, 0, lambda v: np.round(v).astype(np.int64)),
    "dimacs": (10, 1, lambda v: (10 * np.asarray(v, dtype=np.float64)).astype(np.int64)),
    "exact": (1000, 3, lambda v: np.round(1000 * np.asarray(v, dtype=np.float64)).astype(np.int64)),
}


def default_convention(instance: dict[str, Any]) -> Convention:
    """The instance family's convention: exact for PDPTW, dimacs with time windows, else round."""
    if "pickup_and_delivery" in instance:
        return "exact"
    if "time_window" in instance:
        return "dimacs"
    return "round"


def read_vrplib(path: Path | str, convention: Convention | None = None) -> VrpProblem:
    """Read a ``.vrp`` file. Raises InvalidProblem for an unreadable or unsupported instance."""
    path = Path(path)
    try:
        instance = vrplib.read_instance(str(path))
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise InvalidProblem(f"cannot read VRPLIB instance {path.name}: {exc}") from exc
    dimension = int(instance.get("dimension", 0))
    if not 2 <= dimension <= MAX_VRPLIB_DIMENSION:
        raise InvalidProblem(f"{path.name}: DIMENSION must be in [2, {MAX_VRPLIB_DIMENSION}]")
    if "edge_weight" not in instance:
        raise InvalidProblem(f"{path.name}: no coordinates or explicit edge weights")
    return from_instance(
        instance, convention or default_convention(instance), str(instance.get("name", path.stem))
    )


def from_instance(instance: dict[str, Any], convention: Convention, name: str = "") -> VrpProblem:
    """Our model from a parsed ``vrplib`` instance dict."""
    scale, decimals, conv = _SCALE[convention]
    dimension = int(instance["dimension"])
    matrix = conv(instance["edge_weight"])
    depot_ids = [int(d) for d in np.atleast_1d(instance.get("depot", np.array([0])))]
    if depot_ids != list(range(len(depot_ids))):
        raise InvalidProblem(f"{name}: depots must be the first locations")
    n_depots = len(depot_ids)
    windows = _windows(instance, dimension, conv)
    service = _service(instance, dimension, n_depots, conv)
    depots = [Depot(i, int(windows[i, 0]), int(windows[i, 1]), name=f"depot{i}") for i in range(n_depots)]
    jobs: list[Job] = []
    shipments: list[Shipment] = []
    if "pickup_and_delivery" in instance:
        shipments = _shipments(np.asarray(instance["pickup_and_delivery"]), n_depots, windows, service)
    else:
        demand = np.atleast_1d(instance.get("demand", np.zeros(dimension, dtype=np.int64)))
        jobs = [
            Job(
                location=i,
                delivery=(int(demand[i]),),
                service=int(service[i]),
                tw_early=int(windows[i, 0]),
                tw_late=int(windows[i, 1]),
                name=str(i),
            )
            for i in range(n_depots, dimension)
        ]
    n_stops = len(jobs) + 2 * len(shipments)
    count = int(instance.get("vehicles", n_stops))
    capacity = int(instance.get("capacity", UNBOUNDED))
    vehicle_types = [
        VehicleType(
            count=count,
            capacity=(capacity,),
            start_depot=0,
            end_depot=0,
            tw_early=int(windows[0, 0]),
            tw_late=int(windows[0, 1]),
            name="vehicle",
        )
    ]
    coords = np.asarray(instance.get("node_coord", np.zeros((dimension, 2))), dtype=np.float64)
    return VrpProblem(
        distances=[matrix],
        durations=[matrix],
        depots=depots,
        vehicle_types=vehicle_types,
        jobs=jobs,
        shipments=shipments,
        coordinates=[(float(x), float(y)) for x, y in coords],
        objective=Objective(scale, decimals, convention),
        name=name,
    )


def _windows(instance: dict[str, Any], dimension: int, conv: Callable[[npt.NDArray[Any]], I64]) -> I64:
    if "pickup_and_delivery" in instance:
        return conv(np.asarray(instance["pickup_and_delivery"])[:, 1:3])
    if "time_window" in instance:
        return conv(np.asarray(instance["time_window"]))
    out = np.zeros((dimension, 2), dtype=np.int64)
    out[:, 1] = UNBOUNDED
    return out


def _service(
    instance: dict[str, Any], dimension: int, n_depots: int, conv: Callable[[npt.NDArray[Any]], I64]
) -> I64:
    if "pickup_and_delivery" in instance:
        return conv(np.asarray(instance["pickup_and_delivery"])[:, 3])
    raw = instance.get("service_time", 0)
    values = (
        np.full(dimension, raw, dtype=np.float64) if np.isscalar(raw) else np.asarray(raw, dtype=np.float64)
    )
    values[:n_depots] = 0
    return conv(values)


def _shipments(rows: npt.NDArray[Any], n_depots: int, windows: I64, service: I64) -> list[Shipment]:
    """Li & Lim rows: demand, early, late, service, pickup sibling, delivery sibling (1-based ids)."""
    out: list[Shipment] = []
    for loc in range(n_depots, rows.shape[0]):
        pick_id, deliv_id = int(rows[loc, 4]), int(rows[loc, 5])
        if pick_id != 0 or deliv_id <= 0:
            continue
        deliv = deliv_id - 1
        if not n_depots <= deliv < rows.shape[0] or int(rows[deliv, 4]) - 1 != loc:
            raise InvalidProblem(f"location {loc}: its delivery {deliv} does not point back to it")
        out.append(
            Shipment(
                pickup_location=loc,
                delivery_location=deliv,
                amount=(int(rows[loc, 0]),),
                pickup_service=int(service[loc]),
                pickup_tw_early=int(windows[loc, 0]),
                pickup_tw_late=int(windows[loc, 1]),
                delivery_service=int(service[deliv]),
                delivery_tw_early=int(windows[deliv, 0]),
                delivery_tw_late=int(windows[deliv, 1]),
                name=f"{loc}->{deliv}",
            )
        )
    return out


def read_vrplib_solution(path: Path | str, problem: VrpProblem) -> VrpSolution:
    """A ``.sol`` file (routes of location ids) as our solution, for checking published solutions."""
    raw = vrplib.read_solution(str(path))
    by_location: dict[int, Stop] = {
        j.location: Stop("job", i, j.location) for i, j in enumerate(problem.jobs)
    }
    for i, s in enumerate(problem.shipments):
        by_location[s.pickup_location] = Stop("pickup", i, s.pickup_location)
        by_location[s.delivery_location] = Stop("delivery", i, s.delivery_location)
    routes = []
    for visits in raw["routes"]:
        if len(visits) == 0:
            continue
        try:
            stops = [by_location[int(v)] for v in visits]
        except KeyError as exc:
            raise InvalidProblem(f"solution visits unknown location {exc}") from exc
        routes.append(PlannedRoute(vehicle_type=0, stops=stops))
    # PyVRP/Instances' Li & Lim .sol files already state the cost x1000; the others in real units.
    raw_cost = float(raw.get("cost", 0))
    exact = problem.objective.convention == "exact"
    cost = round(raw_cost) if exact else round(raw_cost * problem.objective.scale)
    return VrpSolution(routes, [], cost, True, SolverStats(0.0, 0, 0, "file"))
