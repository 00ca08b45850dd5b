"""The Kubernetes calls certificate management makes, and nothing else (the I/O edge).

Each call maps to one RBAC verb on one named object (see `certs.rbac`). Objects are read and
returned as plain dicts (raw JSON, no client models), so the planning code sees wire shapes.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

MUTATING = "MutatingWebhookConfiguration"
VALIDATING = "ValidatingWebhookConfiguration"


class AlreadyExists(Exception):
    pass


class Conflict(Exception):
    pass


class KubeCalls:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self.admission = client.AdmissionregistrationV1Api(api_client)

    # Secret: get, create, update.

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(self.core.read_namespaced_secret(name, namespace, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return _json(
                self.core.create_namespaced_secret(namespace, body, _preload_content=False)  # type: ignore[arg-type]
            )
        except ApiException as error:
            if error.status == 409:
                raise AlreadyExists(body["metadata"]["name"]) from None
            raise

    def update_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT with the resourceVersion in `body`: Conflict if someone wrote in between."""
        name = body["metadata"]["name"]
        try:
            return _json(
                self.core.replace_namespaced_secret(name, namespace, body, _preload_content=False)  # type: ignore[arg-type]
            )
        except ApiException as error:
            if error.status == 409:
                raise Conflict(name) from None
            raise

    # Webhook configurations: get, patch.

    def get_webhook_config(self, kind: str, name: str) -> dict[str, Any] | None:
        read = (
            self.admission.read_mutating_webhook_configuration
            if kind == MUTATING
            else self.admission.read_validating_webhook_configuration
        )
        try:
            return _json(read(name, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch_webhook_config(
        self, kind: str, name: str, json_patch: list[dict[str, Any]]
    ) -> dict[str, Any]:
        patch = (
            self.admission.patch_mutating_webhook_configuration
            if kind == MUTATING
            else self.admission.patch_validating_webhook_configuration
        )
        return _json(patch(name, json_patch, _preload_content=False))


def _json(response: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(response.data)
    return result
