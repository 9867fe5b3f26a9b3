"""report.json: the run report object, strict JSON, reusable as a --baseline."""

import json
import math

import pytest

from tests.wsctl.report.reports import full_report, passing
from wsctl.errors import InvalidInput
from wsctl.metrics import Result, validate
from wsctl.report import report_json, write_json
from wsctl.results.outcome import RunReport, baseline_results


def test_json_round_trips_to_the_report_object(tmp_path):
    """The file parses back to exactly RunReport.to_dict()."""
    report = full_report()
    path = tmp_path / "report.json"
    write_json(report, path)
    assert json.loads(path.read_text(encoding="utf-8")) == report.to_dict()


def test_each_result_revalidates_and_rebuilds_its_histograms(tmp_path):
    """Every scenario's result passes the result schema; histograms decode to the same counts."""
    report = full_report()
    path = tmp_path / "report.json"
    write_json(report, path)
    obj = json.loads(path.read_text(encoding="utf-8"))
    checked = 0
    for scenario, outcome in zip(obj["scenarios"], report.scenarios, strict=True):
        if outcome.result is None:
            assert scenario["result"] is None and scenario["verdict"] == "error"
            continue
        validate(scenario["result"])
        rebuilt = Result.from_dict(scenario["result"])
        for name, hist in outcome.result.metrics.histograms.items():
            assert rebuilt.metrics.histograms[name].summary() == hist.summary()
        checked += 1
    assert checked == 3


def test_written_report_serves_as_a_baseline(tmp_path):
    """A report.json read back by baseline_results gives each scenario's result by name."""
    report = full_report()
    path = tmp_path / "report.json"
    write_json(report, path)
    baselines = baseline_results(json.loads(path.read_text(encoding="utf-8")), str(path))
    assert isinstance(baselines, dict)
    assert set(baselines) == {"server-restart", "<script>alert(1)</script>", "quiet"}
    assert baselines["server-restart"].value("messages.lost") == 0


def test_json_keeps_the_fields_documented_for_people():
    """Top-level and per-scenario fields are there, with criteria as written."""
    obj = json.loads(report_json(full_report()))
    assert obj["kind"] == "run-report" and obj["schema_version"] == 1
    assert obj["verdict"] == "error"
    first = obj["scenarios"][0]
    assert [c["metric"] for c in first["criteria"]] == [
        "reconnect_time.mean", "messages.lost", "server.rss_per_connection"]
    assert first["criteria"][0]["ep"] == "Reconnection within 5 seconds on average"
    assert [e["do"] for e in first["timeline"]] == ["server.kill", "server.start", "toxic"]
    assert len(first["series"]["t"]) == len(first["series"]["connections"]) == 20


def test_non_finite_figures_are_written_as_null():
    """A NaN gauge would make the file unreadable to strict JSON parsers: it becomes null."""
    outcome = passing()
    assert outcome.result is not None
    outcome.result.metrics.set_gauge("server.cpu", math.nan, "ratio")
    text = report_json(RunReport(suite="s", file="f.yaml", scenarios=[outcome]))

    def reject(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    obj = json.loads(text, parse_constant=reject)
    assert obj["scenarios"][0]["result"]["metrics"]["server.cpu"]["value"] is None


def test_unwritable_path_is_invalid_input_naming_it(tmp_path):
    """A path in a directory that does not exist raises InvalidInput with path and reason."""
    path = tmp_path / "missing" / "report.json"
    with pytest.raises(InvalidInput) as caught:
        write_json(full_report(), path)
    assert str(path) in str(caught.value) and "No such file" in str(caught.value)
