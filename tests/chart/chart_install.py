"""Put what the chart renders (Helm's own engine) on a test control plane: the webhook
configurations with the Service reference swapped for podtier's loopback URL, and the
ValidatingAdmissionPolicy with its binding and parameters, exactly as rendered otherwise."""

from __future__ import annotations

import base64
import copy
from typing import Any

import kubernetes

from tests.chart.chart_rendering import render
from tests.controlplane import ControlPlane

Manifest = dict[str, Any]


def rendered(values: dict[str, Any] | None = None) -> list[Manifest]:
    """The chart's objects, with the release namespace `podtier`."""
    return [copy.deepcopy(o) for o in render(values)]


def install_webhooks(plane: ControlPlane, objects: list[Manifest], url: str, ca_pem: bytes) -> None:
    """Replace the plane's webhook configurations with the rendered ones, pointed at `url`."""
    admission = plane.admission
    admission.delete_collection_mutating_webhook_configuration()
    admission.delete_collection_validating_webhook_configuration()
    for configuration in objects:
        if configuration["kind"] not in (
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ):
            continue
        for webhook in configuration["webhooks"]:
            path = webhook["clientConfig"]["service"]["path"]
            webhook["clientConfig"] = {
                "url": f"{url}{path}",
                "caBundle": base64.b64encode(ca_pem).decode(),
            }
        if configuration["kind"] == "MutatingWebhookConfiguration":
            admission.create_mutating_webhook_configuration(configuration)
        else:
            admission.create_validating_webhook_configuration(configuration)


def install_admission_policy(plane: ControlPlane, objects: list[Manifest]) -> str:
    """Create the rendered ValidatingAdmissionPolicy, its binding and its parameters
    ConfigMap (in the namespace it names, made if missing); returns the policy's name."""
    api = kubernetes.client.AdmissionregistrationV1Api(plane.client)
    name = ""
    for obj in objects:
        kind = obj["kind"]
        if kind == "ValidatingAdmissionPolicy":
            name = obj["metadata"]["name"]
            api.create_validating_admission_policy(obj)
        elif kind == "ValidatingAdmissionPolicyBinding":
            api.create_validating_admission_policy_binding(obj)
            params = obj["spec"]["paramRef"]
            configmap = next(
                o
                for o in objects
                if o["kind"] == "ConfigMap" and o["metadata"]["name"] == params["name"]
            )
            plane.ensure_namespace(params["namespace"])
            plane.core.create_namespaced_config_map(params["namespace"], configmap)
    assert name, "the chart rendered no ValidatingAdmissionPolicy"
    return name
