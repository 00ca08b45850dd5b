"""Which requests kube-apiserver sends to a rendered webhook, decided the way it decides:
rules (operation, resource), namespaceSelector and objectSelector (label selectors), then every
matchCondition (CEL, evaluated with cel-python)."""

from __future__ import annotations

import functools
from typing import Any

import celpy
from celpy.adapter import json_to_cel

Selector = dict[str, Any]


def labels_match(selector: Selector | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics: every matchLabels pair and every expression must hold."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


@functools.cache
def _program(expression: str) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(expression))


def conditions_match(
    webhook: dict[str, Any],
    pod: dict[str, Any],
    operation: str = "CREATE",
    old_pod: dict[str, Any] | None = None,
) -> bool:
    activation = {
        "object": json_to_cel(pod),
        "oldObject": json_to_cel(old_pod),
        "request": json_to_cel({"operation": operation}),
    }
    for condition in webhook.get("matchConditions") or []:
        if not bool(_program(condition["expression"]).evaluate(activation)):
            return False
    return True


def webhook_is_called(
    webhook: dict[str, Any],
    *,
    operation: str,
    pod: dict[str, Any],
    namespace: str,
    namespace_labels: dict[str, str] | None = None,
    old_pod: dict[str, Any] | None = None,
    sub_resource: str = "",
) -> bool:
    """True when kube-apiserver would call this webhook for a pod request in that namespace."""
    ns_labels = {"kubernetes.io/metadata.name": namespace, **(namespace_labels or {})}
    ruled = any(
        operation in rule["operations"]
        and ("pods/" + sub_resource if sub_resource else "pods") in rule["resources"]
        for rule in webhook["rules"]
    )
    return (
        ruled
        and labels_match(webhook.get("namespaceSelector"), ns_labels)
        and labels_match(webhook.get("objectSelector"), pod["metadata"].get("labels") or {})
        and conditions_match(webhook, pod, operation, old_pod)
    )
