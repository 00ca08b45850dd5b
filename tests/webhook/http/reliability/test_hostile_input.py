"""Hostile and malformed input against a real `podtier serve` over TLS.

Every case gets a 4xx with a JSON `{"error", "code"}` or a valid AdmissionReview with the uid
echoed (on /mutate always allowed: a pod podtier cannot read is let through with a warning),
never a 5xx; afterwards the server still answers /healthz and a valid review.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import load_review
from tests.webhook.http.reliability import rawhttp
from tests.webhook.http.reliability.properties import check_http_reply

VALID = load_review("a")
UID = VALID["request"]["uid"]
CAP = 3 * 1024 * 1024


def encode(review: Any) -> bytes:
    return json.dumps(review).encode()


def review_with(change: Callable[[dict[str, Any]], None]) -> bytes:
    """The valid fixture with `change` applied to its whole AdmissionReview."""
    review = copy.deepcopy(VALID)
    change(review)
    return encode(review)


def pod_with(change: Callable[[dict[str, Any]], None]) -> bytes:
    return review_with(lambda review: change(review["request"]["object"]))


def base_resources(resources: Any) -> bytes:
    def change(pod: dict[str, Any]) -> None:
        pod["spec"]["containers"][0]["resources"] = resources

    return pod_with(change)


def set_path(*path_and_value: Any) -> Callable[[dict[str, Any]], None]:
    *path, value = path_and_value

    def change(document: dict[str, Any]) -> None:
        target = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def drop(*path: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target = document
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return change


def nested(depth: int) -> bytes:
    """The fixture with its label `mylabel` nested `depth` arrays deep (written as text: too
    deep for Python's own encoder)."""
    deep = b"[" * depth + b'"deep"' + b"]" * depth
    body = encode(VALID)
    assert b'"mylabel": "foo"' in body
    return body.replace(b'"mylabel": "foo"', b'"mylabel": ' + deep, 1)


def huge_labels(count: int) -> bytes:
    def change(pod: dict[str, Any]) -> None:
        pod["metadata"]["labels"].update(
            {f"team-{i:05d}.example.com/k": f"v{i}" for i in range(count)}
        )

    return pod_with(change)


@dataclass(frozen=True)
class Expect:
    status: int = 200
    warning: str | None = None  # /mutate answers with a warning containing this
    patched: bool | None = None  # /mutate answers with (True) or without (False) a patch
    uid: str = UID


BAD = 400
UNREADABLE = "cannot read the pod"


def unreadable(why: str = UNREADABLE) -> Expect:
    """Allowed as it is, with a warning saying why podtier left it alone."""
    return Expect(warning=why, patched=False)


CASES = [
    # The body is not an AdmissionReview at all.
    pytest.param(b"", Expect(BAD), id="empty-body"),
    pytest.param(b"not json", Expect(BAD), id="not-json"),
    pytest.param(encode(VALID)[:-40], Expect(BAD), id="truncated-json"),
    pytest.param(
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "\xff\xfe"}', Expect(BAD), id="non-utf8"
    ),
    pytest.param(json.dumps(VALID).encode("utf-16"), Expect(BAD), id="utf16-json"),
    pytest.param(b"\xef\xbb\xbf" + encode(VALID), Expect(BAD), id="utf8-bom"),
    pytest.param(b"[1, 2, 3]", Expect(BAD), id="json-array"),
    pytest.param(b'"AdmissionReview"', Expect(BAD), id="json-string"),
    pytest.param(b"null", Expect(BAD), id="json-null"),
    pytest.param(b"42", Expect(BAD), id="json-number"),
    pytest.param(
        review_with(set_path("request", "uid", float("nan"))), Expect(BAD), id="nan-literal"
    ),
    pytest.param(
        review_with(set_path("apiVersion", "admission.k8s.io/v1beta1")),
        Expect(BAD),
        id="apiversion-v1beta1",
    ),
    pytest.param(review_with(drop("apiVersion")), Expect(BAD), id="apiversion-missing"),
    pytest.param(review_with(set_path("kind", "Pod")), Expect(BAD), id="kind-pod"),
    pytest.param(review_with(set_path("kind", ["AdmissionReview"])), Expect(BAD), id="kind-list"),
    pytest.param(review_with(drop("request")), Expect(BAD), id="request-missing"),
    pytest.param(
        review_with(set_path("request", [VALID["request"]])), Expect(BAD), id="request-list"
    ),
    pytest.param(review_with(drop("request", "uid")), Expect(BAD), id="uid-missing"),
    pytest.param(review_with(set_path("request", "uid", 12345)), Expect(BAD), id="uid-number"),
    pytest.param(review_with(set_path("request", "uid", None)), Expect(BAD), id="uid-null"),
    pytest.param(review_with(set_path("request", "uid", "")), Expect(BAD), id="uid-empty"),
    pytest.param(
        review_with(set_path("request", "uid", {"id": UID})), Expect(BAD), id="uid-object"
    ),
    pytest.param(nested(100_000), Expect(BAD), id="nested-100000-deep"),
    pytest.param(b"x" * (CAP + 1), Expect(413), id="body-over-cap"),
    pytest.param(
        pod_with(set_path("metadata", "annotations", "pad", "x" * CAP)),
        Expect(413),
        id="valid-review-over-cap",
    ),
    # Duplicate keys: the last one counts, as in Go's encoding/json that kube-apiserver uses.
    pytest.param(
        encode(VALID).replace(b'"uid": ', b'"uid": "first", "uid": ', 1),
        Expect(patched=True),
        id="duplicate-uid-key",
    ),
    pytest.param(
        encode(VALID).replace(b'"containers": ', b'"containers": 7, "containers": ', 1),
        Expect(patched=True),
        id="duplicate-containers-key",
    ),
    # A review podtier can answer, about a pod it cannot read: allowed, unchanged, with a warning.
    pytest.param(
        review_with(set_path("request", "object", None)), unreadable(), id="create-object-null"
    ),
    pytest.param(review_with(drop("request", "object")), unreadable(), id="create-object-missing"),
    pytest.param(
        review_with(
            set_path(
                "request", "object", {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}
            )
        ),
        unreadable(),
        id="configmap-under-pod-kind",
    ),
    pytest.param(
        review_with(set_path("request", "object", [VALID["request"]["object"]])),
        unreadable(),
        id="object-list",
    ),
    pytest.param(
        pod_with(set_path("spec", "containers", {"base": {}})), unreadable(), id="containers-object"
    ),
    pytest.param(
        pod_with(set_path("spec", "containers", "base")), unreadable(), id="containers-string"
    ),
    pytest.param(pod_with(drop("spec", "containers")), unreadable(), id="containers-missing"),
    pytest.param(
        pod_with(set_path("spec", "containers", [None])), unreadable(), id="container-null"
    ),
    pytest.param(
        pod_with(set_path("spec", "containers", 0, "name", 7)),
        unreadable(),
        id="container-name-number",
    ),
    pytest.param(
        pod_with(set_path("spec", "containers", 0, "name", "main")),
        Expect(warning="no container named base", patched=True),
        id="no-base-container",
    ),
    pytest.param(
        pod_with(set_path("spec", "containers", [])),
        Expect(warning="no container named base", patched=True),
        id="containers-empty",
    ),
    pytest.param(
        base_resources({"requests": {"cpu": "-1"}}),
        unreadable('"-1" is negative'),
        id="quantity-negative",
    ),
    pytest.param(
        base_resources({"requests": {"cpu": "1e400"}}), unreadable("too large"), id="quantity-1e400"
    ),
    pytest.param(
        base_resources({"limits": {"memory": "abc"}}),
        unreadable("not a quantity"),
        id="quantity-abc",
    ),
    pytest.param(
        base_resources({"requests": {"cpu": "0.0000001m"}}),
        Expect(patched=True),
        id="quantity-0.0000001m",
    ),
    pytest.param(
        base_resources({"requests": {"cpu": 2, "memory": 1.5e9}}),
        Expect(patched=True),
        id="quantity-numbers",
    ),
    pytest.param(
        base_resources({"requests": {"cpu": True}}),
        unreadable("not a quantity"),
        id="quantity-boolean",
    ),
    pytest.param(
        base_resources({"requests": {"cpu": {"value": "1"}}}),
        unreadable("not a quantity"),
        id="quantity-object",
    ),
    pytest.param(
        base_resources({"requests": {"cpu": None}}),
        unreadable("not a quantity"),
        id="quantity-null",
    ),
    pytest.param(
        base_resources({"requests": {"cpu": "9223372036854775808"}}),
        unreadable("too large"),
        id="quantity-over-int64",
    ),
    pytest.param(base_resources({"requests": ["cpu", "1"]}), unreadable(), id="requests-list"),
    pytest.param(base_resources("2Gi"), unreadable(), id="resources-string"),
    pytest.param(
        pod_with(set_path("spec", "overhead", {"cpu": "abc"})), unreadable(), id="overhead-invalid"
    ),
    pytest.param(
        pod_with(set_path("spec", "tolerations", False)), unreadable(), id="tolerations-false"
    ),
    pytest.param(
        pod_with(set_path("spec", "tolerations", [{"key": ["dedicated"]}])),
        unreadable(),
        id="toleration-key-list",
    ),
    pytest.param(
        pod_with(set_path("spec", "nodeSelector", "worker")), unreadable(), id="nodeselector-string"
    ),
    pytest.param(
        pod_with(set_path("metadata", "labels", "kubernetes_executor", True)),
        unreadable(),
        id="label-value-boolean",
    ),
    pytest.param(
        pod_with(set_path("metadata", "labels", ["kubernetes_executor"])),
        unreadable(),
        id="labels-list",
    ),
    pytest.param(nested(1000), unreadable(), id="nested-1000-deep-label"),
    pytest.param(huge_labels(50_000), Expect(patched=True), id="labels-50000"),
    pytest.param(
        pod_with(set_path("metadata", "annotations", "big", "x" * (2 * 1024 * 1024))),
        Expect(patched=True),
        id="annotation-2MiB",
    ),
    pytest.param(
        pod_with(set_path("metadata", "labels", "ключ/ラベル", "🙂\u0000\u202e")),
        Expect(patched=True),
        id="unicode-and-nul-label",
    ),
    pytest.param(
        pod_with(
            set_path(
                "metadata",
                "annotations",
                {
                    "podtier.io/tier": "../../etc",
                    "podtier.io/pool": "nope",
                    "podtier.io/policy": "forged",
                },
            )
        ),
        Expect(patched=True),
        id="forged-podtier-annotations",
    ),
    # Not a pod being created: podtier stays out of the way.
    pytest.param(
        review_with(set_path("request", "kind", "Pod")),
        Expect(patched=False),
        id="request-kind-string",
    ),
    pytest.param(
        review_with(drop("request", "kind")), Expect(patched=False), id="request-kind-missing"
    ),
    pytest.param(
        review_with(set_path("request", "operation", "EXPLODE")),
        Expect(patched=False),
        id="operation-unknown",
    ),
    pytest.param(
        review_with(set_path("request", "operation", ["CREATE"])),
        Expect(patched=False),
        id="operation-list",
    ),
    pytest.param(
        review_with(set_path("request", "namespace", {"name": "airflow"})),
        Expect(patched=True),
        id="namespace-object",
    ),
]


