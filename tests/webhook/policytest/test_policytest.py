"""`podtier policy test`: the shipped suites pass, a wrong expectation fails with a diff a
person can read, JUnit XML for CI, and suite mistakes are named by file and field."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from podtier.policies import POLICY_DIR
from podtier.webhook.commands.main import main
from podtier.webhook.policytest import SuiteError, find_suites, load_suite, run_suite
from tests.conftest import run_podtier

TESTS = POLICY_DIR / "tests"


podtier = run_podtier


def copy_suites(tmp_path: Path) -> Path:
    """The shipped policies and suites, copied so that a test can edit them."""
    target = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


def edit_suite(file: Path, change) -> None:
    doc = yaml.safe_load(file.read_text())
    change(doc)
    file.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_shipped_suites_pass() -> None:
    result = podtier("policy", "test", "policies/tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "21 passed, 0 failed, 0 errors in 3 suites" in result.stdout
    assert "FAIL" not in result.stdout


def test_a_wrong_expectation_fails_with_a_readable_diff(tmp_path: Path) -> None:
    policies = copy_suites(tmp_path)
    suite = policies / "tests" / "default" / "default-test.yaml"

    def wrong(doc) -> None:
        case = doc["results"][0]
        case["tier"] = "heavy"
        case["patched"]["spec.containers[name=base].resources.limits.cpu"] = "4"
        case["warnings"] = ["stepped down"]

    edit_suite(suite, wrong)
    junit = tmp_path / "junit.xml"
    result = podtier("policy", "test", str(policies / "tests"), "--junit", str(junit))
    assert result.returncode == 1
    out = result.stdout
    assert "FAIL  a_create_executor_pod_basic_template.json" in out
    assert "(results[0])" in out
    assert 'tier: expected "heavy", got "medium"' in out
    assert 'spec.containers[name=base].resources.limits.cpu: expected "4", got "2"' in out
    assert 'warnings: expected one containing "stepped down", got []' in out
    assert "20 passed, 1 failed, 0 errors in 3 suites" in out

    root = ET.parse(junit).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["default-policy"].get("failures") == "1"
    assert suites["data-team"].get("failures") == "0"
    (failure,) = root.iter("failure")
    assert (
        failure.get("message")
        == "3 field(s) differ: tier, warnings, spec.containers[name=base].resources.limits.cpu"
    )
    assert 'tier: expected "heavy", got "medium"' in (failure.text or "")


def unknown_pod(doc) -> None:
    doc["results"][0].pop("input")
    doc["results"][0]["pod"] = "airflow/nope"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(unknown_pod, "no input pod airflow/nope", id="unknown-pod"),
        pytest.param(
            lambda d: d.update(policies=["../../missing.yaml"]),
            "missing.yaml: no such file",
            id="missing-policy",
        ),
        pytest.param(
            lambda d: d.update(cluster="missing-cluster.json"),
            'missing-cluster.json": no such file',
            id="missing-cluster-file",
        ),
    ],
)
def test_a_suite_that_cannot_run_is_an_error_not_a_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change, expected: str
) -> None:
    policies = copy_suites(tmp_path)
    suite = policies / "tests" / "default" / "default-test.yaml"
    (suite.parent / "cluster.json").write_text('{"apiVersion": "v1", "kind": "List", "items": []}')
    edit_suite(suite, change)
    assert main(["policy", "test", str(suite)]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out
    assert expected in out


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        pytest.param(
            lambda d: d["results"][0].update(tier=3),
            "results[0].tier",
            "3 is not a name or null",
            id="tier-number",
        ),
        pytest.param(
            lambda d: d["results"][0].update(allowed="yes"),
            "results[0].allowed",
            "'yes' is not true or false",
            id="allowed-string",
        ),
        pytest.param(
            lambda d: d["results"][0].update(expect="medium"),
            "results[0].expect",
            "unknown field",
            id="unknown-field",
        ),
        pytest.param(
            lambda d: d.update(kind="Test"), "kind", "'Test' is not PolicyTest", id="kind"
        ),
        pytest.param(
            lambda d: d.update(inputs=[]), "inputs", "non-empty list of file names", id="no-inputs"
        ),
        pytest.param(
            lambda d: d["results"][0]["patched"].update({"spec.containers[0": 1}),
            "results[0].patched",
            "cannot read from",
            id="bad-path",
        ),
        pytest.param(
            lambda d: d["results"].append({"pod": "x"}),
            "results[10]",
            "expects nothing",
            id="empty-expectation",
        ),
    ],
)
def test_suite_mistakes_name_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change, field: str, expected: str
) -> None:
    policies = copy_suites(tmp_path)
    suite = policies / "tests" / "default" / "default-test.yaml"
    edit_suite(suite, change)
    with pytest.raises(SuiteError) as err:
        load_suite(suite)
    assert str(err.value).startswith(f"{suite}: {field}: ")
    assert expected in err.value.message
    assert main(["policy", "test", str(suite)]) == 2
    assert capsys.readouterr().err.startswith(f"podtier: {suite}: {field}: ")


def test_a_directory_without_suites_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "test", str(tmp_path)]) == 2
    assert "holds no test suites (files named *-test.yaml)" in capsys.readouterr().err


def test_suites_are_found_recursively_in_name_order() -> None:
    found = find_suites(TESTS)
    assert [p.relative_to(TESTS).as_posix() for p in found] == [
        "data-team/data-team-test.yaml",
        "default/default-test.yaml",
        "headroom/headroom-test.yaml",
    ]


def test_namespace_labels_come_from_the_suite(tmp_path: Path) -> None:
    """Without the suite's namespace labels, the data team's namespaceSelector rules do not
    match and its pods fall to the default policy."""
    policies = copy_suites(tmp_path)
    suite_file = policies / "tests" / "data-team" / "data-team-test.yaml"
    edit_suite(suite_file, lambda d: d.pop("namespaces"))
    result = run_suite(load_suite(suite_file))
    failed = {c.title.split(" ")[0]: c for c in result.cases if not c.passed}
    assert set(failed) == {
        "data-eng/sales-daily-spark-submit-orders-x1",
        "data-eng/ingest-events-load-raw-p0",
    }
    (tier,) = [
        d for d in failed["data-eng/ingest-events-load-raw-p0"].differences if d.field == "tier"
    ]
    assert (tier.expected, tier.got) == ('"data-small"', '"medium"')
