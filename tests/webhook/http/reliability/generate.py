"""Hypothesis strategies for AdmissionReviews: generated Airflow pods (valid and invalid), and
random damage to the real fixtures. Shared by the CI fuzz tests and `bench/fuzz_long.py`."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from hypothesis import strategies as st

from tests.conftest import FIXTURES, load_review, review_of

FIXTURE_NAMES = tuple(sorted(p.stem.split("_", 1)[0] for p in FIXTURES.glob("*.json")))

# Labels Airflow puts on worker and KubernetesPodOperator pods, and podtier's own keys.
AIRFLOW_LABELS: dict[str, st.SearchStrategy[str]] = {
    "kubernetes_executor": st.sampled_from(["True", "False", "true", ""]),
    "airflow-worker": st.sampled_from(["42", "0", ""]),
    "kubernetes_pod_operator": st.sampled_from(["True", "False"]),
    "dag_id": st.sampled_from(["sales_etl", "resize_me", "hands_off_etl", "x" * 63]),
    "task_id": st.sampled_from(["extract_orders", "train", "t.1"]),
    "try_number": st.sampled_from(["1", "2", "10"]),
    "run_id": st.sampled_from(["manual__2026-11-26T0500000000-51e150d46", "scheduled__x"]),
    "map_index": st.sampled_from(["-1", "0", "7"]),
    "airflow_version": st.just("3.3.2"),
    "tier": st.sampled_from(["light", "medium", "heavy", "gpu", "burst", "standard", ""]),
    "podtier.io/tier": st.sampled_from(["light", "medium", "heavy", "gpu", "burst", "nope"]),
    "podtier.io/pool": st.sampled_from(["worker", "compute", "gpu", "nope"]),
    "podtier.io/downgrade": st.sampled_from(["false", "true"]),
}
PODTIER_ANNOTATIONS: dict[str, st.SearchStrategy[str]] = {
    "podtier.io/tier": AIRFLOW_LABELS["podtier.io/tier"],
    "podtier.io/pool": AIRFLOW_LABELS["podtier.io/pool"],
    "podtier.io/policy": st.sampled_from(["default@sha256:0000000000000000", "x"]),
    "podtier.io/reason": st.text(max_size=20),
    "dag_id": AIRFLOW_LABELS["dag_id"],
    "task_id": AIRFLOW_LABELS["task_id"],
}
RESOURCE_NAMES = ["cpu", "memory", "nvidia.com/gpu", "ephemeral-storage", "hugepages-2Mi"]

VALID_QUANTITIES = st.one_of(
    st.sampled_from(
        [
            "0",
            "100m",
            "250m",
            "500m",
            "1",
            "2",
            "4",
            "16",
            "17",
            "1.5",
            "512Mi",
            "1Gi",
            "2Gi",
            "4Gi",
            "8Gi",
            "16Gi",
            "64Gi",
            "100Gi",
            "1e3",
            "0.0000001m",
            "1E",
            "1500M",
            "9223372036854775807",
        ]
    ),
    st.builds(
        lambda n, unit: f"{n}{unit}",
        st.integers(0, 70_000),
        st.sampled_from(["", "m", "Ki", "Mi", "Gi", "k", "M", "G"]),
    ),
)
INVALID_QUANTITIES = st.one_of(
    st.sampled_from(
        [
            "-1",
            "1e400",
            "abc",
            "",
            "1.2.3",
            "0x10",
            "NaN",
            "Infinity",
            "1Zi",
            "- 1",
            "9223372036854775808",
        ]
    ),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _resource_map(quantities: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(RESOURCE_NAMES), quantities, max_size=3)


# Built once: hypothesis spends most of its time building and validating strategies otherwise.
RESOURCE_MAPS = {
    False: _resource_map(VALID_QUANTITIES),
    True: _resource_map(st.one_of(VALID_QUANTITIES, VALID_QUANTITIES, INVALID_QUANTITIES)),
}
RESOURCE_SHAPES = st.sampled_from(["none", "empty", "requests", "limits", "both"])


@st.composite
def containers(draw: st.DrawFn, name: st.SearchStrategy[str], invalid: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": draw(name), "image": "apache/airflow:3.3.2"}
    shape = draw(RESOURCE_SHAPES)
    if shape == "empty":
        container["resources"] = {}
    elif shape != "none":
        resources = {}
        if shape in ("requests", "both"):
            resources["requests"] = draw(RESOURCE_MAPS[invalid])
        if shape in ("limits", "both"):
            resources["limits"] = draw(RESOURCE_MAPS[invalid])
        container["resources"] = resources
    return container


MAIN_NAMES = st.sampled_from(["base"] * 8 + ["main", "Base"])
APP_CONTAINERS = {
    invalid: (
        containers(MAIN_NAMES, invalid),
        st.lists(
            containers(st.sampled_from(["airflow-xcom-sidecar", "proxy", "base"]), invalid),
            max_size=2,
        ),
        st.lists(containers(st.sampled_from(["init", "git-sync"]), invalid), max_size=2),
    )
    for invalid in (False, True)
}
LABEL_KEYS = st.sets(st.sampled_from(sorted(AIRFLOW_LABELS)), max_size=8)
ANNOTATION_KEYS = st.sets(st.sampled_from(sorted(PODTIER_ANNOTATIONS)), max_size=4)


TOLERATIONS = st.one_of(
    st.sampled_from(
        [
            {"key": "dedicated", "operator": "Equal", "value": "worker", "effect": "NoSchedule"},
            {"key": "workload", "operator": "Equal", "value": "heavy", "effect": "NoSchedule"},
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"operator": "Exists"},
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ]
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "key": st.text(max_size=10),
            "operator": st.sampled_from(["Equal", "Exists"]),
            "value": st.text(max_size=10),
            "effect": st.sampled_from(["NoSchedule", "NoExecute", ""]),
        },
    ),
)
TOLERATION_LISTS = st.lists(TOLERATIONS, max_size=3)
NODE_SELECTORS = st.dictionaries(
    st.sampled_from(["node-type", "kubernetes.io/arch", "zone", "a~b/c"]),
    st.sampled_from(["worker", "compute-optimized", "gpu", "amd64", "x"]),
    max_size=3,
)


@st.composite
def airflow_pods(draw: st.DrawFn, invalid: bool = False) -> dict[str, Any]:
    """A pod shaped like Airflow's: labels from the Airflow set, a `base` container (mostly),
    sidecars, init containers (some restartable), tolerations, a nodeSelector."""
    labels = {key: draw(AIRFLOW_LABELS[key]) for key in sorted(draw(LABEL_KEYS))}
    if draw(st.booleans()):
        labels["kubernetes_executor"] = "True"
    annotations = {key: draw(PODTIER_ANNOTATIONS[key]) for key in sorted(draw(ANNOTATION_KEYS))}

    main, others, init_containers = APP_CONTAINERS[invalid]
    app = [draw(main), *draw(others)]
    if draw(st.booleans()):
        app.reverse()
    inits = draw(init_containers)
    for init in inits:
        if draw(st.booleans()):
            init["restartPolicy"] = "Always"

    spec: dict[str, Any] = {"containers": app}
    if inits:
        spec["initContainers"] = inits
    if draw(st.booleans()):
        spec["tolerations"] = draw(TOLERATION_LISTS)
    if draw(st.booleans()):
        spec["nodeSelector"] = draw(NODE_SELECTORS)
    if draw(st.integers(0, 9)) == 0:
        spec["overhead"] = draw(RESOURCE_MAPS[invalid])
    metadata: dict[str, Any] = {
        "name": "sales-etl-extract-orders-abc",
        "namespace": "airflow",
        "labels": labels,
    }
    if annotations or draw(st.booleans()):
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


VALID_PODS = airflow_pods(invalid=False)
INVALID_PODS = airflow_pods(invalid=True)
OPERATIONS = st.sampled_from(["CREATE"] * 6 + ["UPDATE", "DELETE", "CONNECT"])
UIDS = st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=40))


@st.composite
def generated_reviews(draw: st.DrawFn) -> dict[str, Any]:
    pod = draw(VALID_PODS if draw(st.integers(0, 3)) else INVALID_PODS)
    operation = draw(OPERATIONS)
    uid = draw(UIDS)
    review = review_of(pod, operation=operation, uid=uid)
    review["request"]["dryRun"] = draw(st.booleans())
    return review


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and list indexes) into a JSON value, the root excluded."""
    out = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append((*prefix, key))
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.append((*prefix, i))
            out += _paths(item, (*prefix, i))
    return out


