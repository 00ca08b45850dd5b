"""What podtier promises about any AdmissionReview, as checks that raise AssertionError.

- In process: `decode_review` either raises `BadReview` (a 4xx) or gives a request, and then
  `mutate`/`validate` never raise. Over HTTP: never a 5xx; a 4xx carries `{"error", "code"}`.
- Every answer is an AdmissionReview `admission.k8s.io/v1` with the request's uid.
- `/mutate` never denies; its patch applies with `jsonpatch`; the patched pod has no limit below
  its request for any resource the patch wrote (a pod that arrived with one keeps it, and
  validation denies it); mutating the patched pod again gives an empty patch.
- `/validate` denies only with a status that has a code and a message.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonpatch
import orjson

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.core import admission, review
from podtier.webhook.core.capacity import CapacityView, HeadroomStatus, unknown_view
from podtier.webhook.core.quantity import to_milli
from podtier.webhook.policy import Policy
from podtier.webhook.policy.load import load_policy_text

# The default policy plus rules that reach the other sizing modes: `always` (and a tier with
# a cpu request but no cpu limit), `never`.
EXTRA_POLICY = """\
apiVersion: podtier.io/v1alpha1
kind: TierPolicy
metadata: {name: fuzz-rules}
spec:
  tiers:
    burst:
      requests: {cpu: "1", memory: 1Gi}
      limits: {memory: 2Gi}
      placement: [worker, compute]
      override: always
  rules:
    - name: resize
      match: {dagId: "resize_*"}
      override: always
    - name: hands-off
      match: {dagId: "hands_off_*"}
      tier: heavy
      override: never
"""


def fuzz_policy() -> Policy:
    default = Path(DEFAULT_POLICY)
    return load_policy_text(
        [(str(default), default.read_text()), ("fuzz-rules.yaml", EXTRA_POLICY)]
    )


class RoomIn:
    """Known headroom: the pools whose `node-type` is in `node_types` have a node with room."""

    def __init__(self, node_types: Sequence[str]) -> None:
        self.node_types = set(node_types)
        self.status = HeadroomStatus(known=True, reason="synced")

    def find_node(
        self,
        node_selector: Mapping[str, str],
        tolerations: Any,
        requests: Any,
    ) -> str | None:
        node_type = node_selector.get("node-type", "")
        return f"{node_type}-1" if node_type in self.node_types else None

    def find_elsewhere(self, node_selector: Any, tolerations: Any, requests: Any) -> None:
        return None

    def reserve(self, node: str, requests: Any, key: str) -> None:
        return None


UNKNOWN = unknown_view("disabled by --cluster none")


def check_core(body: bytes, policy: Policy, capacity: CapacityView = UNKNOWN) -> str:
    """Run one body through the pure core and check every promise. Returns the outcome."""
    try:
        request = review.decode_review(body)
    except review.BadReview as bad:
        assert 400 <= bad.status < 500 and bad.message, (bad.status, bad.message)
        return "bad_request"
    uid = request["uid"]

    mutated = admission.mutate(request, policy, capacity)
    answer = check_answer(orjson.loads(review.encode(mutated.review)), uid)
    assert answer["allowed"] is True, f"/mutate denied: {answer}"
    obj = request.get("object")
    patched = apply_patch(answer, obj)
    if patched is not obj:
        check_no_limit_below_request_written(patched, answer)
        again = admission.mutate({**request, "object": patched}, policy, capacity)
        assert "patch" not in again.review["response"], (
            f"mutating podtier's own output changed it again: {patch_ops(again.review['response'])}"
        )

    validated = admission.validate(request, policy)
    verdict = check_answer(orjson.loads(review.encode(validated.review)), uid)
    if not verdict["allowed"]:
        status = verdict.get("status") or {}
        assert status.get("code") in (400, 403) and status.get("message"), verdict
    return mutated.outcome


def check_answer(document: Any, uid: str) -> dict[str, Any]:
    """A valid AdmissionReview response to the request with `uid`; returns `response`."""
    assert isinstance(document, dict), document
    assert document.get("apiVersion") == review.API_VERSION, document
    assert document.get("kind") == review.KIND, document
    answer = document.get("response")
    assert isinstance(answer, dict) and answer.get("uid") == uid, (uid, answer)
    assert isinstance(answer.get("allowed"), bool), answer
    warnings = answer.get("warnings", [])
    assert isinstance(warnings, list) and all(isinstance(w, str) for w in warnings), answer
    if "patch" in answer:
        assert answer.get("patchType") == "JSONPatch", answer
        assert isinstance(patch_ops(answer), list)
    return answer


def patch_ops(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    return orjson.loads(base64.b64decode(answer["patch"])) if "patch" in answer else []


def apply_patch(answer: Mapping[str, Any], obj: Any) -> Any:
    """The object after the answer's patch (the same object when there is none)."""
    ops = patch_ops(answer)
    if not ops:
        return obj
    return jsonpatch.apply_patch(copy.deepcopy(obj), ops)


def check_no_limit_below_request_written(pod: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
    for index, resource in touched_resources(patch_ops(answer), pod):
        container = pod["spec"]["containers"][index]
        resources = container.get("resources") or {}
        request = (resources.get("requests") or {}).get(resource)
        limit = (resources.get("limits") or {}).get(resource)
        if request is not None and limit is not None:
            assert to_milli(limit) >= to_milli(request), (
                f"podtier wrote {resource} into container {container.get('name')} and left its "
                f"limit {limit} below its request {request}"
            )


def touched_resources(
    ops: Sequence[Mapping[str, Any]], pod: Mapping[str, Any]
) -> set[tuple[int, str]]:
    """(container index, resource name) for every resource value the patch writes."""
    touched: set[tuple[int, str]] = set()
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        if parts[:2] != ["spec", "containers"] or len(parts) < 4 or parts[3] != "resources":
            continue
        index = int(parts[2])
        value = op.get("value")
        if len(parts) == 4:  # the whole resources object
            for section in ("requests", "limits"):
                touched |= {(index, name) for name in (value or {}).get(section) or {}}
        elif len(parts) == 5:  # a whole requests or limits map
            touched |= {(index, name) for name in value or {}}
        else:
            touched.add((index, parts[5]))
    return touched


def check_http_reply(status: int, content_type: str, body: bytes, uid: Any, path: str) -> None:
    """What the real server answered to one request: never a 5xx, JSON 4xx or a review."""
    assert status < 500, (status, body[:300])
    assert content_type.startswith("application/json"), (status, content_type, body[:300])
    document = orjson.loads(body)
    if status != 200:
        assert 400 <= status < 500, status
        assert isinstance(document.get("error"), str) and document["error"], document
        assert document.get("code") == status, document
        return
    answer = check_answer(document, uid)
    if path == "/mutate":
        assert answer["allowed"] is True, answer
