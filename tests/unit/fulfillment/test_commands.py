from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hexcity.fulfillment.commands import vrp_app

VRP = Path(__file__).resolve().parents[2] / "data" / "vrp"  # copies of the instances, see PROVENANCE.md
runner = CliRunner()


def test_vrplib_instance_prints_the_objective_last() -> None:
    result = runner.invoke(
        vrp_app, ["solve", str(VRP / "pdptw" / "lc101.vrp"), "--seconds", "1", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("objective=")
    objective = float(last.removeprefix("objective="))
    assert 828.937 <= objective < 828.937 * 1.05  # BKS 828.937 (x1000 convention, 3 decimals)
    assert len(last.split(".")[1]) == 3


def test_json_output_has_routes_and_the_objective_line() -> None:
    result = runner.invoke(vrp_app, ["solve", str(VRP / "vrptw" / "C101.vrp"), "--seconds", "1", "--json"])
    assert result.exit_code == 0, result.output
    *body, last = result.output.strip().splitlines()
    document = json.loads("\n".join(body))
    assert document["convention"] == "dimacs"
    assert document["feasible"] is True
    visited = sorted(v for r in document["routes"] for v in r["visits"])
    assert visited == list(range(1, 101))
    assert last == f"objective={document['objective']:.1f}"


def test_vroom_json_file_is_detected_by_content(tmp_path: Path) -> None:
    line = [[abs(a - b) * 10 for b in range(3)] for a in range(3)]
    problem = {
        "vehicles": [{"id": 1, "start_index": 0, "end_index": 0}],
        "jobs": [{"id": 5, "location_index": 1}, {"id": 6, "location_index": 2}],
        "matrices": {"car": {"durations": line}},
    }
    path = tmp_path / "problem.txt"
    path.write_text(json.dumps(problem))
    result = runner.invoke(vrp_app, ["solve", str(path), "--seconds", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    body, last = lines[lines.index("{") : -1], lines[-1]  # log lines may come first
    out = json.loads("\n".join(body))
    assert [s["type"] for s in out["routes"][0]["steps"]] == ["start", "job", "job", "end"]
    assert last == "objective=40"


def test_bad_input_exits_2_with_the_error_code(tmp_path: Path) -> None:
    missing = runner.invoke(vrp_app, ["solve", str(tmp_path / "nope.vrp")])
    assert missing.exit_code == 2
    assert "error InvalidProblem" in missing.output
    bad_json = tmp_path / "p.json"
    bad_json.write_text("{not json")
    result = runner.invoke(vrp_app, ["solve", str(bad_json)])
    assert result.exit_code == 2
    assert "not valid JSON" in result.output
    zero = runner.invoke(vrp_app, ["solve", str(VRP / "vrptw" / "C101.vrp"), "--seconds", "0"])
    assert zero.exit_code == 2
    assert "time_limit_s" in zero.output
