"""Every fixture and the bad-input list, posted over real TLS to a real `podtier serve`."""

import base64
import contextlib
import copy
import json

import jsonpatch
import pytest
from kubernetes.client import ApiClient, V1Pod

from tests.conftest import load_review

FIXTURES = ["a", "b", "d", "e", "g", "h", "j", "k"]
EXPECTED = {
    "a": ("medium", "worker"),
    "b": ("medium", "worker"),
    "d": ("light", "worker"),
    "e": ("medium", "worker"),
    "g": ("medium", "worker"),
    "h": ("heavy", "compute"),
    "j": ("light", "worker"),
    "k": ("gpu", "gpu"),
}


def as_v1pod(pod) -> V1Pod:
    return ApiClient().deserialize(json.dumps(pod), "V1Pod", "application/json")


def mutate(server, review):
    reply = server.post("/mutate", review)
    assert reply.status_code == 200, reply.text
    answer = reply.json()["response"]
    assert answer["uid"] == review["request"]["uid"]
    ops = json.loads(base64.b64decode(answer["patch"])) if "patch" in answer else []
    return answer, jsonpatch.apply_patch(copy.deepcopy(review["request"]["object"]), ops)


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_is_tiered_and_placed(server, name):
    review = load_review(name)
    answer, pod = mutate(server, review)
    v1 = as_v1pod(pod)
    tier, pool = EXPECTED[name]
    assert v1.metadata.annotations["podtier.io/tier"] == tier
    assert v1.metadata.annotations["podtier.io/pool"] == pool
    assert v1.metadata.annotations["podtier.io/policy"].startswith("default@sha256:")
    assert v1.metadata.annotations["podtier.io/reason"]
    node_type = {"worker": "worker", "compute": "compute-optimized", "gpu": "gpu"}[pool]
    assert v1.spec.node_selector["node-type"] == node_type
    assert v1.metadata.labels == review["request"]["object"]["metadata"]["labels"]
    base = next(c for c in v1.spec.containers if c.name == "base")
    assert base.resources.requests and base.resources.limits
    again, _ = mutate(server, {**review, "request": {**review["request"], "object": pod}})
    assert "patch" not in again, "re-running /mutate on its output must give an empty patch"


def test_g_is_filled_with_medium(server):
    _, pod = mutate(server, load_review("g"))
    base = as_v1pod(pod).spec.containers[0]
    assert base.resources.requests == {"cpu": "1", "memory": "2Gi"}
    assert base.resources.limits == {"cpu": "2", "memory": "4Gi"}


def test_k_keeps_its_gpu_and_gets_the_gpu_toleration_once(server):
    _, pod = mutate(server, load_review("k"))
    v1 = as_v1pod(pod)
    gpu = [t for t in v1.spec.tolerations if t.key == "nvidia.com/gpu"]
    assert len(gpu) == 1
    assert v1.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"


def test_j_warns_about_the_unknown_tier(server):
    answer, _ = mutate(server, load_review("j"))
    assert any('tier="standard"' in w for w in answer["warnings"])


def test_h_is_denied_with_a_message_naming_container_resource_value_limit(server):
    review = load_review("h")
    _, pod = mutate(server, review)
    reply = server.post("/validate", {**review, "request": {**review["request"], "object": pod}})
    answer = reply.json()["response"]
    assert reply.status_code == 200 and answer["allowed"] is False
    assert answer["status"]["code"] == 403
    assert "container base: cpu limit 1 is below its request 2" in answer["status"]["message"]


@pytest.mark.parametrize("name", ["a", "b", "d", "e", "g", "j", "k"])
def test_valid_fixtures_pass_validation_after_mutation(server, name):
    review = load_review(name)
    _, pod = mutate(server, review)
    reply = server.post("/validate", {**review, "request": {**review["request"], "object": pod}})
    assert reply.json()["response"]["allowed"] is True


@pytest.mark.parametrize("name", ["x1", "x2"])
@pytest.mark.parametrize("path", ["/mutate", "/validate"])
def test_update_and_delete_pass_unchanged(server, name, path):
    review = load_review(name)
    answer = server.post(path, review).json()["response"]
    assert answer == {"uid": review["request"]["uid"], "allowed": True}


def test_dry_run_gives_the_same_patch(server):
    review = load_review("a")
    dry = copy.deepcopy(review)
    dry["request"]["dryRun"] = True
    assert server.post("/mutate", review).json() == server.post("/mutate", dry).json()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"not json", 400, id="not-json"),
        pytest.param(b'{"apiVersion": "admission.k8s.io/v1"', 400, id="truncated"),
        pytest.param(b'{"apiVersion": "v1", "kind": "Pod"}', 400, id="not-a-review"),
        pytest.param(
            b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", '
            b'"request": {"uid": "u"}}',
            400,
            id="v1beta1",
        ),
        pytest.param(
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}',
            400,
            id="no-uid",
        ),
        pytest.param(b"x" * (3 * 1024 * 1024 + 10), 413, id="over-3MiB"),
    ],
)
@pytest.mark.parametrize("path", ["/mutate", "/validate"])
def test_bad_input_is_a_4xx_with_a_json_message(server, body, status, path):
    reply = server.post(path, body)
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["error"]
    assert server.client.get("/healthz").status_code == 200


def test_unknown_path_and_method_are_json_4xx(server):
    assert server.client.get("/nope").json()["code"] == 404
    assert server.client.get("/mutate").status_code == 405


def test_readyz_names_the_policy(server):
    reply = server.client.get("/readyz")
    assert reply.status_code == 200
    assert reply.json()["policy"].startswith("default@sha256:")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused(server):
    import socket
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        pytest.raises((ssl.SSLError, ConnectionResetError)),
        ctx.wrap_socket(raw),
    ):
        pass
