"""Input pods of a suite: Pod and AdmissionReview files, and `kubectl get -o json` Lists."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podtier.webhook.documents import DocumentError, read_document


@dataclass(frozen=True)
class InputPod:
    file: Path
    key: str  # namespace/name
    request: Mapping[str, Any]  # an AdmissionReview request; `object` is the pod


def read_inputs(file: Path) -> list[InputPod]:
    """Every pod in the file, each as the AdmissionReview request podtier would get."""
    doc = read_document(file)
    if not isinstance(doc, dict):
        raise DocumentError(f"{file}: expected a Pod, an AdmissionReview or a List")
    return list(_pods(file, doc))


def _pods(file: Path, doc: dict[str, Any]) -> Iterator[InputPod]:
    kind = doc.get("kind")
    if kind == "AdmissionReview":
        request = doc.get("request")
        if not isinstance(request, dict):
            raise DocumentError(f"{file}: request: expected the AdmissionReview request")
        obj = request.get("object") or request.get("oldObject") or {}
        metadata = obj.get("metadata") or {}
        namespace = request.get("namespace") or metadata.get("namespace") or "default"
        name = request.get("name") or metadata.get("name") or metadata.get("generateName") or ""
        yield InputPod(file, f"{namespace}/{name}", request)
    elif kind == "Pod":
        yield _create(file, doc)
    elif kind in ("List", "PodList"):
        items = doc.get("items")
        if not isinstance(items, list):
            raise DocumentError(f"{file}: items: expected a list")
        for item in items:
            if isinstance(item, dict) and item.get("kind", "Pod") == "Pod":
                yield _create(file, {"apiVersion": "v1", "kind": "Pod", **item})
    else:
        raise DocumentError(f"{file}: kind: {kind!r} is not Pod, AdmissionReview or List")


def _create(file: Path, pod: dict[str, Any]) -> InputPod:
    metadata = pod.get("metadata") or {}
    namespace = metadata.get("namespace") or "default"
    name = metadata.get("name") or metadata.get("generateName") or ""
    request = {
        "uid": f"policy-test-{namespace}-{name}",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace,
        "name": name,
        "operation": "CREATE",
        "object": pod,
        "dryRun": True,
    }
    return InputPod(file, f"{namespace}/{name}", request)


def namespace_labels_in(doc: Any) -> dict[str, dict[str, str]]:
    """Labels of the Namespace objects in a `kubectl get namespaces,... -o json` List."""
    out: dict[str, dict[str, str]] = {}
    items = doc.get("items") if isinstance(doc, dict) else None
    for item in items or []:
        if isinstance(item, dict) and item.get("kind") == "Namespace":
            metadata = item.get("metadata") or {}
            labels = metadata.get("labels") or {}
            out[str(metadata.get("name", ""))] = {str(k): str(v) for k, v in labels.items()}
    return out
