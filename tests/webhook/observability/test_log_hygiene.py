"""No secret of a pod reaches podtier's output, at any log level, on any path.

Pods carry secrets in env values, in args (Airflow's `--json-string` workload holds a JWT task
token) and in annotations. A real server at debug level gets every fixture and crafted pods
full of marked secrets, on `/mutate` and `/validate`; its whole stdout and stderr must hold none
of them, while still saying, per request, the identity fields and the outcome.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
# What a log line may say about a pod (besides podtier's own verdict).
IDENTITY_ANNOTATIONS = ("dag_id", "task_id")
MIN_SECRET_CHARS = 8  # shorter values ("1", "True") occur in any text by chance


def pod_secrets(pod: Any) -> set[str]:
    """Every env value, arg and command word, the token in Airflow's workload JSON, and every
    annotation value other than the identity ones."""
    if not isinstance(pod, dict):
        return set()
    found: set[str] = set()
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        found |= {e["value"] for e in container.get("env") or [] if isinstance(e.get("value"), str)}
        for word in (container.get("args") or []) + (container.get("command") or []):
            found.add(word)
            if word.startswith("{") and '"token"' in word:
                found.add(orjson.loads(word)["token"])
    notes = (pod.get("metadata") or {}).get("annotations") or {}
    found |= {v for k, v in notes.items() if k not in IDENTITY_ANNOTATIONS}
    return {s for s in found if len(s) >= MIN_SECRET_CHARS}


def review_with(pod: dict[str, Any], uid: str) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": pod["metadata"].get("namespace", "airflow"),
                "name": pod["metadata"].get("name", ""),
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:airflow:airflow-scheduler"},
                "object": pod,
                "dryRun": False,
            },
        }
    )


def crafted_pods(base: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Airflow pods with marked secrets in every place a pod can carry one."""

    def mark(where: str) -> str:
        return f"SECRET-{where}-{uuid.uuid4().hex}"

    def variant() -> dict[str, Any]:
        pod = copy.deepcopy(base)
        container = pod["spec"]["containers"][0]
        container["env"] = [
            {"name": "DB_PASSWORD", "value": mark("ENV")},
            {"name": "AWS_SECRET_ACCESS_KEY", "value": mark("ENV")},
        ]
        token = mark("TOKEN")
        workload = {"token": token, "ti": {"dag_id": "sales_etl", "task_id": "extract_orders"}}
        workload_json = orjson.dumps(workload).decode()
        container["args"] = ["--json-string", workload_json, f"--pw={mark('ARG')}"]
        container["command"] = ["sh", "-c", f"export KEY={mark('COMMAND')}; exec airflow"]
        pod["metadata"]["annotations"] |= {"vault.example/secret": mark("ANNOTATION")}
        pod["metadata"]["labels"] |= {"team-token": mark("LABEL")[:63]}
        return pod

    yield "plain", variant()

    pod = variant()  # a reinvocation: podtier's own annotations, with a forged reason
    pod["metadata"]["annotations"] |= {
        "podtier.io/tier": "medium",
        "podtier.io/pool": "worker",
        "podtier.io/policy": "default@sha256:0000000000000000",
        "podtier.io/reason": mark("REASON"),
    }
    yield "reinvoked", pod

    pod = variant()  # a tier asked for by name that the policy does not know
    pod["metadata"]["labels"]["tier"] = mark("TIER")[:63]
    yield "unknown-tier", pod

    pod = variant()  # unreadable: a quantity that is not one
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": mark("QUANTITY")}}
    yield "unreadable", pod

    pod = variant()  # denied by validation: limit below request
    pod["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    yield "denied", pod

    pod = variant()  # the run id is not an identity field podtier logs
    pod["metadata"]["annotations"]["run_id"] = mark("RUNID")
    yield "run-id", pod


def lines_of(output: str) -> list[dict[str, Any]]:
    lines = [line for line in output.splitlines() if line.strip()]
    return [orjson.loads(line) for line in lines]  # every line is one JSON object


def test_fixture_secrets_are_found() -> None:
    """The hygiene test below means something only if it looks for real secrets."""
    body = HERE.parents[1] / "fixtures" / "admission" / "b_create_executor_pod_docs_template.json"
    secrets = pod_secrets(orjson.loads(body.read_bytes())["request"]["object"])
    assert any(s.startswith("eyJ") for s in secrets), "the workload's JWT token"
    assert "manual__2026-11-26T05:00:00+00:00" in secrets, "the run_id annotation"
    assert "LocalExecutor" in secrets, "an env value"


def test_no_pod_secret_reaches_the_output_at_debug_level(  # type: ignore[no-untyped-def]
    start_server, fixture_bodies
) -> None:
    server = start_server("--log-level", "debug")
    secrets: set[str] = set()
    uids: dict[str, str] = {}
    bodies: list[bytes] = []
    for name, body in fixture_bodies.items():
        request = orjson.loads(body)["request"]
        secrets |= pod_secrets(request.get("object")) | pod_secrets(request.get("oldObject"))
        uids[request["uid"]] = name
        bodies.append(body)
    base = orjson.loads(fixture_bodies["b_create_executor_pod_docs_template"])["request"]["object"]
    for name, pod in crafted_pods(base):
        uid = str(uuid.uuid4())
        secrets |= pod_secrets(pod) | {v for v in _strings(pod) if v.startswith("SECRET-")}
        uids[uid] = name
        bodies.append(review_with(pod, uid))

    answers = {}
    for body in bodies:
        for path in ("/mutate", "/validate"):
            response = server.post(path, body)
            assert response.status_code == 200
            answers[(orjson.loads(body)["request"]["uid"], path)] = response.json()["response"]
    server.stop()
    output = server.output()

    leaked = sorted(s for s in secrets if s in output)
    assert not leaked, f"secrets in podtier's output: {[s[:40] for s in leaked]}"

    # The output still says what happened to each request: a debug line per admission, an info
    # line per decision with the identity fields.
    lines = lines_of(output)
    for uid in uids:
        for webhook in ("mutate", "validate"):
            mine = [ln for ln in lines if ln.get("uid") == uid and ln.get("webhook") == webhook]
            assert any(ln["level"] == "debug" for ln in mine), (uids[uid], webhook)
    plain = [uid for uid, name in uids.items() if name == "plain"][0]
    decision = next(
        ln
        for ln in lines
        if ln.get("uid") == plain and ln["level"] == "info" and ln["webhook"] == "mutate"
    )
    shown = ("namespace", "pod", "dag_id", "task_id", "tier", "pool", "outcome")
    assert {k: decision[k] for k in shown} == {
        "namespace": "airflow",
        "pod": "sales-etl-extract-orders-8i1zzols",
        "dag_id": "sales_etl",
        "task_id": "extract_orders",
        "tier": "medium",
        "pool": "worker",
        "outcome": "patched",
    }
    denied = [uid for uid, name in uids.items() if name == "denied"][0]
    assert answers[(denied, "/validate")]["allowed"] is False


def test_a_failure_inside_mutate_is_logged_with_the_uid_not_the_pod(  # type: ignore[no-untyped-def]
    start_server, fixture_bodies
) -> None:
    server = start_server("--log-level", "debug", launcher=HERE / "faulty_podtier.py")
    base = orjson.loads(fixture_bodies["b_create_executor_pod_docs_template"])["request"]["object"]
    _, pod = next(crafted_pods(base))
    uid = str(uuid.uuid4())

    answer = server.post("/mutate", review_with(pod, uid)).json()["response"]
    server.stop()
    output = server.output()

    assert answer["allowed"] is True and "patch" not in answer
    assert uid in answer["warnings"][0]
    errors = [ln for ln in lines_of(output) if ln["level"] == "error"]
    assert [(e["uid"], e["webhook"], e["error"]) for e in errors] == [(uid, "mutate", "ValueError")]
    assert any("faulty_podtier.py" in frame for frame in errors[0]["stack"])
    secrets = pod_secrets(pod) | {v for v in _strings(pod) if v.startswith("SECRET-")}
    leaked = sorted(s for s in secrets if s in output)
    assert not leaked, f"secrets in podtier's output: {[s[:40] for s in leaked]}"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
