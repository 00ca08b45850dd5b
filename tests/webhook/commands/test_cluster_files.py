"""`podtier pods`, `report` and `explain --cluster` stream a `kubectl get -o json` dump: whatever
its layout, they print what the whole document read at once gives; a broken dump is named
with its byte and item, exits 2, and leaves no page behind."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from podtier.webhook.commands.explain import explain
from podtier.webhook.commands.pods import as_json, summarize
from podtier.webhook.headroom import ClusterHeadroom, forked
from podtier.webhook.headroom.state import NODE, POD
from podtier.webhook.insight.facts import airflow_facts
from podtier.webhook.policy.load import load_policy
from podtier.webhook.report.figures import figures
from podtier.webhook.report.source import Observed
from tests.conftest import FIXTURES, run_podtier
from tests.webhook.report.builders import policy_text, small_cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import cluster_gen  # noqa: E402
import cluster_history  # noqa: E402

REVIEW = str(FIXTURES / "b_create_executor_pod_docs_template.json")


def padding(half: int) -> list[dict[str, Any]]:
    """Half of `FORK_BYTES` and more of ConfigMaps."""
    blob = "x" * 8000
    count = forked.FORK_BYTES // 2 // len(blob) + 10
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"pad-{half}-{n}"},
         "data": {"blob": blob}}
        for n in range(count)
    ]  # fmt: skip


OBJECTS = [*small_cluster(), *cluster_history.history_cluster((2, 2, 1))]
LAYOUTS = {
    "kubectl": lambda path: cluster_gen.write_dump(str(path), objects=iter(OBJECTS)),
    "indent2": lambda path: cluster_gen.write_dump(
        str(path), objects=iter(OBJECTS), layout="indent2"
    ),
    # large enough to be read in a second process (`headroom.forked`): ConfigMaps, which no
    # command reads, before and after the objects
    "kubectl-forked": lambda path: cluster_gen.write_dump(
        str(path), objects=iter([*padding(0), *OBJECTS, *padding(1)])
    ),
    "compact": lambda path: path.write_bytes(orjson.dumps({"kind": "List", "items": OBJECTS})),
    "yaml": lambda path: path.write_text(yaml.safe_dump({"kind": "List", "items": OBJECTS})),
}


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "priced.yaml"
    path.write_text(policy_text())
    return path


def podtier_json(*args: str) -> Any:
    result = run_podtier(*args, "--output", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def whole_items() -> list[dict[str, Any]]:
    """The items as reading the whole document gives them."""
    return orjson.loads(orjson.dumps(OBJECTS))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_pods_prints_what_the_whole_document_gives(
    tmp_path: Path, policy: Path, layout: str
) -> None:
    path = tmp_path / "dump.json"
    LAYOUTS[layout](path)
    out = podtier_json("pods", "--cluster", str(path), "--policy", str(policy))
    loaded = load_policy([policy])
    facts = [airflow_facts(o, loaded) for o in whole_items() if o.get("kind") == POD]
    report = summarize([f for f in facts if f is not None], loaded, time.time())
    expected = as_json(report, loaded, f"file {path}")
    assert out["total"] == expected["total"] == 5 + 30 * 5
    assert out["pools"] == expected["pools"]
    for got, want in zip(out["rows"], expected["rows"], strict=True):
        for key in ("pending_oldest_seconds", "pending_median_seconds"):
            assert got.pop(key) == pytest.approx(want.pop(key), abs=60)
        assert got == want


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_report_prints_what_the_whole_document_gives(
    tmp_path: Path, policy: Path, layout: str
) -> None:
    path = tmp_path / "dump.json"
    LAYOUTS[layout](path)
    out = podtier_json("report", "--cluster", str(path), "--policy", str(policy))
    loaded = load_policy([policy])
    observed = Observed(f"file {path}", loaded)
    items = whole_items()  # folded as the report read a whole document: pods, then the rest
    observed.add_pods([o for o in items if o.get("kind") == POD])
    observed.add_profiles([o for o in items if o.get("kind") == "TaskProfile"])
    observed.add_metrics([o for o in items if o.get("kind") == "PodMetrics"])
    observed.finish()
    assert observed.latest is not None
    expected = figures(
        observed.pods,
        observed.metrics,
        observed.profiles,
        loaded,
        now=observed.latest,
        since=None,
        source=observed.source,
        notes=observed.notes,
    )
    assert out == json.loads(orjson.dumps(expected))
    assert out["total"]["pods"] == 5 + 30 * 5


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_explain_prints_what_the_whole_document_gives(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "dump.json"
    LAYOUTS[layout](path)
    out = podtier_json("explain", REVIEW, "--cluster", str(path))
    headroom = ClusterHeadroom(source="whole", static=True)
    items = whole_items()
    headroom.relist(NODE, [[o for o in items if o.get("kind") == NODE]])
    headroom.relist(POD, [[o for o in items if o.get("kind") == POD]])
    from podtier.policies import DEFAULT_POLICY

    expected = explain(REVIEW, load_policy([DEFAULT_POLICY]), headroom, {}, None)
    assert out == json.loads(orjson.dumps(expected))
    assert out["node"] is not None  # the dump's nodes were read: a node fits


def truncated(path: Path) -> str:
    LAYOUTS["kubectl"](path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return "truncated?"


def not_an_object(path: Path) -> str:
    items = ",".join(json.dumps(o) for o in OBJECTS[:3])
    path.write_text('{"kind": "List", "items": [' + items + ', "a pod"]}')
    return "items[3] (byte "


def wrong_kinds(path: Path) -> str:
    cluster_gen.write_dump(str(path), objects=iter(OBJECTS[:3]))
    path.write_bytes(path.read_bytes().replace(b'"kind": "List"', b'"kind": "ConfigMapList"'))
    return 'kind: "ConfigMapList" is not a List'


def a_2_gb_line(path: Path) -> str:
    with path.open("wb") as file:  # sparse: 2 GiB long, no disk used
        file.write(b'{"kind": "List", "items": [{"kind": "Pod", "metadata": {"name": "')
        file.seek(2 * 1024**3)
        file.write(b'"}}]}')
    return "items[0] (byte 27): longer than 67,108,864 bytes"


def truncated_forked(path: Path) -> str:
    LAYOUTS["kubectl-forked"](path)
    data = path.read_bytes()
    path.write_bytes(data[:-20000])  # in the last ConfigMaps, all the objects read
    assert path.stat().st_size >= forked.FORK_BYTES
    return "truncated?"


BROKEN = {
    "truncated": truncated,
    "truncated-forked": truncated_forked,
    "not-an-object": not_an_object,
    "wrong-kinds": wrong_kinds,
    "a-2-gb-line": a_2_gb_line,
}
COMMANDS = {
    "pods": lambda dump, out: ["pods", "--cluster", dump],
    "report": lambda dump, out: ["report", "--cluster", dump, "--out", out],
    "explain": lambda dump, out: ["explain", REVIEW, "--cluster", dump],
}


@pytest.mark.parametrize("broken", list(BROKEN))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_broken_dump_is_named_exits_2_and_writes_nothing(
    tmp_path: Path, broken: str, command: str
) -> None:
    dump = tmp_path / "dump.json"
    says = BROKEN[broken](dump)
    page = tmp_path / "report.html"
    page.write_text("the last good report")
    result = run_podtier(*COMMANDS[command](str(dump), str(page)))
    assert result.returncode == 2, result.stderr
    assert f"{dump}: " in result.stderr and says in result.stderr
    assert "byte" in result.stderr or "kind" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert page.read_text() == "the last good report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.json", "report.html"]