def _retype(value: Any) -> Any:
    """The same content as a different JSON type."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return int(value) if value.isdigit() else [value]
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


# Parsed once: each example deep-copies, which is cheap next to re-reading the files.
_FIXTURES = {name: load_review(name) for name in FIXTURE_NAMES}


FIXTURE_CHOICE = st.sampled_from(FIXTURE_NAMES)
DAMAGE = st.sampled_from(["drop", "replace", "retype"])


@st.composite
def damaged_fixtures(draw: st.DrawFn) -> dict[str, Any]:
    """A real fixture with one to three fields dropped, replaced or retyped. The uid is fresh,
    unless the damage hits it."""
    review = copy.deepcopy(_FIXTURES[draw(FIXTURE_CHOICE)])
    review["request"]["uid"] = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1))))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(review)
        # Favour the parts podtier reads: the pod's metadata and spec.
        hot = [
            p
            for p in paths
            if p[:3] in (("request", "object", "spec"), ("request", "object", "metadata"))
        ]
        pool = (hot or paths) if draw(st.integers(0, 3)) else paths
        path = pool[draw(st.integers(0, len(pool) - 1))]
        parent = review
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        action = draw(DAMAGE)
        if action == "drop":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(JSON_VALUES)
        else:
            parent[key] = _retype(parent[key])
    return review


REVIEWS = st.one_of(generated_reviews(), damaged_fixtures())
