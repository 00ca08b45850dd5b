"""`podtier report` from a `kubectl get -o json` dump: the figures as JSON, the terminal
summary, the page file, the window, and the errors a user can make."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from podtier.webhook.commands.main import main
from tests.conftest import run_podtier
from tests.webhook.headroom.builders import as_list
from tests.webhook.report.builders import NOW, policy_text, small_cluster, task_profile

podtier = run_podtier


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "priced.yaml"
    path.write_text(policy_text())
    return path


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(as_list(*small_cluster())))
    return path


def report_json(*args: str) -> dict[str, Any]:
    result = podtier("report", *args, "--output", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_figures_of_a_dump_as_json(dump: Path, policy: Path) -> None:
    out = report_json("--cluster", str(dump), "--policy", str(policy))
    assert out["now"] == NOW  # the latest moment in the file, not the clock
    assert out["currency"] == "EUR" and out["priced"] is True
    total = out["total"]
    assert total["pods"] == 5  # not the web pod
    assert total["run_hours"] == pytest.approx(3.0)
    assert total["cost"] == pytest.approx(0.05 + 0.05 + 1.06)
    assert total["unpriced_pods"] == 1
    worker = out["by_pool"]["worker"]
    # done (its task profile: 0.2 core) and busy (PodMetrics: 0.5 core), 1 h each
    assert worker["cpu_utilization"] == pytest.approx((0.2 + 0.5) / 2)
    assert out["usage_sources"] == {"metrics": 1, "task profile": 1, "none": 3}
    pending = out["pending"]["worker"]
    assert (pending["pods"], pending["waiting_now"]) == (3, 1)
    assert pending["p50_seconds"] == pytest.approx(30.0)
    assert out["pending"]["gpu"]["p50_seconds"] == pytest.approx(20.0)
    assert [t["task_id"] for t in out["killed"]] == ["load_oom"]
    assert out["wasteful"][0]["task_id"] == "load_done"
    # done, at its task's figures (cpu p95 200m, peak 512Mi x 1.15 = 592Mi) instead of 1 core
    # and 2 GiB: 0.2 x 0.04 + 592/1024 x 0.005 = 0.010890625 instead of 0.05
    saving = out["saving_total"]
    assert saving["pods"] == 1
    assert saving["now"]["cost"] == pytest.approx(1.16)
    assert saving["recommended"]["cost"] == pytest.approx(1.16 - 0.05 + 0.010890625)
    assert out["pending_series"]["by_pool"]["worker"][-1] == 1  # queued, still waiting


def test_since_keeps_the_last_stretch(dump: Path, policy: Path) -> None:
    out = report_json("--cluster", str(dump), "--policy", str(policy), "--since", "90m")
    # done finished 2 h ago: out; oom finished as the window opens: in, with no time left
    assert out["since"] == NOW - 5400
    assert out["total"]["pods"] == 4
    assert out["total"]["run_hours"] == pytest.approx(1.0 + 0.5)


def test_the_terminal_summary(dump: Path, policy: Path) -> None:
    result = podtier("report", "--cluster", str(dump), "--policy", str(policy))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    cost = next(line for line in lines if line.strip().startswith("cost"))
    assert "1.16 EUR" in cost and "pods in pools without prices: 1" in cost
    gpu = next(line for line in lines if re.match(r"│ gpu\s+│ +1 │", line))
    cells = [c.strip() for c in gpu.split("│") if c.strip()]
    assert cells[:5] == ["gpu", "1", "0.5", "1.0", "4.0"]  # pods, run h, cpu·h, GiB·h
    assert "The 10 tasks OOM-killed most often" in result.stdout


def test_the_page_is_one_file_that_fetches_nothing(
    dump: Path, policy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    result = podtier("report", "--cluster", str(dump), "--policy", str(policy), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    html = out.read_text()
    assert html.count("<svg") == 5 and "<script" not in html
    assert not re.search(r"""(src|href)=["'](?!#|data:)""", html)  # only in-page references
    assert "default-src 'none'" in html
    assert "load_oom" in html and "1.16 EUR" in html


def test_a_dump_without_profiles_or_metrics_says_so(tmp_path: Path, policy: Path) -> None:
    objects = [o for o in small_cluster() if o["kind"] in ("Node", "Pod")]
    path = tmp_path / "pods.json"
    path.write_text(json.dumps(as_list(*objects)))
    out = report_json("--cluster", str(path), "--policy", str(policy))
    assert out["usage_sources"] == {"none": 5}
    assert out["saving_total"]["pods"] == 0 and out["total"]["cpu_utilization"] is None
    assert any("no TaskProfiles in the file" in n for n in out["notes"])
    assert any("no PodMetrics in the file" in n for n in out["notes"])


def test_a_broken_profile_is_skipped_and_named(tmp_path: Path, policy: Path) -> None:
    broken = task_profile("bad")
    broken["status"]["runs"] = "many"
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(as_list(*small_cluster(), broken)))
    out = report_json("--cluster", str(path), "--policy", str(policy))
    assert out["total"]["pods"] == 5
    skipped = f"1 TaskProfile objects skipped: TaskProfile airflow/{broken['metadata']['name']}"
    assert any(n.startswith(skipped) for n in out["notes"]), out["notes"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(
            ["--cluster", "/nope.json"], '--cluster "/nope.json": no such file', id="file"
        ),
        pytest.param(["--since", "a week"], '--since "a week" is not a duration', id="since"),
        pytest.param(["--cluster", "{bad}"], "no such file", id="not-a-file"),
        pytest.param(
            ["--cluster", str(Path(__file__)), "--out", "/nonexistent/dir/r.html"],
            "not valid YAML or JSON",
            id="not-a-dump",
        ),
    ],
)
def test_user_errors_say_what_and_exit_2(args: list[str], says: str) -> None:
    result = podtier("report", *args)
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr


def test_an_unwritable_page_is_named(dump: Path, tmp_path: Path) -> None:
    out = tmp_path / "missing" / "r.html"
    result = podtier("report", "--cluster", str(dump), "--out", str(out))
    assert result.returncode == 2
    assert f"--out {out}: cannot write: No such file or directory" in result.stderr


def test_a_file_without_any_time_is_reported_at_the_clocks(tmp_path: Path) -> None:
    pod = {
        "kind": "Pod",
        "metadata": {
            "name": "a",
            "namespace": "airflow",
            "labels": {"kubernetes_executor": "True"},
        },
        "spec": {"containers": [{"name": "base", "resources": {"requests": {"cpu": "1"}}}]},
        "status": {"phase": "Pending"},
    }
    path = tmp_path / "timeless.json"
    path.write_text(json.dumps(as_list(pod)))
    out = report_json("--cluster", str(path))
    assert out["total"]["pods"] == 1 and out["now"] > NOW - 10 * 365 * 86400
    assert any("the file shows no time at all" in n for n in out["notes"])


def test_without_matplotlib_the_page_asks_for_the_extra(
    dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    code = main(["report", "--cluster", str(dump), "--out", str(tmp_path / "r.html")])
    assert code == 2
    assert "pip install 'podtier[report]'" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_a_file_that_is_not_a_list_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pod.json"
    path.write_text(json.dumps({"kind": "Pod", "metadata": {"name": "x"}}))
    result = podtier("report", "--cluster", str(path))
    assert result.returncode == 2
    assert f'{path}: kind: "Pod" is not a List' in result.stderr
