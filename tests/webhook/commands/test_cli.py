"""The CLI as users script it: `explain`, `policy lint`, `serve` argument errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, ROOT, run_podtier


def podtier(*args, check=False):
    result = run_podtier(*args)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def fixture_path(letter):
    return str(next(FIXTURES.glob(f"{letter}_*.json")))


@pytest.mark.parametrize(
    ("letter", "tier", "pool", "allowed"),
    [
        pytest.param("a", "medium", "worker", True, id="a"),
        pytest.param("h", "heavy", "compute", False, id="h-denied"),
        pytest.param("k", "gpu", "gpu", True, id="k"),
    ],
)
def test_explain_json(letter, tier, pool, allowed):
    out = json.loads(
        podtier("explain", fixture_path(letter), "--output", "json", check=True).stdout
    )
    assert set(out) >= {"tier", "pool", "reason", "warnings", "patch", "allowed", "violations"}
    assert (out["tier"], out["pool"], out["allowed"]) == (tier, pool, allowed)
    assert all({"op", "path"} <= set(op) for op in out["patch"])
    if not allowed:
        assert "container base: cpu limit 1 is below its request 2" in out["violations"]


def test_explain_reads_a_bare_pod_in_yaml(tmp_path):
    review = json.loads(Path(fixture_path("g")).read_text())

    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(yaml.safe_dump(review["request"]["object"]))
    text = podtier("explain", str(pod_file), check=True).stdout
    assert "tier:    medium" in text
    assert "pool:    worker" in text
    assert "/spec/containers/0/resources" in text


def test_explain_missing_file_is_one_line_exit_2(tmp_path):
    result = podtier("explain", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"podtier: {tmp_path / 'nope.json'}: cannot read")
    assert "Traceback" not in result.stderr


def test_policy_lint_ok_and_broken(tmp_path):
    ok = podtier("policy", "lint", str(ROOT / "policies" / "default.yaml"), check=True)
    assert ok.stdout.startswith("ok: default@sha256:")
    broken = tmp_path / "x.yaml"
    text = (
        (ROOT / "policies" / "default.yaml")
        .read_text()
        .replace('limits: {cpu: "2",', 'limits: {cpu: "2 cores",', 1)
    )
    broken.write_text(text)
    result = podtier("policy", "lint", str(broken))
    assert result.returncode == 1
    assert f'{broken}: spec.tiers.medium.limits.cpu: "2 cores" is not a quantity' in result.stderr


def test_serve_without_certs_is_a_clear_error(tmp_path):
    result = podtier("serve", "--cert-dir", str(tmp_path))
    assert result.returncode == 2
    assert f"--cert-dir {tmp_path}: tls.crt is missing" in result.stderr


def test_namespace_labels_need_the_live_watch(tmp_path):
    from tests.conftest import make_cert_dir

    certs = make_cert_dir(tmp_path)
    result = podtier("serve", "--cert-dir", str(certs), "--cluster", "none", "--namespace-labels")
    assert result.returncode == 2
    assert "--namespace-labels needs --cluster auto" in result.stderr


def test_policy_vap_prints_what_kubectl_applies(tmp_path):
    result = podtier(
        "policy", "vap", str(ROOT / "policies" / "default.yaml"), "--name", "limits",
        "--namespaces", "airflow,etl", check=True,
    )  # fmt: skip
    policy, binding, params = yaml.safe_load_all(result.stdout)
    assert [policy["kind"], binding["kind"], params["kind"]] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ConfigMap",
    ]
    assert binding["spec"]["paramRef"]["name"] == params["metadata"]["name"] == "limits"
    assert params["data"]["tier.medium.memory"] == "4Gi"
    selector = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector[-1]["values"] == ["airflow", "etl"]
    broken = tmp_path / "x.yaml"
    broken.write_text("spec: [")
    refused = podtier("policy", "vap", str(broken))
    assert refused.returncode == 1
    assert str(broken) in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    ("content", "said"),
    [
        pytest.param(None, "cannot read", id="missing"),
        pytest.param(
            b"short\n", "the escalation seal key has 5 bytes; at least 32 are needed", id="short"
        ),
    ],
)
def test_a_bad_escalation_key_is_one_line_exit_2(tmp_path, content, said):
    from tests.conftest import make_cert_dir

    certs = make_cert_dir(tmp_path)
    key = tmp_path / "key"
    if content is not None:
        key.write_bytes(content)
    result = podtier("serve", "--cert-dir", str(certs), "--escalation-key", str(key))
    assert result.returncode == 2
    assert result.stderr.strip() == f"podtier: --escalation-key {key}: " + (
        f"{said}: No such file or directory" if content is None else said
    )


def explain_heavy_on_dump(tmp_path, objects, labels, pools=None):
    """`podtier explain --output json` of a heavy pod with `labels` on a dump of `objects`,
    under the default policy with heavy's maxWaitSeconds 120 (and `pools`' settings)."""
    from podtier.policies import DEFAULT_POLICY
    from tests.webhook.headroom.builders import as_list

    cluster = tmp_path / "cluster.json"
    cluster.write_text(json.dumps(as_list(*objects)))
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    doc["spec"]["tiers"]["heavy"]["maxWaitSeconds"] = 120
    for pool, settings in (pools or {}).items():
        doc["spec"]["pools"][pool].update(settings)
    policy = tmp_path / "waits.yaml"
    policy.write_text(yaml.safe_dump(doc))
    heavy = tmp_path / "pod.json"
    heavy.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "heavy",
                    "namespace": "airflow",
                    "labels": {"kubernetes_executor": "True", "podtier.io/tier": "heavy", **labels},
                },
                "spec": {"containers": [{"name": "base", "image": "apache/airflow:3.3.2"}]},
            }
        )
    )
    args = ("explain", str(heavy), "--policy", str(policy), "--cluster", str(cluster))
    return json.loads(podtier(*args, "--output", "json", check=True).stdout)


def etl_load_running(node_name, cpu, memory, run_seconds):
    """etl.load running on `node_name` since 330 s ago (the CLI's start-up takes a few more),
    and its TaskProfile: 4 runs of `run_seconds` each, summed as the learner keeps them."""
    import datetime as dt

    from podtier.webhook.core.profile import TaskProfile, task_key
    from podtier.webhook.learning.profiles import profile_name, profile_object
    from tests.webhook.headroom.builders import pod

    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=330)
    load = pod("etl-load-1", node_name, cpu=cpu, memory=memory)
    load["metadata"]["labels"] = {"kubernetes_executor": "True", "dag_id": "etl", "task_id": "load"}
    load["status"]["startTime"] = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    key = task_key("airflow", "etl", "load")
    profile = TaskProfile(
        "airflow", profile_name(key), "etl", "load", runs=4, run_seconds=4 * run_seconds
    )
    return [load, profile_object(profile)]


def test_explain_says_a_heavy_pod_waits_for_a_task_about_to_end(tmp_path):
    """A dump: compute's only node full, one of its pods runs etl.load (learned: ~6 min),
    started 330 s ago. With maxWaitSeconds 120 the heavy pod waits for compute, and explain
    says for what."""
    from tests.webhook.headroom.builders import node, pod

    objects = [
        node("c-1", "compute", cpu="5", memory="20Gi"),
        node("w1", cpu="16", memory="64Gi"),
        *etl_load_running("c-1", "2", "4Gi", 360),
        pod("other", "c-1", cpu="2", memory="4Gi"),
    ]
    out = explain_heavy_on_dump(tmp_path, objects, {})
    assert out["pool"] == "compute" and out["node"] is None
    assert re.search(
        r"pool compute \(pinned\): waits for compute: node c-1 frees room in ~(1\d|2\d|30) s "
        r"\(task etl\.load runs up to ~6 min, started 5\.[5-7] min ago\)$",
        out["reason"],
    ), out["reason"]
    assert {
        "op": "add",
        "path": "/spec/nodeSelector",
        "value": {"node-type": "compute-optimized"},
    } in out["patch"]


def test_explain_says_a_short_task_that_fits_nowhere_waits_for_the_pool_that_grows_sooner(
    tmp_path,
):
    """A dump: compute's only node full until its etl.load (learned: 30 min) ends in ~24 min;
    worker's only node full too (0.5 cpu free: not even the tier below fits), and worker can
    add a node in 90 s. The heavy pod's own task (d.t) runs ~2 min: waiting 24 min for the
    cheaper pool is worth less than starting on worker's new node, and explain says so."""
    from podtier.webhook.core.profile import TaskProfile, task_key
    from podtier.webhook.learning.profiles import profile_name, profile_object
    from tests.webhook.headroom.builders import node, pod

    own = task_key("airflow", "d", "t")
    objects = [
        node("c-1", "compute", cpu="5", memory="20Gi"),
        node("w1", cpu="2.5", memory="64Gi"),
        *etl_load_running("c-1", "4", "8Gi", 1800),
        pod("filler", "w1", cpu="2", memory="4Gi"),
        profile_object(
            TaskProfile("airflow", profile_name(own), "d", "t", runs=4, run_seconds=4 * 120)
        ),
    ]
    scales = {"maxNodes": 4, "node": {"cpu": "16", "memory": "64Gi"}, "provisionSeconds": 90}
    out = explain_heavy_on_dump(
        tmp_path, objects, {"dag_id": "d", "task_id": "t"}, {"worker": {"autoscaling": scales}}
    )
    assert out["pool"] == "worker" and out["node"] is None, out["reason"]
    assert re.search(
        r"pool worker \(pinned\): waits for worker: it can add a node \(~90 s\); compute frees "
        r"room in ~2[34] min at the soonest, over the tier's maxWaitSeconds 120$",
        out["reason"],
    ), out["reason"]
    assert {"op": "add", "path": "/spec/nodeSelector", "value": {"node-type": "worker"}} in out[
        "patch"
    ]


def test_help_lists_every_command_and_a_run_loads_only_its_own():
    listed = podtier("--help", check=True).stdout
    for command in ("serve", "explain", "pods", "profiles", "report", "policy", "certs"):
        assert re.search(rf"^    {command} ", listed, re.M), command
    assert "usage: podtier explain" in podtier("explain", "--help", check=True).stdout
    # explain neither makes certificates nor draws a report: their imports are not paid for
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from podtier.webhook.commands.main import main; "
            f"main(['explain', {fixture_path('a')!r}, '--output', 'json']); "
            "print(sorted({'cryptography', 'podtier.webhook.report.figures'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.rstrip().endswith("[]")