@pytest.mark.parametrize("path", ["/mutate", "/validate"])
@pytest.mark.parametrize(("body", "expect"), CASES)
def test_hostile_body_gets_a_4xx_or_a_valid_review(server, body, expect, path):
    reply = server.post(path, body)
    check_http_reply(
        reply.status_code, reply.headers.get("content-type", ""), reply.content, expect.uid, path
    )
    assert reply.status_code == expect.status, reply.text[:300]
    if path == "/mutate" and reply.status_code == 200:
        answer = reply.json()["response"]
        if expect.warning is not None:
            assert any(expect.warning in w for w in answer.get("warnings", [])), answer
        if expect.patched is not None:
            assert ("patch" in answer) is expect.patched, answer
    assert_still_serving(server)


def test_the_catalogue_has_at_least_40_cases():
    assert len(CASES) + len(RAW_CASES) >= 40


def assert_still_serving(server) -> None:
    assert server.client.get("/healthz").status_code == 200
    reply = server.post("/mutate", VALID)
    assert reply.status_code == 200
    answer = reply.json()["response"]
    assert answer["uid"] == UID and answer["allowed"] is True
    ops = json.loads(base64.b64decode(answer["patch"]))
    assert any(op["path"] == "/metadata/annotations/podtier.io~1tier" for op in ops)


