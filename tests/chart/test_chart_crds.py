"""The TaskProfile CRD the chart ships (crds/, installed by Helm before the templates): a valid
apiextensions/v1 object naming the group, version, kind and plural podtier reads and writes,
with no status subresource (podtier writes the whole object at once), and a schema that takes
what podtier writes and refuses an object without its task's ids. (The real control plane test
in tests/webhook/learning registers it and writes through it.)"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from podtier.webhook.learning import profiles
from tests.chart.chart_rendering import CHART_DIR, notes, render, serve_flags
from tests.chart.test_chart_scenarios import KUBE_VERSION
from tests.webhook.learning.test_profiles import PROFILE

CRD = CHART_DIR / "crds" / "taskprofiles.yaml"


def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD.read_text())
    return loaded


def as_json_schema(schema: Any) -> Any:
    """OpenAPI v3 `nullable: true` as JSON Schema's `type: [t, "null"]`."""
    if isinstance(schema, dict):
        out = {k: as_json_schema(v) for k, v in schema.items() if k != "nullable"}
        if schema.get("nullable"):
            out["type"] = [schema["type"], "null"]
        return out
    if isinstance(schema, list):
        return [as_json_schema(item) for item in schema]
    return schema


def test_the_crd_is_valid_and_names_what_podtier_uses() -> None:
    definition = crd()
    kubernetes_validate.validate(definition, KUBE_VERSION, strict=True)
    spec = definition["spec"]
    assert definition["metadata"]["name"] == f"{profiles.PLURAL}.{profiles.GROUP}"
    assert (spec["group"], spec["names"]["kind"], spec["names"]["plural"]) == (
        profiles.GROUP,
        profiles.KIND,
        profiles.PLURAL,
    )
    assert spec["scope"] == "Namespaced" and spec["names"]["shortNames"] == ["tp"]
    (version,) = spec["versions"]
    assert version["name"] == profiles.VERSION and version["served"] and version["storage"]
    assert "subresources" not in version


def test_the_schema_takes_what_podtier_writes_and_refuses_missing_ids() -> None:
    schema = as_json_schema(crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    written = profiles.profile_object(replace(PROFILE, resource_version=""))
    jsonschema.validate(written, schema)
    del written["spec"]["taskId"]
    with pytest.raises(jsonschema.ValidationError, match="taskId"):
        jsonschema.validate(written, schema)


def test_prometheus_url_becomes_the_flag_and_notes_say_learning_is_on() -> None:
    values = {"learning": {"prometheusURL": "http://prometheus.monitoring.svc:9090"}}
    assert (
        serve_flags(render(values))["--usage-prometheus"] == "http://prometheus.monitoring.svc:9090"
    )
    assert "Learning: on (TaskProfiles" in notes(values)
    assert "Learning: off (it needs headroom.enabled)" in notes({"headroom": {"enabled": False}})
