"""A policy test suite file, read into values, with `file: field.path: message` errors.

```yaml
apiVersion: podtier.io/v1alpha1
kind: PolicyTest
metadata: {name: data-team}
policies: [../../default.yaml, ../../examples/data-team.yaml]   # relative to this file
inputs: [inputs/pods.json]          # Pods, AdmissionReviews, `kubectl get -o json` Lists
cluster: cluster.json               # optional: `kubectl get namespaces,nodes,pods -A -o json`
namespaces: {data-eng: {team: data}}   # optional: namespace labels, for namespaceSelector
results:
  - pod: data-eng/spark-submit-x    # namespace/name, or name when it is unique
    input: inputs/pods.json         # optional: only pods from this file (alone: its one pod)
    tier: data-large
    pool: data
    allowed: true
    warnings: []                    # [] expects none; substrings expect each to appear
    patched:
      spec.containers[name=base].resources.limits.cpu: "8"
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from podtier.webhook.policytest import fieldpath

API_VERSION = "podtier.io/v1alpha1"
KIND = "PolicyTest"
SUITE_FIELDS = (
    "apiVersion",
    "kind",
    "metadata",
    "policies",
    "inputs",
    "cluster",
    "namespaces",
    "results",
)
RESULT_FIELDS = (
    "name",
    "pod",
    "input",
    "tier",
    "pool",
    "allowed",
    "reason",
    "warnings",
    "violations",
    "patched",
)
SUITE_SUFFIXES = ("-test.yaml", "-test.yml")


class SuiteError(ValueError):
    """A suite file that cannot be used. `str()` is `file: field.path: message`."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source = source
        self.path = path
        self.message = message
        super().__init__(f"{source}: {path}: {message}" if path else f"{source}: {message}")


@dataclass(frozen=True)
class Expectation:
    """What one pod should get. Only the fields a suite gives are checked."""

    pod: str  # namespace/name or name; "" to take the one pod of `input`
    path: str  # where in the suite: results[3]
    input: Path | None = None  # only pods read from this file
    name: str = ""
    checks: Mapping[str, Any] = field(default_factory=dict)  # tier, pool, allowed, reason, ...
    patched: tuple[tuple[str, list[fieldpath.Segment] | str, Any], ...] = ()

    @property
    def title(self) -> str:
        who = self.pod or (self.input.name if self.input else "?")
        return f"{who} ({self.name})" if self.name else who


@dataclass(frozen=True)
class Suite:
    file: Path
    name: str
    policies: tuple[Path, ...]
    inputs: tuple[Path, ...]
    cluster: Path | None
    namespaces: Mapping[str, Mapping[str, str]]
    expectations: tuple[Expectation, ...]


def find_suites(target: Path) -> list[Path]:
    """Suite files: `target` itself, or every `*-test.yaml` under it, in name order."""
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise SuiteError(str(target), "", "no such file or directory")
    found = sorted(p for p in target.rglob("*") if p.name.endswith(SUITE_SUFFIXES) and p.is_file())
    if not found:
        raise SuiteError(str(target), "", "holds no test suites (files named *-test.yaml)")
    return found


