import base64
import json

import pytest

from podtier.webhook.core.review import MAX_BODY_BYTES, BadReview, decode_review, response

GOOD = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u"}}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        pytest.param(b"", 400, "empty body", id="empty"),
        pytest.param(b'{"apiVersion": ', 400, "body is not valid JSON", id="truncated"),
        pytest.param(b"\xff\xfe{}", 400, "body is not valid JSON", id="not-utf8"),
        pytest.param(b"[1, 2]", 400, "got a JSON array", id="array"),
        pytest.param(
            json.dumps({**GOOD, "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
            400,
            'apiVersion "admission.k8s.io/v1beta1": expected admission.k8s.io/v1',
            id="v1beta1",
        ),
        pytest.param(
            json.dumps({**GOOD, "kind": "Pod"}).encode(),
            400,
            'kind "Pod": expected AdmissionReview',
            id="wrong-kind",
        ),
        pytest.param(
            json.dumps({**GOOD, "request": None}).encode(), 400, "request: missing", id="no-request"
        ),
        pytest.param(
            json.dumps({**GOOD, "request": {}}).encode(),
            400,
            "request.uid: null is not a non-empty string",
            id="no-uid",
        ),
        pytest.param(
            json.dumps({**GOOD, "request": {"uid": 7}}).encode(),
            400,
            "request.uid: 7 is not a non-empty string",
            id="uid-not-string",
        ),
        pytest.param(b" " * (MAX_BODY_BYTES + 1), 413, "over the 3145728 byte cap", id="too-big"),
        pytest.param(b"[" * 5000 + b"]" * 5000, 400, "not valid JSON", id="deeply-nested"),
    ],
)
def test_broken_requests_are_4xx_with_a_message(body, status, message):
    with pytest.raises(BadReview) as err:
        decode_review(body)
    assert err.value.status == status
    assert message in err.value.message


def test_unknown_fields_are_ignored():
    body = {**GOOD, "extra": {"x": 1}, "request": {"uid": "u", "futureField": True}}
    assert decode_review(json.dumps(body).encode())["uid"] == "u"


def test_response_carries_uid_and_base64_json_patch():
    ops = [{"op": "add", "path": "/metadata/annotations/a~1b", "value": "c"}]
    answer = response("abc", True, patch=ops, warnings=["w" * 600], audit={"tier": "light"})[
        "response"
    ]
    assert answer["uid"] == "abc" and answer["allowed"] is True
    assert answer["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["patch"])) == ops
    assert len(answer["warnings"][0]) <= 512
    assert "patch" not in response("abc", True)["response"]
