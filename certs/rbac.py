"""The least RBAC that `podtier serve --manage-certs` needs, as Role and ClusterRole rules.

Kubernetes cannot restrict `create` by resourceNames (the name is not known when a create is
authorized), so `create` on secrets is granted without them; get and update are limited to
the one Secret, and get/patch to the two named webhook configurations.
"""

from __future__ import annotations

from typing import Any


def role_rules(secret_name: str) -> list[dict[str, Any]]:
    """Namespaced Role rules, in podtier's namespace."""
    return [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [secret_name],
            "verbs": ["get", "update"],
        },
    ]


def cluster_role_rules(mutating_name: str, validating_name: str) -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations"],
            "resourceNames": [mutating_name],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations"],
            "resourceNames": [validating_name],
            "verbs": ["get", "patch"],
        },
    ]
