"""Render the podtier chart with Helm's own engine (helm-python-sdk) and look objects up."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import helm_python
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "podtier"
SCENARIO_FILES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
RELEASE = "podtier"
NAMESPACE = "podtier"

Manifest = dict[str, Any]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART_DIR)


def scenario_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def render_files(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> dict[str, str]:
    """{template path: rendered text}, as `helm install --dry-run` would produce."""
    return dict(_render_cached(json.dumps(values or {}, sort_keys=True), name, namespace))


@functools.lru_cache(maxsize=256)
def _render_cached(values_json: str, name: str, namespace: str) -> tuple[tuple[str, str], ...]:
    rendered = chart().render(
        json.loads(values_json), name=name, namespace=namespace, is_install=True
    )
    return tuple(sorted(rendered.items()))


def render(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> list[Manifest]:
    """Every object the chart renders for these values (NOTES.txt left out)."""
    objects: list[Manifest] = []
    for path, text in sorted(render_files(values, name=name, namespace=namespace).items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.load_all(text, Loader=_LOADER) if doc)
    return objects


def notes(values: dict[str, Any] | None = None) -> str:
    files = render_files(values)
    return next(text for path, text in files.items() if path.endswith("NOTES.txt"))


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[Manifest], kind: str) -> Manifest:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def pod_spec(objects: list[Manifest]) -> Manifest:
    spec: Manifest = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(objects: list[Manifest]) -> Manifest:
    containers = pod_spec(objects)["containers"]
    assert len(containers) == 1
    found: Manifest = containers[0]
    return found


def serve_flags(objects: list[Manifest]) -> dict[str, str | None]:
    """The container's `podtier serve` flags: {"--port": "8443", "--manage-certs": None, ...}."""
    flags: dict[str, str | None] = {}
    for arg in container(objects)["args"]:
        name, sep, value = arg.partition("=")
        flags[name] = value if sep else None
    return flags


def serving_certificate(objects: list[Manifest]) -> Manifest:
    """cert-manager mode: the Certificate podtier serves with (not the chart-made CA's)."""
    found = [c for c in of_kind(objects, "Certificate") if not c["spec"].get("isCA")]
    assert len(found) == 1
    return found[0]