def load_suite(file: Path) -> Suite:
    source = str(file)
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise SuiteError(source, "", f"cannot read: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise SuiteError(source, "", f"not valid YAML: {err}") from None
    if not isinstance(doc, Mapping):
        raise SuiteError(source, "", f"expected a {KIND} object")
    _fields(source, doc, "", SUITE_FIELDS)
    if doc.get("apiVersion") != API_VERSION:
        raise SuiteError(source, "apiVersion", f"{doc.get('apiVersion')!r} is not {API_VERSION}")
    if doc.get("kind") != KIND:
        raise SuiteError(source, "kind", f"{doc.get('kind')!r} is not {KIND}")
    metadata = doc.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    base = file.parent

    policies = tuple(base / p for p in _strings(source, doc, "policies", required=True))
    inputs = tuple(base / p for p in _strings(source, doc, "inputs", required=True))
    cluster = doc.get("cluster")
    if cluster is not None and (not isinstance(cluster, str) or not cluster):
        raise SuiteError(source, "cluster", f"{cluster!r} is not a file name")
    namespaces = _namespaces(source, doc.get("namespaces"))
    raw_results = doc.get("results")
    if not isinstance(raw_results, list) or not raw_results:
        raise SuiteError(source, "results", "expected a non-empty list of expected results")
    expectations = tuple(_expectation(source, base, i, raw) for i, raw in enumerate(raw_results))
    return Suite(
        file=file,
        name=str(name) if name else file.stem,
        policies=policies,
        inputs=inputs,
        cluster=None if cluster is None else base / cluster,
        namespaces=namespaces,
        expectations=expectations,
    )


def _expectation(source: str, base: Path, index: int, raw: Any) -> Expectation:
    path = f"results[{index}]"
    if not isinstance(raw, Mapping):
        raise SuiteError(source, path, "expected a map with pod: and the expected fields")
    _fields(source, raw, path, RESULT_FIELDS)
    pod = raw.get("pod", "")
    if not isinstance(pod, str):
        raise SuiteError(source, f"{path}.pod", f"{pod!r} is not a pod (namespace/name or name)")
    input_file = raw.get("input")
    if input_file is not None and (not isinstance(input_file, str) or not input_file):
        raise SuiteError(source, f"{path}.input", f"{input_file!r} is not a file name")
    if not pod and input_file is None:
        raise SuiteError(source, path, "names no pod (give pod: namespace/name, or input: FILE)")
    checks: dict[str, Any] = {}
    for key in ("tier", "pool"):
        if key in raw:
            if raw[key] is not None and not isinstance(raw[key], str):
                raise SuiteError(source, f"{path}.{key}", f"{raw[key]!r} is not a name or null")
            checks[key] = raw[key]
    if "allowed" in raw:
        if not isinstance(raw["allowed"], bool):
            raise SuiteError(source, f"{path}.allowed", f"{raw['allowed']!r} is not true or false")
        checks["allowed"] = raw["allowed"]
    if "reason" in raw:
        if not isinstance(raw["reason"], str):
            raise SuiteError(source, f"{path}.reason", f"{raw['reason']!r} is not a string")
        checks["reason"] = raw["reason"]
    for key in ("warnings", "violations"):
        if key in raw:
            value = raw[key]
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SuiteError(source, f"{path}.{key}", "expected a substring or a list of them")
            checks[key] = tuple(value)
    patched = []
    raw_patched = raw.get("patched") or {}
    if not isinstance(raw_patched, Mapping):
        raise SuiteError(source, f"{path}.patched", "expected a map of field path to value")
    for field_path, value in raw_patched.items():
        try:
            parsed = fieldpath.parse(str(field_path))
        except fieldpath.FieldPathError as err:
            raise SuiteError(source, f"{path}.patched", str(err)) from None
        patched.append((str(field_path), parsed, value))
    if not checks and not patched:
        raise SuiteError(source, path, "expects nothing (give tier, pool, allowed, ... or patched)")
    name = raw.get("name")
    return Expectation(
        pod,
        path,
        None if input_file is None else base / input_file,
        str(name) if name else "",
        checks,
        tuple(patched),
    )


def _namespaces(source: str, raw: Any) -> dict[str, dict[str, str]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SuiteError(source, "namespaces", "expected a map of namespace name to its labels")
    out = {}
    for name, labels in raw.items():
        labels = labels or {}
        if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
            raise SuiteError(
                source, f"namespaces.{name}", "expected a map of label to string value"
            )
        out[str(name)] = {str(k): v for k, v in labels.items()}
    return out


def _strings(source: str, doc: Mapping[str, Any], key: str, required: bool) -> list[str]:
    raw = doc.get(key)
    if isinstance(raw, str):
        raw = [raw]
    if raw is None and not required:
        return []
    if not isinstance(raw, list) or not raw or not all(isinstance(v, str) and v for v in raw):
        raise SuiteError(
            source, key, "expected a non-empty list of file names (relative to the suite)"
        )
    return raw


def _fields(source: str, raw: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise SuiteError(source, where, f"unknown field (expected one of {', '.join(allowed)})")
