"""``hexcity vrp``: solve a VRPLIB instance or a VROOM JSON problem from the command line.

    hexcity vrp solve X-n101-k25.vrp --seconds 10 --seed 1          # last line: objective=27591
    hexcity vrp solve problem.json --seconds 5 --json               # VROOM solution JSON
    hexcity vrp solve problem.json --graph graphs/andorra-car       # [lon, lat] locations

The input kind is decided by content: a file whose first non-blank character is ``{`` is VROOM
JSON, anything else is VRPLIB. The objective follows the instance's convention (VRPLIB) or is
VROOM's summary cost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hexcity.fulfillment.adapters.ortools_solver import OrToolsSolver
from hexcity.fulfillment.adapters.pyvrp_solver import PyVrpSolver
from hexcity.fulfillment.adapters.road_matrix import RoutingRoadMatrix
from hexcity.fulfillment.adapters.vrplib_reader import read_vrplib
from hexcity.fulfillment.domain.problem import VrpProblem
from hexcity.fulfillment.domain.solution import VrpSolution
from hexcity.fulfillment.domain.solving import SolverParams
from hexcity.fulfillment.errors import InvalidProblem
from hexcity.fulfillment.ports import RoadMatrix, VrpSolver
from hexcity.fulfillment.service import VrpService
from hexcity.fulfillment.settings import FulfillmentSettings
from hexcity.kernel import HexcityError
from hexcity.routing import RoutingEngine

vrp_app = typer.Typer(
    help="Vehicle routing: solve VRPLIB instances and VROOM JSON problems.", no_args_is_help=True
)

MAX_INPUT_BYTES = 200_000_000


@vrp_app.callback()
def vrp_main() -> None:
    """Vehicle routing: solve VRPLIB instances and VROOM JSON problems."""


@vrp_app.command("solve")
def solve_command(
    instance: Annotated[Path, typer.Argument(help="a .vrp (VRPLIB) or .json (VROOM) file")],
    seconds: Annotated[float, typer.Option(help="search time limit in seconds")] = 10.0,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same input: same routes)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the full routes as JSON")] = False,
    backend: Annotated[str, typer.Option(help="pyvrp or ortools")] = "pyvrp",
    graph: Annotated[
        Path | None, typer.Option(help="routing artefact for VROOM [lon, lat] locations")
    ] = None,
) -> None:
    """Solve INSTANCE; the last line printed is ``objective=<number>``."""
    try:
        params = SolverParams(time_limit_s=seconds, seed=seed)
    except ValueError as exc:
        _fail("InvalidInput", str(exc))
    try:
        text = _read(instance)
        solver = _solver(backend)
        if text.lstrip().startswith("{"):
            _solve_vroom(text, solver, params, as_json, graph)
        else:
            _solve_vrplib(instance, solver, params, as_json)
    except HexcityError as exc:
        _fail(exc.code, exc.message)


def _solve_vrplib(path: Path, solver: VrpSolver, params: SolverParams, as_json: bool) -> None:
    problem = read_vrplib(path)
    solution = solver.solve(problem, params)
    objective = problem.objective.text(solution.cost)
    if as_json:
        typer.echo(json.dumps(vrplib_solution_json(problem, solution), indent=2))
    else:
        typer.echo(f"instance={problem.name} convention={problem.objective.convention}")
        typer.echo(
            f"routes={len(solution.routes)} unassigned={len(solution.unassigned)} "
            f"feasible={solution.feasible} iterations={solution.stats.iterations} "
            f"runtime_s={solution.stats.runtime_s:.2f}"
        )
        for v in solution.violations[:10]:
            typer.echo(f"violation: {v}")
    typer.echo(f"objective={objective}")


def _solve_vroom(
    text: str, solver: VrpSolver, params: SolverParams, as_json: bool, graph: Path | None
) -> None:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidProblem(f"not valid JSON: {exc}") from exc
    settings = FulfillmentSettings(vrp_max_time_limit_s=3600)
    service = VrpService(settings, solver, _road(graph))
    out = service.solve_vroom(payload, params)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        summary = out["summary"]
        typer.echo(
            f"routes={summary['routes']} unassigned={summary['unassigned']} duration={summary['duration']} "
            f"distance={summary['distance']} feasible={out['stats']['feasible']}"
        )
        for task in out["unassigned"]:
            typer.echo(f"unassigned {task['type']} {task['id']}: {task['reason']}")
    typer.echo(f"objective={out['summary']['cost']}")


def vrplib_solution_json(problem: VrpProblem, solution: VrpSolution) -> dict[str, Any]:
    """Routes as VRPLIB location ids (depot excluded), with per-stop times, plus the objective."""
    return {
        "instance": problem.name,
        "convention": problem.objective.convention,
        "objective": problem.objective.value(solution.cost),
        "feasible": solution.feasible,
        "violations": solution.violations,
        "routes": [
            {
                "vehicle_type": r.vehicle_type,
                "visits": [s.location for s in r.stops],
                "arrivals": [s.arrival for s in r.stops],
                "distance": r.distance,
                "start_time": r.start_time,
                "end_time": r.end_time,
            }
            for r in solution.routes
        ],
        "unassigned": [{"kind": u.kind, "index": u.index, "reason": u.reason} for u in solution.unassigned],
        "stats": {
            "backend": solution.stats.backend,
            "seed": solution.stats.seed,
            "iterations": solution.stats.iterations,
            "runtime_s": round(solution.stats.runtime_s, 3),
        },
    }


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise InvalidProblem(f"{path.name} is larger than {MAX_INPUT_BYTES} bytes")
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidProblem(f"cannot read {path}: {exc}") from exc


def _solver(backend: str) -> VrpSolver:
    if backend == "pyvrp":
        return PyVrpSolver()
    if backend == "ortools":
        return OrToolsSolver()
    raise InvalidProblem("backend must be pyvrp or ortools")


def _road(graph: Path | None) -> RoadMatrix | None:
    if graph is None:
        return None
    engine = RoutingEngine.open(graph)
    return RoutingRoadMatrix({engine.profile: engine})


def _fail(code: str, message: str) -> None:
    typer.echo(f"error {code}: {message}", err=True)
    raise typer.Exit(code=2)
