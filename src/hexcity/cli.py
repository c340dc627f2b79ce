"""The ``hexcity`` command line: build graphs and serve the routing API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from hexcity import __version__
from hexcity.demo import demo as demo_command
from hexcity.fulfillment.commands import vrp_app
from hexcity.infra import configure_logging
from hexcity.kernel import HexcityError
from hexcity.simulate import simulate_command

if TYPE_CHECKING:
    from hexcity.infra.admin import AdminSettings
    from hexcity.infra.auth import AuthSettings

app = typer.Typer(help="hexcity: the backend of an on-demand super-app.", no_args_is_help=True)
routing_app = typer.Typer(help="Road routing: build graph artefacts.", no_args_is_help=True)
app.add_typer(routing_app, name="routing")
auth_app = typer.Typer(help="Access: service API keys.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")
db_app = typer.Typer(help="Database: schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(vrp_app, name="vrp")
app.command(name="demo")(demo_command)
app.command(name="simulate")(simulate_command)
console = Console(stderr=True, soft_wrap=True)

STAGE_LABELS = {
    "read": "reading OSM",
    "build": "building network",
    "contract": "contracting",
    "write": "writing",
}


class _Bar:
    """Adapts the pipeline's progress(stage, done, total) callback to a rich progress bar."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self._tasks:
            label = STAGE_LABELS.get(stage, stage)
            self._tasks[stage] = self._progress.add_task(label, total=total or None)
        self._progress.update(self._tasks[stage], completed=done, total=total or None)


def _fail(exc: HexcityError) -> None:
    console.print(f"[red]error[/red] {exc.code}: {exc.message}")
    raise typer.Exit(code=2)


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
    log_json: Annotated[bool, typer.Option(help="log JSON lines")] = False,
) -> None:
    try:
        configure_logging(log_level, json=log_json)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def version() -> None:
    """Print the hexcity version."""
    typer.echo(__version__)


@routing_app.command("build")
def routing_build(
    pbf: Annotated[Path, typer.Argument(help="an .osm.pbf (or .osm) extract")],
    profile: Annotated[str, typer.Option(help="car, bike or foot")] = "car",
    out: Annotated[Path, typer.Option(help="artefact directory to write")] = Path("graphs/out"),
) -> None:
    """Import an OSM extract for one profile, contract it, and write a graph artefact."""
    from hexcity.routing import build_graph

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        try:
            result = build_graph(pbf, profile, out, progress=_Bar(progress))
        except HexcityError as exc:
            progress.stop()
            _fail(exc)
            return
    r = result.report
    table = Table(title=f"{result.path} ({result.graph_version})")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in [
        ("ways read / routable", f"{r.ways_read:,} / {r.ways_routable:,}"),
        ("restrictions read / applied", f"{r.restrictions_read:,} / {r.restrictions_applied:,}"),
        ("nodes kept / dropped (not in largest SCC)", f"{r.nodes_kept:,} / {r.nodes_dropped_scc:,}"),
        ("chains kept / dropped", f"{r.chains_kept:,} / {r.chains_dropped_scc:,}"),
        ("blocking barriers", f"{r.barriers_blocking:,}"),
        ("shortcuts", f"{result.shortcuts:,}"),
        ("import / contract", f"{result.import_s:.2f} s / {result.contract_s:.2f} s"),
    ]:
        table.add_row(key, value)
    Console().print(table)


@routing_app.command("info")
def routing_info(graph: Annotated[Path, typer.Argument(help="an artefact directory")]) -> None:
    """Print an artefact's manifest."""
    from hexcity.routing import read_manifest

    try:
        manifest = read_manifest(graph)
    except HexcityError as exc:
        _fail(exc)
        return
    manifest.pop("files", None)
    typer.echo(json.dumps(manifest, indent=2))


