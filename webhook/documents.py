"""Read a Pod, an AdmissionReview or a `v1 List` from a JSON or YAML file: for the commands and
for `podtier policy test` (`policytest/`), which both sit above it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml


class DocumentError(ValueError):
    """`file: what is wrong`."""


def read_document(path: str | Path) -> Any:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DocumentError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise DocumentError(f"{path}: neither JSON nor YAML: {err}") from None


def pod_and_request(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, AdmissionReview request) from a file holding either; a bare Pod gets a CREATE
    request around it."""
    doc = read_document(path)
    if not isinstance(doc, dict):
        raise DocumentError(f"{path}: expected a Pod or an AdmissionReview object")
    if doc.get("kind") == "AdmissionReview":
        request = doc.get("request")
        if not isinstance(request, dict) or not isinstance(request.get("object"), dict):
            raise DocumentError(f"{path}: request.object: expected the Pod")
        return request["object"], request
    if doc.get("kind") != "Pod":
        raise DocumentError(f"{path}: kind: {doc.get('kind')!r} is not Pod or AdmissionReview")
    metadata = doc.get("metadata") or {}
    request = {
        "uid": "explain",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": metadata.get("namespace", "default"),
        "name": metadata.get("name", ""),
        "object": doc,
        "dryRun": True,
    }
    return doc, request
