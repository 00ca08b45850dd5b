"""The pure core on every shared fixture: decode → decide → patch → encode, no server."""

import base64
import copy
import json

import jsonpatch
import pytest

from podtier.webhook.core import admission, review
from tests.conftest import load_review
from tests.webhook.core.fakes import POLICY, UNKNOWN

FILLED = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}


def run(name):
    request = review.decode_review(json.dumps(load_review(name)).encode())
    return request, admission.mutate(request, POLICY, UNKNOWN)


def patched_pod(request, answer):
    encoded = answer.review["response"].get("patch")
    ops = json.loads(base64.b64decode(encoded)) if encoded else []
    return jsonpatch.apply_patch(copy.deepcopy(request["object"]), ops)


@pytest.mark.parametrize(
    ("fixture", "tier", "pool", "resources"),
    [
        pytest.param("a", "medium", "worker", FILLED, id="a-basic-template-filled"),
        pytest.param(
            "b",
            "medium",
            "worker",
            {"limits": {"cpu": "1", "memory": "2Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}},
            id="b-docs-template-unchanged",
        ),
        pytest.param("d", "light", "worker", None, id="d-override-light"),
        pytest.param("e", "medium", "worker", None, id="e-mapped-task"),
        pytest.param("g", "medium", "worker", FILLED, id="g-no-template-filled"),
        pytest.param("h", "heavy", "compute", None, id="h-limits-below-requests"),
        pytest.param("j", "light", "worker", None, id="j-kpo-unknown-tier"),
        pytest.param("k", "gpu", "gpu", None, id="k-gpu"),
    ],
)
def test_fixture_decisions(fixture, tier, pool, resources):
    request, answer = run(fixture)
    pod = patched_pod(request, answer)
    notes = pod["metadata"]["annotations"]
    assert (notes["podtier.io/tier"], notes["podtier.io/pool"]) == (tier, pool)
    assert notes["podtier.io/policy"] == POLICY.ident
    if resources is not None:
        assert pod["spec"]["containers"][0]["resources"] == resources


def test_unknown_tier_label_is_a_warning():
    _, answer = run("j")
    assert any('label tier="standard"' in w for w in answer.review["response"]["warnings"])


@pytest.mark.parametrize("fixture", ["x1", "x2"])
def test_update_and_delete_are_allowed_unchanged(fixture):
    request, answer = run(fixture)
    assert answer.review["response"] == {"uid": request["uid"], "allowed": True}
    assert admission.validate(request, POLICY).review["response"]["allowed"] is True


def test_non_airflow_pod_is_allowed_unchanged():
    request = review.decode_review(json.dumps(load_review("b")).encode())
    request["object"]["metadata"]["labels"] = {"app": "nginx"}
    assert admission.mutate(request, POLICY, UNKNOWN).outcome == "skipped"


def test_other_kinds_are_allowed_unchanged():
    request = review.decode_review(json.dumps(load_review("b")).encode())
    request["kind"] = {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert admission.mutate(request, POLICY, UNKNOWN).review["response"] == {
        "uid": request["uid"],
        "allowed": True,
    }


def test_dry_run_gives_the_same_patch():
    request, answer = run("a")
    dry = admission.mutate({**request, "dryRun": True}, POLICY, UNKNOWN)
    assert dry.review == answer.review


def test_h_is_denied_by_validation_after_mutation():
    request, answer = run("h")
    checked = admission.validate({**request, "object": patched_pod(request, answer)}, POLICY)
    status = checked.review["response"]["status"]
    assert checked.review["response"]["allowed"] is False and status["code"] == 403
    assert "container base: cpu limit 1 is below its request 2" in status["message"]
    assert "container base: memory limit 2Gi is below its request 4Gi" in status["message"]


def test_audit_mode_turns_denials_into_warnings():
    from dataclasses import replace

    request, answer = run("h")
    checked = admission.validate(
        {**request, "object": patched_pod(request, answer)}, replace(POLICY, mode="audit")
    )
    assert checked.review["response"]["allowed"] is True
    assert any(
        "cpu limit 1 is below its request 2" in w for w in checked.review["response"]["warnings"]
    )


def test_unreadable_pod_is_allowed_with_a_warning_by_mutate():
    request = review.decode_review(json.dumps(load_review("b")).encode())
    request["object"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "abc"
    answer = admission.mutate(request, POLICY, UNKNOWN)
    assert answer.review["response"]["allowed"] is True
    assert "patch" not in answer.review["response"]
    assert (
        'spec.containers[0].resources.requests.cpu: "abc" is not a quantity'
        in (answer.review["response"]["warnings"][0])
    )
