"""podtier's alerts (charts/podtier/files/prometheus-rules.yaml): valid for Prometheus
(`promtool check rules`), each one proven to fire and to stay quiet on series written for it
(`promtool test rules tests/chart/prometheus_rules_test.yaml`), and each with a summary, a
description and a runbook section that exists in docs/operations.md.

promtool ships with Debian's `prometheus` package (.ci/run installs it, best effort); without
it the promtool tests skip and say so."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chart_rendering import CHART_DIR, REPO_ROOT

RULE_FILE = CHART_DIR / "files" / "prometheus-rules.yaml"
RULE_TESTS = Path(__file__).with_name("prometheus_rules_test.yaml")
OPERATIONS = REPO_ROOT / "docs" / "operations.md"
RUNBOOK_BASE = "https://github.com/podtier/podtier/blob/main/docs/operations.md#"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="no promtool (Debian: apt-get install prometheus; .ci/run does it)"
)


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULE_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in rules()]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=RULE_TESTS.parent
    )


@needs_promtool
def test_promtool_accepts_the_rule_file() -> None:
    checked = promtool("check", "rules", str(RULE_FILE))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


@needs_promtool
def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_unit_tests_load_the_shipped_rule_file_and_cover_every_alert_both_ways() -> None:
    spec = yaml.safe_load(RULE_TESTS.read_text())
    assert [(RULE_TESTS.parent / f).resolve() for f in spec["rule_files"]] == [RULE_FILE]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in spec["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert set(alert_names()) - fires == set(), "alerts never shown firing"
    assert set(alert_names()) - quiet == set(), "alerts never shown quiet"
    assert (fires | quiet) - set(alert_names()) == set(), "tests of alerts that do not exist"


def test_every_alert_says_what_to_look_at_and_links_its_runbook_section() -> None:
    headings, fenced = set(), False
    for line in OPERATIONS.read_text().splitlines():
        fenced ^= line.startswith("```")
        if line.startswith("#") and not fenced:
            headings.add(github_anchor(line.lstrip("#")))
    assert len(set(alert_names())) == len(alert_names()), "alert names repeat"
    for rule in rules():
        name, annotations = rule["alert"], rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert annotations["runbook_url"] == RUNBOOK_BASE + name.lower(), name
        assert name.lower() in headings, f"docs/operations.md has no section for {name}"
        assert "Look at" in annotations["description"] or "look at" in annotations["description"]


def test_every_podtier_metric_an_alert_reads_is_one_podtier_exports() -> None:
    exported = set(re.findall(r'"(podtier_[a-z_]+)"', _metric_sources()))
    used = {m for rule in rules() for m in re.findall(r"\b(podtier_[a-z_]+)", rule["expr"])}
    # counters are declared without `_total`, histograms are read by `_bucket`
    normalised = {re.sub(r"(_total|_bucket)$", "", m) for m in used}
    assert normalised - exported == set()


def _metric_sources() -> str:
    webhook = REPO_ROOT / "webhook"
    return "".join(
        (webhook / path).read_text()
        for path in ("observability/metrics.py", "insight/collector.py")
    )
