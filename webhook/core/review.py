"""The AdmissionReview `admission.k8s.io/v1` wire format: decode a request, build a response.

Two kinds of failure, never confused: a broken request (`BadReview`, answered with HTTP 4xx
and a JSON message) and an admission denial (HTTP 200, `allowed: false`, `status`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import orjson

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
MAX_BODY_BYTES = 3 * 1024 * 1024
MAX_WARNING_CHARS = 512


class BadReview(Exception):
    """The body is not a usable AdmissionReview; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class AdmissionRequest(TypedDict, total=False):
    """The fields of `request` podtier reads. `object` is the pod as it would be stored;
    `oldObject` the pod as it is (UPDATE only: a plain update, or the `resize` subresource,
    where the API server hands the whole pod after applying the patch)."""

    uid: str
    kind: GroupVersionKind
    operation: str  # CREATE | UPDATE | DELETE | CONNECT
    subResource: str  # "" for the pod itself; resize, status, binding, ...
    namespace: str
    name: str
    object: Any
    oldObject: Any
    dryRun: bool


class Status(TypedDict):
    code: int
    message: str
    reason: NotRequired[str]


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    patchType: NotRequired[str]
    patch: NotRequired[str]
    warnings: NotRequired[list[str]]
    auditAnnotations: NotRequired[dict[str, str]]
    status: NotRequired[Status]


class AdmissionReview(TypedDict):
    apiVersion: str
    kind: str
    response: AdmissionResponse


def decode_review(body: bytes) -> AdmissionRequest:
    """The `request` of an AdmissionReview body, checked enough to answer it."""
    if len(body) > MAX_BODY_BYTES:
        raise BadReview(413, f"body of {len(body)} bytes is over the {MAX_BODY_BYTES} byte cap")
    if not body:
        raise BadReview(400, "empty body: expected an AdmissionReview")
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadReview(400, f"body is not valid JSON: {err}") from None
    if not isinstance(review, dict):
        raise BadReview(400, f"expected an AdmissionReview object, got a JSON {_json_type(review)}")
    if review.get("apiVersion") != API_VERSION:
        raise BadReview(
            400, f"apiVersion {_show(review.get('apiVersion'))}: expected {API_VERSION}"
        )
    if review.get("kind") != KIND:
        raise BadReview(400, f"kind {_show(review.get('kind'))}: expected {KIND}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview(400, "request: missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview(400, f"request.uid: {_show(uid)} is not a non-empty string")
    checked: AdmissionRequest = request  # type: ignore[assignment]  # read defensively after
    return checked


def response(
    uid: str,
    allowed: bool,
    *,
    patch: Sequence[Mapping[str, Any]] = (),
    warnings: Sequence[str] = (),
    status: Status | None = None,
    audit: Mapping[str, str] | None = None,
) -> AdmissionReview:
    answer: AdmissionResponse = {"uid": uid, "allowed": allowed}
    if patch:
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(orjson.dumps(list(patch))).decode()
    if warnings:
        answer["warnings"] = [_clip(w) for w in warnings]
    if audit:
        answer["auditAnnotations"] = dict(audit)
    if status is not None:
        answer["status"] = status
    return {"apiVersion": API_VERSION, "kind": KIND, "response": answer}


def encode(review: AdmissionReview) -> bytes:
    return orjson.dumps(review)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_WARNING_CHARS else text[: MAX_WARNING_CHARS - 3] + "..."


def _show(value: Any) -> str:
    text = f'"{value}"' if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null"
    )