@app.command()
def serve(
    map_file: Annotated[
        Path | None, typer.Option("--map", help="an .osm.pbf: build (or reuse cached) graphs")
    ] = None,
    graph: Annotated[
        list[Path] | None, typer.Option("--graph", help="a prebuilt artefact dir (repeatable)")
    ] = None,
    profile: Annotated[
        list[str] | None, typer.Option(help="profiles to serve with --map (default car,bike,foot)")
    ] = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 5000,
) -> None:
    """Serve the OSRM-compatible routing API (readiness turns true once graphs are loaded)."""
    import asyncio

    import uvicorn

    from hexcity.api import create_app
    from hexcity.bootstrap import build_modules, build_platform, limits_from, start_loading
    from hexcity.infra.admin import run_with_admin
    from hexcity.routing import RoutingService, RoutingSettings

    if (map_file is None) == (not graph):
        console.print("[red]error[/red] give exactly one of --map PBF or --graph DIR")
        raise typer.Exit(code=2)
    settings = RoutingSettings()
    auth = _auth_settings(host)
    admin = _admin_settings()
    if map_file is not None and not map_file.is_file():
        console.print(f"[red]error[/red] InvalidMapFile: map file {map_file} does not exist")
        raise typer.Exit(code=2)
    service = RoutingService(limits_from(settings))
    try:
        start_loading(service, settings, graphs=list(graph or []), pbf=map_file, profiles=profile or None)
    except HexcityError as exc:
        _fail(exc)
    console.print(
        f"hexcity {__version__} serving on http://{host}:{port} (profiles: {', '.join(service.profiles())})"
    )
    console.print("Map data © OpenStreetMap contributors (ODbL)")
    platform = build_platform()
    modules = build_modules(service, platform)
    console.print(f"modules: {', '.join(m.name for m in modules) or 'none'}")
    config = uvicorn.Config(
        create_app(service, auth, platform, modules),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=10,
    )
    # the admin/diagnostics server (off unless HEXCITY_ADMIN_ENABLED) runs on the same loop
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(run_with_admin(config, admin))


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _auth_settings(host: str) -> AuthSettings:
    """Auth from the environment; with nothing configured on loopback, a local demo key.

    On any other address a server without keys refuses to start (exit 2).
    """
    from pydantic import ValidationError

    from hexcity.infra.auth import AuthSettings, generate_api_key

    try:
        return AuthSettings()
    except ValidationError as exc:
        if host not in LOOPBACK_HOSTS:
            console.print(f"[red]error[/red] AuthNotConfigured: {exc.errors()[0]['msg']}")
            raise typer.Exit(code=2) from None
    key, entry = generate_api_key("local-demo", {"routing:read"})
    console.print(
        "[yellow]auth: no keys configured; DEMO key for this process only (loopback):[/yellow]\n"
        f"  export HEXCITY_KEY={key}\n"
        '  curl -H "X-API-Key: $HEXCITY_KEY" ...'
    )
    return AuthSettings(demo_mode=True, api_keys=[entry])


def _admin_settings() -> AdminSettings:
    from pydantic import ValidationError

    from hexcity.infra.admin import AdminSettings

    try:
        return AdminSettings()
    except ValidationError as exc:
        console.print(f"[red]error[/red] InvalidAdminSettings: {exc.errors()[0]['msg']}")
        raise typer.Exit(code=2) from None


@db_app.command("upgrade")
def db_upgrade(
    url: Annotated[str, typer.Option(help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db")],
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Migrate the SQL schema (outbox, processed_events) to REVISION; a no-op when already there."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from hexcity.infra.migrate import current, upgrade

    try:
        upgrade(url, revision)
        at = current(url)
    except (CommandError, SQLAlchemyError) as exc:
        console.print(f"[red]error[/red] MigrationFailed: {exc}")
        raise typer.Exit(code=2) from None
    typer.echo(f"database at revision {at}")  # the URL is not echoed: it may hold a password


@auth_app.command("key")
def auth_key(
    key_id: Annotated[str, typer.Argument(help="a name for the key, [A-Za-z0-9-]")],
    scope: Annotated[list[str] | None, typer.Option(help="scope to grant (repeatable)")] = None,
) -> None:
    """Make a service API key: prints the key (give it to the caller) and the settings entry."""
    from hexcity.infra.auth import generate_api_key

    try:
        key, entry = generate_api_key(key_id, set(scope or ["routing:read"]))
    except ValueError as exc:
        console.print(f"[red]error[/red] InvalidValue: {exc}")
        raise typer.Exit(code=2) from None
    typer.echo(f"key:   {key}")
    typer.echo(f"entry: {entry}    (add to HEXCITY_AUTH_API_KEYS on the server)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
