"""The hexcity command line: building graphs, clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import EXTRACTS
from typer.testing import CliRunner

from hexcity.cli import app

runner = CliRunner()


def test_build_writes_an_artefact_and_reports_what_was_dropped(tmp_path: Path) -> None:
    out = tmp_path / "andorra-car"
    result = runner.invoke(
        app, ["routing", "build", str(EXTRACTS["andorra"]), "--profile", "driving", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "nodes kept / dropped" in result.output
    assert (out / "manifest.json").is_file()
    info = runner.invoke(app, ["routing", "info", str(out)])
    assert info.exit_code == 0
    manifest = json.loads(info.output)
    assert manifest["profile"] == "car"
    assert manifest["report"]["restrictions_applied"] == 63
    assert manifest["report"]["nodes_dropped_scc"] == 84


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "InvalidMapFile"),
        (b"this is not an OSM file\n", "InvalidMapFile"),
    ],
)
def test_bad_map_files_exit_2_with_a_code(tmp_path: Path, content: bytes | None, message: str) -> None:
    pbf = tmp_path / "map.osm.pbf"
    if content is not None:
        pbf.write_bytes(content)
    result = runner.invoke(app, ["routing", "build", str(pbf), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_truncated_pbf_is_refused(tmp_path: Path) -> None:
    pbf = tmp_path / "cut.osm.pbf"
    pbf.write_bytes(EXTRACTS["andorra"].read_bytes()[:100_000])
    result = runner.invoke(app, ["routing", "build", str(pbf), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "InvalidMapFile" in result.output
    assert not (tmp_path / "out").exists()


def test_unknown_profile_and_bad_artefact(tmp_path: Path) -> None:
    result = runner.invoke(app, ["routing", "build", str(EXTRACTS["andorra"]), "--profile", "truck"])
    assert result.exit_code == 2
    assert "InvalidProfile" in result.output
    info = runner.invoke(app, ["routing", "info", str(tmp_path)])
    assert info.exit_code == 2
    assert "InvalidArtefact" in info.output


def test_serve_needs_exactly_one_source() -> None:
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "exactly one of --map PBF or --graph DIR" in result.output


def test_auth_key_prints_a_key_and_its_settings_entry() -> None:
    from hexcity.infra.auth import ApiKeyStore

    result = runner.invoke(app, ["auth", "key", "dispatch", "--scope", "routing:read"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.output.splitlines() if line)
    key, entry = lines["key"].strip(), lines["entry"].split()[0]
    assert key.startswith("hx_dispatch_")
    principal = ApiKeyStore.from_entries([entry]).verify(key)
    assert principal.scopes == frozenset({"routing:read"})
    bad = runner.invoke(app, ["auth", "key", "dispatch", "--scope", "root"])
    assert bad.exit_code == 2
    assert "unknown scopes" in bad.output


def test_serve_without_keys_refuses_a_public_address(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HEXCITY_AUTH_API_KEYS", "HEXCITY_AUTH_JWT_SECRET", "HEXCITY_AUTH_DEMO_MODE"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["serve", "--graph", "/nonexistent", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "AuthNotConfigured" in result.output


def test_db_upgrade_migrates_sqlite_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hexcity.db'}"
    for _ in range(2):
        result = runner.invoke(app, ["db", "upgrade", "--url", url])
        assert result.exit_code == 0, result.output
        assert result.output.strip().splitlines()[-1] == "database at revision 0001"
    bad = runner.invoke(app, ["db", "upgrade", "--url", url, "--revision", "9999"])
    assert bad.exit_code == 2
    assert "MigrationFailed" in bad.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clock", "sundial"], "--clock must be virtual or wall"),
        (["--minutes", "0"], "--minutes"),
        (["--speed", "1000"], "--speed"),
    ],
)
def test_simulate_refuses_bad_options_before_running(tmp_path: Path, args: list[str], message: str) -> None:
    report = tmp_path / "never.json"
    result = runner.invoke(app, ["simulate", *args, "--report", str(report)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not report.exists()