# Requests no HTTP client library sends, written byte by byte on a TLS socket.
REVIEW = encode(VALID)
CHUNKED = b"%x\r\n%s\r\n0\r\n\r\n" % (len(REVIEW), REVIEW)
RAW_CASES = [
    pytest.param(b"\x00\x01\x02GARBAGE\r\n\r\n", [400], id="garbage-bytes"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [400], id="http2-preface"),
    pytest.param(b"BREW /mutate HTTP/1.1\r\nHost: x\r\n\r\n", [400], id="unknown-method"),
    pytest.param(rawhttp.request("GET", "/mutate", b""), [405], id="get-mutate"),
    pytest.param(rawhttp.request("POST", "/../../etc/passwd", REVIEW), [404], id="path-traversal"),
    pytest.param(
        rawhttp.request("POST", "/mutate", REVIEW, version="HTTP/1.0"), [200], id="http-1.0"
    ),
    pytest.param(
        rawhttp.request(
            "POST", "/mutate", CHUNKED, {"Content-Length": None, "Transfer-Encoding": "chunked"}
        ),
        [200],
        id="chunked-body",
    ),
    pytest.param(
        rawhttp.request(
            "POST",
            "/mutate",
            b"zz\r\nabc\r\n0\r\n\r\n",
            {"Content-Length": None, "Transfer-Encoding": "chunked"},
        ),
        [400],
        id="chunked-garbage",
    ),
    pytest.param(
        rawhttp.request(
            "POST",
            "/mutate",
            b"%x\r\n" % (CAP + 10) + b"x" * (CAP + 10) + b"\r\n0\r\n\r\n",
            {"Content-Length": None, "Transfer-Encoding": "chunked"},
        ),
        [413],
        id="chunked-over-cap",
    ),
    pytest.param(
        rawhttp.request("POST", "/mutate", REVIEW, {"Content-Length": "10"}),
        [400],
        id="content-length-shorter-than-body",
    ),
    pytest.param(
        rawhttp.request("POST", "/mutate", b"{}", {"Content-Length": str(10**12)}),
        [413],
        id="content-length-lies-over-cap",
    ),
    pytest.param(
        rawhttp.request("POST", "/mutate", b"{}", {"Content-Length": "-5"}),
        [400],
        id="content-length-negative",
    ),
    pytest.param(
        rawhttp.request("POST", "/mutate", CHUNKED, {"Transfer-Encoding": "chunked"}),
        [400],
        id="content-length-and-chunked",
    ),
    pytest.param(
        rawhttp.request("POST", "/mutate", REVIEW, {"X-Big": "a" * (70 * 1024)}),
        [431],
        id="header-over-64KiB",
    ),
    pytest.param(
        rawhttp.request("POST", "/mutate", REVIEW, {f"X-H{i}": "a" * 40 for i in range(2000)}),
        [431],
        id="2000-headers",
    ),
    pytest.param(
        rawhttp.request("POST", "/mutate?" + "q" * (70 * 1024), REVIEW), [431], id="url-over-64KiB"
    ),
    pytest.param(
        rawhttp.request("POST", "/mutate", REVIEW) + rawhttp.request("POST", "/validate", REVIEW),
        [200, 200],
        id="pipelined-pair",
    ),
    pytest.param(
        rawhttp.request("POST", "/mutate", REVIEW, {"Content-Type": "text/plain"}),
        [200],
        id="wrong-content-type",
    ),
]


