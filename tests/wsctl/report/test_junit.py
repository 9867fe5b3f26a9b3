"""junit.xml: valid JUnit XML with one testsuite per scenario, one testcase per criterion."""

import xml.etree.ElementTree as ET

import pytest

from tests.wsctl.report.reports import XSS_NAME, full_report, passing_report
from wsctl.errors import InvalidInput
from wsctl.report import junit_xml, write_junit

# The shape CI tools read (Jenkins' junit-4 / Ant's schema): element order and attributes.
SUITE_CHILDREN = ("properties", "testcase", "system-out", "system-err")
CASE_CHILDREN = ("skipped", "error", "failure", "system-out", "system-err")


def _in_order(children: list[str], allowed: tuple[str, ...]) -> bool:
    ranks = [allowed.index(c) for c in children if c in allowed]
    return len(ranks) == len(children) and ranks == sorted(ranks)


def check_schema(root: ET.Element) -> None:
    """Assert the junit-4 schema's structure: required attributes and child order."""
    assert root.tag == "testsuites"
    for suite in root:
        assert suite.tag == "testsuite"
        for attr in ("name", "tests", "failures", "errors", "time", "timestamp", "hostname",
                     "id", "package"):
            assert attr in suite.attrib, attr
        assert _in_order([c.tag for c in suite], SUITE_CHILDREN), [c.tag for c in suite]
        assert [c.tag for c in suite].count("properties") <= 1
        for case in suite.iter("testcase"):
            assert {"name", "classname", "time"} <= set(case.attrib)
            float(case.get("time", ""))
            assert _in_order([c.tag for c in case], CASE_CHILDREN), [c.tag for c in case]
            for problem in case:
                if problem.tag in ("failure", "error"):
                    assert problem.get("message") and problem.get("type")
        for prop in suite.iter("property"):
            assert set(prop.attrib) == {"name", "value"}


def test_junit_parses_and_follows_the_junit_schema(tmp_path):
    """The file is XML that xml.etree parses, shaped as JUnit consumers expect."""
    path = tmp_path / "junit.xml"
    write_junit(full_report(), path)
    root = ET.parse(path).getroot()
    check_schema(root)
    assert path.read_text(encoding="utf-8").startswith('<?xml version="1.0" encoding="UTF-8"?>')


def test_counts_are_right_per_suite_and_in_total():
    """tests/failures/errors agree with the verdicts, per scenario and summed at the top."""
    root = ET.fromstring(junit_xml(full_report()))
    suites = {s.get("name"): s for s in root}
    assert list(suites) == ["server-restart", XSS_NAME, "graceful-restart", "quiet"]
    expected = {"server-restart": (3, 0, 0), XSS_NAME: (3, 2, 1), "graceful-restart": (1, 0, 1),
                "quiet": (1, 0, 0)}
    for name, (tests, failures, errors) in expected.items():
        suite = suites[name]
        assert (int(suite.get("tests", "")), int(suite.get("failures", "")),
                int(suite.get("errors", ""))) == (tests, failures, errors), name
        assert len(suite.findall("testcase")) == tests
        assert len(suite.findall("testcase/failure")) == failures
        assert len(suite.findall("testcase/error")) == errors
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("8", "2", "2")


def test_testcases_name_the_criterion_and_carry_the_figures():
    """classname is suite.scenario, name is 'metric expect', failure says measured vs threshold."""
    root = ET.fromstring(junit_xml(full_report()))
    failed = root.find(f"testsuite[@name='{XSS_NAME}']")
    assert failed is not None
    cases = failed.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "reconnect_time.p99 < 1s", "messages.lost == 0", "detect_time.p99 < 2s"]
    assert {c.get("classname") for c in cases} == {f"ep-0001.{XSS_NAME}"}
    failure = cases[0].find("failure")
    assert failure is not None
    assert failure.get("message") == "reconnect_time.p99 measured 2.49 s, threshold < 1 s"
    out = cases[0].find("system-out")
    assert out is not None and "EP: p99 reconnection under one second" in (out.text or "")
    error = cases[2].find("error")
    assert error is not None
    assert error.get("message") == ("detect_time.p99 has no samples: nothing happened that "
                                    "it measures")


def test_scenario_that_could_not_run_is_one_error_testcase_named_run():
    """No criteria were judged: one testcase 'run' whose error says why."""
    root = ET.fromstring(junit_xml(full_report()))
    suite = root.find("testsuite[@name='graceful-restart']")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["run"]
    error = cases[0].find("error")
    assert error is not None and "port 8765 is taken" in (error.get("message") or "")


def test_passing_run_has_no_failure_or_error_elements():
    """All criteria passed: zero counts and no failure/error anywhere."""
    root = ET.fromstring(junit_xml(passing_report()))
    assert root.get("failures") == "0" and root.get("errors") == "0"
    assert not list(root.iter("failure")) and not list(root.iter("error"))
    assert root.get("tests") == "4"


def test_control_characters_in_user_text_do_not_break_the_xml():
    """A scenario name with control characters still gives parseable XML."""
    report = passing_report()
    report.scenarios[0].name = "bell\x07 and nul\x00"
    root = ET.fromstring(junit_xml(report))
    assert root[0].get("name") == "bell and nul"


def test_unwritable_junit_path_is_invalid_input(tmp_path):
    """A file where a directory is expected: InvalidInput naming the path."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="junit.xml"):
        write_junit(full_report(), tmp_path / "file" / "junit.xml")