@pytest.mark.parametrize(("data", "statuses"), RAW_CASES)
def test_raw_http_gets_a_json_4xx_or_a_valid_review(server, data, statuses):
    replies = rawhttp.exchange(server.port, server.cert_dir, data, replies=len(statuses))
    assert [r.status for r in replies] == statuses
    for reply in replies:
        check_http_reply(reply.status, reply.headers.get("content-type", ""), reply.body, UID, "")
        if reply.status >= 400:
            assert reply.headers.get("connection") == "close" or reply.status in (404, 405)
    assert_still_serving(server)


def trickle(server, fast: bytes, slow: bytes, sent: list[int], result: dict[str, Any]) -> None:
    """Send `fast` at once, then `slow` one byte a second while the server takes it; keep
    whatever it answers."""
    with rawhttp.tls_socket(server.port, server.cert_dir, timeout=1.0) as sock:
        try:
            sock.sendall(fast)
            for byte in slow:
                try:
                    answer = sock.recv(65536)
                except TimeoutError:  # a second passed without an answer
                    sock.sendall(bytes([byte]))
                    sent[0] += 1
                    continue
                result["answer"] = answer + rawhttp.read_until_closed(sock)
                return
            sock.settimeout(20)
            result["answer"] = rawhttp.read_until_closed(sock)
        except (BrokenPipeError, ConnectionResetError) as err:
            result["answer"] = repr(err).encode()


def test_slow_clients_get_408_and_others_are_served_meanwhile(server):
    """Three slowloris clients at once: one trickles its headers, one its body, one declares a
    body it never sends. Each gets 408 and a closed connection (at the 10 s head or body
    deadline), and during those seconds everyone else is answered."""
    request = rawhttp.request("POST", "/mutate", REVIEW)
    head = request[: request.index(b"\r\n\r\n") + 4]
    clients = {
        "slow-head": (b"", request),
        "slow-body": (head, REVIEW),
        "silent-body": (rawhttp.request("POST", "/mutate", b"{", {"Content-Length": "1000"}), b""),
    }
    results: dict[str, dict[str, Any]] = {name: {} for name in clients}
    sent = {name: [0] for name in clients}
    threads = [
        threading.Thread(target=trickle, args=(server, fast, slow, sent[name], results[name]))
        for name, (fast, slow) in clients.items()
    ]
    for thread in threads:
        thread.start()
    served = 0
    while any(t.is_alive() for t in threads):
        assert_still_serving(server)
        served += 1
        time.sleep(0.2)
    for name, result in results.items():
        answer = result.get("answer", b"")
        assert answer.startswith(b"HTTP/1.1 408 "), (name, answer[:200])
        assert b"connection: close" in answer.lower()
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert body["code"] == 408 and "within 10 s" in body["error"], body
    assert sent["slow-head"][0] < len(head), "the slow head was never cut off"
    assert sent["slow-body"][0] < len(REVIEW), "the slow body was never cut off"
    assert served > 10
