"""policies/schema.json and `podtier policy lint` agree on a table of broken files, and the
lint errors name the file, the field path, the value and what was expected."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from podtier.policies import DEFAULT_POLICY, POLICY_DIR, SCHEMA
from podtier.webhook.policy import PolicyError
from podtier.webhook.policy.load import load_policy

Doc = dict[str, Any]
DELETE = object()


def default_doc() -> Doc:
    return yaml.safe_load(DEFAULT_POLICY.read_text())


def edit(path: tuple[Any, ...], value: Any) -> Callable[[Doc], None]:
    """Set (or with DELETE remove) the value at `path` in a policy document."""

    def apply(doc: Doc) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = copy.deepcopy(value)

    return apply


@functools.cache
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def write(tmp_path: Path, doc: Any, name: str = "policy.yaml") -> Path:
    file = tmp_path / name
    file.write_text(yaml.safe_dump(doc, sort_keys=False))
    return file


def lint(file: Path) -> PolicyError | None:
    try:
        load_policy([file])
    except PolicyError as err:
        return err
    return None


RULE = {"name": "etl", "match": {"namespaces": ["data-*"]}, "tier": "heavy"}
SCALING = {"podsPerNode": 4, "minNodes": 1, "maxNodes": 10}
AUTOSCALING = {"maxNodes": 6, "node": {"cpu": "8", "memory": "32Gi"}, "provisionSeconds": 90}
AUTO = ("spec", "pools", "compute", "autoscaling")
COST = {"cpuHour": 0.031, "memoryGiBHour": 0.004, "gpuHour": 2.48}

# (edit, field path lint names, the value as lint shows it, what lint says it expected)
BROKEN = [
    pytest.param(
        edit(("apiVersion",), "podtier.io/v1"),
        "apiVersion",
        '"podtier.io/v1"',
        "podtier.io/v1alpha1",
        id="api-version",
    ),
    pytest.param(edit(("kind",), "Policy"), "kind", '"Policy"', "TierPolicy", id="kind"),
    pytest.param(
        edit(("metadata", "name"), DELETE),
        "metadata.name",
        "None",
        "non-empty string",
        id="no-name",
    ),
    pytest.param(
        edit(("specs",), {}),
        "specs",
        "unknown field",
        "expected one of apiVersion",
        id="unknown-top-field",
    ),
    pytest.param(
        edit(("spec", "tier"), {}),
        "spec.tier",
        "unknown field",
        "expected one of airflowPods",
        id="unknown-spec-field",
    ),
    pytest.param(
        edit(("spec", "mode"), "warn"), "spec.mode", '"warn"', "one of enforce, audit", id="mode"
    ),
    pytest.param(
        edit(("spec", "airflowPods"), []),
        "spec.airflowPods",
        "",
        "at least one label selector",
        id="airflow-pods-empty",
    ),
    pytest.param(
        edit(("spec", "airflowPods", 0), {}),
        "spec.airflowPods[0]",
        "",
        "expected matchLabels or matchExpressions",
        id="empty-selector",
    ),
    pytest.param(
        edit(("spec", "airflowPods", 1, "matchExpressions", 0, "operator"), "exists"),
        "spec.airflowPods[1].matchExpressions[0].operator",
        '"exists"',
        "one of In, NotIn, Exists",
        id="selector-operator",
    ),
    pytest.param(
        edit(
            ("spec", "airflowPods", 1, "matchExpressions", 0),
            {"key": "airflow-worker", "operator": "In"},
        ),
        "spec.airflowPods[1].matchExpressions[0].values",
        "In",
        "needs values",
        id="in-without-values",
    ),
    pytest.param(
        edit(("spec", "airflowPods", 1, "matchExpressions", 0, "values"), ["x"]),
        "spec.airflowPods[1].matchExpressions[0].values",
        "Exists",
        "takes no values",
        id="exists-with-values",
    ),
    pytest.param(
        edit(("spec", "airflowPods", 0, "matchLabels", "kubernetes_executor"), True),
        "spec.airflowPods[0].matchLabels.kubernetes_executor",
        "True",
        "not a string (quote it)",
        id="label-value-bool",
    ),
    pytest.param(
        edit(("spec", "tierKeys", 1), 3),
        "spec.tierKeys[1]",
        "3",
        "not a non-empty string",
        id="tier-key-number",
    ),
    pytest.param(
        edit(("spec", "ceilings", "cpu"), "16 cores"),
        "spec.ceilings.cpu",
        '"16 cores"',
        "expected a Kubernetes quantity",
        id="ceiling-words",
    ),
    pytest.param(
        edit(("spec", "ceilings", "cpu"), "-1"),
        "spec.ceilings.cpu",
        '"-1"',
        "expected a Kubernetes quantity",
        id="ceiling-negative",
    ),
    pytest.param(
        edit(("spec", "ceilings", "memory"), -5),
        "spec.ceilings.memory",
        "-5",
        "negative",
        id="ceiling-negative-number",
    ),
    pytest.param(
        edit(("spec", "tiers", "light", "requests", "cpu"), "lots"),
        "spec.tiers.light.requests.cpu",
        '"lots"',
        "expected a Kubernetes quantity",
        id="request-words",
    ),
    pytest.param(
        edit(("spec", "tiers", "light", "limits", "memory"), "1 Gi"),
        "spec.tiers.light.limits.memory",
        '"1 Gi"',
        "expected a Kubernetes quantity",
        id="quantity-with-blank",
    ),
    pytest.param(
        edit(("spec", "tiers", "light", "requests", "cpu"), True),
        "spec.tiers.light.requests.cpu",
        "True",
        "expected a string such as 500m",
        id="quantity-bool",
    ),
    pytest.param(
        edit(("spec", "tiers", "light", "placement"), []),
        "spec.tiers.light.placement",
        "empty",
        "at least one pool name",
        id="placement-empty",
    ),
    pytest.param(
        edit(("spec", "tiers", "light", "placement"), DELETE),
        "spec.tiers.light.placement",
        "empty",
        "at least one pool name",
        id="placement-missing",
    ),
    pytest.param(
        edit(("spec", "tiers", "light", "limit"), {}),
        "spec.tiers.light.limit",
        "unknown field",
        "expected one of requests, limits",
        id="tier-unknown-field",
    ),
    pytest.param(
        edit(("spec", "tiers", "light", "override"), "sometimes"),
        "spec.tiers.light.override",
        '"sometimes"',
        "one of missing, always, never",
        id="tier-override",
    ),
    pytest.param(
        edit(("spec", "tiers", "heavy", "downgradeTo"), 3),
        "spec.tiers.heavy.downgradeTo",
        "3",
        "not a tier name",
        id="downgrade-number",
    ),
    pytest.param(
        edit(("spec", "tiers"), ["light"]),
        "spec.tiers",
        "['light']",
        "expected a map",
        id="tiers-list",
    ),
    pytest.param(
        edit(("spec", "tiers", "light", "requests"), ["250m"]),
        "spec.tiers.light.requests",
        "['250m']",
        "expected a map",
        id="requests-list",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "nodeSelector"), DELETE),
        "spec.pools.worker.nodeSelector",
        "",
        "at least one node label",
        id="pool-no-selector",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "nodeSelector"), {}),
        "spec.pools.worker.nodeSelector",
        "",
        "at least one node label",
        id="pool-empty-selector",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "tolerations", 0, "operator"), "Equals"),
        "spec.pools.worker.tolerations[0].operator",
        '"Equals"',
        "one of Equal, Exists",
        id="toleration-operator",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "tolerations", 0, "effect"), "NoSchedul"),
        "spec.pools.worker.tolerations[0].effect",
        '"NoSchedul"',
        "one of NoSchedule, PreferNoSchedule, NoExecute",
        id="toleration-effect",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "tolerations", 0, "tolerationSeconds"), "300"),
        "spec.pools.worker.tolerations[0].tolerationSeconds",
        '"300"',
        "whole number of seconds",
        id="toleration-seconds-string",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "taints"), []),
        "spec.pools.worker.taints",
        "unknown field",
        "expected one of nodeSelector, tolerations",
        id="pool-unknown-field",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "scaling"), {**SCALING, "podsPerNode": 0}),
        "spec.pools.worker.scaling.podsPerNode",
        "0",
        "whole number >= 1",
        id="scaling-k-zero",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "scaling"), {**SCALING, "minNodes": "2"}),
        "spec.pools.worker.scaling.minNodes",
        '"2"',
        "whole number >= 0",
        id="scaling-min-string",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "scaling"), {"podsPerNode": 4, "minNodes": 1}),
        "spec.pools.worker.scaling.maxNodes",
        "",
        "is required",
        id="scaling-no-max",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "scaling"), {**SCALING, "max": 3}),
        "spec.pools.worker.scaling.max",
        "unknown field",
        "expected one of podsPerNode, minNodes, maxNodes",
        id="scaling-unknown-field",
    ),
    pytest.param(
        edit(AUTO, {"maxNodes": 6, "node": {"cpu": "8", "memory": "32Gi"}}),
        "spec.pools.compute.autoscaling.provisionSeconds",
        "",
        "is required",
        id="autoscaling-no-provision-seconds",
    ),
    pytest.param(
        edit(AUTO, {**AUTOSCALING, "provisionSeconds": -5}),
        "spec.pools.compute.autoscaling.provisionSeconds",
        "-5",
        "number >= 0 and <= 86400",
        id="autoscaling-negative-provision",
    ),
    pytest.param(
        edit(AUTO, {**AUTOSCALING, "provisionSeconds": 1e9}),
        "spec.pools.compute.autoscaling.provisionSeconds",
        "1000000000",
        "number >= 0 and <= 86400",
        id="autoscaling-huge-provision",
    ),
    pytest.param(
        edit(AUTO, {**AUTOSCALING, "maxNodes": 0}),
        "spec.pools.compute.autoscaling.maxNodes",
        "0",
        "whole number >= 1",
        id="autoscaling-max-zero",
    ),
    pytest.param(
        edit(AUTO, {**AUTOSCALING, "maxNodes": 100_000}),
        "spec.pools.compute.autoscaling.maxNodes",
        "100000",
        "whole number <= 5000",
        id="autoscaling-max-absurd",
    ),
    pytest.param(
        edit(AUTO, {**AUTOSCALING, "node": {"cpu": "8"}}),
        "spec.pools.compute.autoscaling.node.memory",
        "missing",
        "a node's memory is required and above 0",
        id="autoscaling-node-without-memory",
    ),
    pytest.param(
        edit(AUTO, {**AUTOSCALING, "grow": True}),
        "spec.pools.compute.autoscaling.grow",
        "unknown field",
        "expected one of maxNodes, node, provisionSeconds",
        id="autoscaling-unknown-field",
    ),
    pytest.param(
        edit(("spec", "tiers", "heavy", "maxWaitSeconds"), -1),
        "spec.tiers.heavy.maxWaitSeconds",
        "-1",
        "number >= 0 and <= 86400",
        id="max-wait-negative",
    ),
    pytest.param(
        edit(("spec", "tiers", "heavy", "maxWaitSeconds"), "2m"),
        "spec.tiers.heavy.maxWaitSeconds",
        '"2m"',
        "number >= 0",
        id="max-wait-string",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "cost"), {**COST, "cpuHour": -0.1}),
        "spec.pools.worker.cost.cpuHour",
        "-0.1",
        "expected a number >= 0",
        id="cost-negative",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "cost"), {**COST, "memoryGiBHour": "0.004"}),
        "spec.pools.worker.cost.memoryGiBHour",
        '"0.004"',
        "is not a price",
        id="cost-string",
    ),
    pytest.param(
        edit(("spec", "pools", "gpu", "cost"), {"gpu": 2.5}),
        "spec.pools.gpu.cost.gpu",
        "unknown field",
        "expected one of cpuHour, memoryGiBHour, gpuHour",
        id="cost-unknown-field",
    ),
    pytest.param(
        edit(("spec", "pools", "gpu", "cost"), {}),
        "spec.pools.gpu.cost",
        "is empty",
        "at least one of cpuHour",
        id="cost-empty",
    ),
    pytest.param(
        edit(("spec", "currency"), ""),
        "spec.currency",
        '""',
        "non-empty string",
        id="currency-empty",
    ),
    pytest.param(
        edit(("spec", "rules"), {"etl": RULE}),
        "spec.rules",
        "{'etl'",
        "expected a list",
        id="rules-map",
    ),
    pytest.param(
        edit(("spec", "rules"), [{"name": "etl", "match": {"dagId": "etl_*"}}]),
        "spec.rules[0]",
        "",
        "at least one of tier, pools, override",
        id="rule-does-nothing",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "tiers": ["heavy"]}]),
        "spec.rules[0].tiers",
        "unknown field",
        "expected one of name, match, tier",
        id="rule-unknown-field",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "match": {"namespace": "data"}}]),
        "spec.rules[0].match.namespace",
        "unknown field",
        "expected one of namespaces, namespaceSelector",
        id="match-unknown-field",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "match": {"dagId": ""}}]),
        "spec.rules[0].match.dagId",
        '""',
        "not a non-empty string",
        id="dag-id-empty",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "match": {"namespaces": "data"}}]),
        "spec.rules[0].match.namespaces",
        '"data"',
        "expected a list",
        id="namespaces-string",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "override": "sometimes"}]),
        "spec.rules[0].override",
        '"sometimes"',
        "one of missing, always, never",
        id="rule-override",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "pools": []}]),
        "spec.rules[0].pools",
        "empty",
        "at least one pool name",
        id="rule-pools-empty",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "match": {"labels": {}}}]),
        "spec.rules[0].match.labels",
        "",
        "expected matchLabels or matchExpressions",
        id="rule-labels-empty",
    ),
    pytest.param(
        edit(
            ("spec", "rules"),
            [
                {
                    **RULE,
                    "match": {
                        "namespaceSelector": {
                            "matchExpressions": [{"key": "team", "operator": "Is"}]
                        }
                    },
                }
            ],
        ),
        "spec.rules[0].match.namespaceSelector.matchExpressions[0].operator",
        '"Is"',
        "one of In, NotIn",
        id="namespace-selector-operator",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "name": ""}]),
        "spec.rules[0].name",
        '""',
        "non-empty string",
        id="rule-name-empty",
    ),
    pytest.param(
        edit(("spec", "defaultTier"), 3),
        "spec.defaultTier",
        "3",
        "known: light, medium, heavy, gpu",
        id="default-tier-number",
    ),
    pytest.param(
        edit(("spec", "learning"), {"rightsizing": "apply"}),
        "spec.learning.rightsizing",
        "unknown field",
        "expected one of oomEscalation, rightSizing",
        id="learning-unknown-field",
    ),
    pytest.param(
        edit(("spec", "learning"), {"rightSizing": "always"}),
        "spec.learning.rightSizing",
        '"always"',
        "one of off, recommend, apply",
        id="right-sizing-mode",
    ),
    pytest.param(
        edit(("spec", "learning"), {"minRuns": 0}),
        "spec.learning.minRuns",
        "0",
        "whole number >= 1",
        id="min-runs-zero",
    ),
    pytest.param(
        edit(("spec", "learning"), {"margin": -0.1}),
        "spec.learning.margin",
        "-0.1",
        "not a number >= 0",
        id="margin-negative",
    ),
    pytest.param(
        edit(("spec", "learning"), {"halfLifeHours": 0}),
        "spec.learning.halfLifeHours",
        "0",
        "not a number > 0",
        id="half-life-zero",
    ),
    pytest.param(
        edit(("spec", "learning"), {"oomEscalation": {"enabled": "yes"}}),
        "spec.learning.oomEscalation.enabled",
        '"yes"',
        "not true or false",
        id="oom-enabled-string",
    ),
    pytest.param(
        edit(("spec", "learning"), {"oomEscalation": {"factor": 2}}),
        "spec.learning.oomEscalation.factor",
        "unknown field",
        "expected one of enabled, explicitResources",
        id="oom-unknown-field",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "learning": {"halfLifeHours": 12}}]),
        "spec.rules[0].learning.halfLifeHours",
        "unknown field",
        "expected one of oomEscalation, rightSizing, sizing, minRuns, margin",
        id="rule-learning-half-life",
    ),
    pytest.param(
        edit(("spec", "learning"), {"sizing": "pods"}),
        "spec.learning.sizing",
        '"pods"',
        "one of tier, resources",
        id="sizing-mode",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "learning": {"cpuLimit": "off"}}]),
        "spec.rules[0].learning.cpuLimit",
        '"off"',
        "one of tier, none",
        id="rule-cpu-limit-mode",
    ),
    pytest.param(
        edit(("spec", "learning"), {"limitMargin": -1}),
        "spec.learning.limitMargin",
        "-1",
        "not a number >= 0",
        id="limit-margin-negative",
    ),
    pytest.param(
        edit(("spec", "learning"), {"cpuMargin": 11}),
        "spec.learning.cpuMargin",
        "11",
        "<= 10",
        id="cpu-margin-huge",
    ),
    pytest.param(
        edit(("spec", "learning"), {"floor": {"nvidia.com/gpu": 1}}),
        "spec.learning.floor.nvidia.com/gpu",
        "unknown field",
        "expected one of cpu, memory",
        id="floor-unknown-resource",
    ),
    pytest.param(
        edit(("spec", "learning"), {"floor": {"memory": "lots"}}),
        "spec.learning.floor.memory",
        '"lots"',
        "not a quantity",
        id="floor-not-a-quantity",
    ),
]

VALID = [
    pytest.param(lambda doc: None, id="default-policy"),
    pytest.param(edit(("spec", "rules"), None), id="rules-null"),
    pytest.param(edit(("spec", "tierKeys"), None), id="tier-keys-null"),
    pytest.param(
        edit(("spec", "tiers", "light", "requests"), {"cpu": 0.25, "memory": "5e8"}),
        id="quantities-as-numbers",
    ),
    pytest.param(
        edit(("spec", "tiers", "light", "limits", "memory"), "+1Gi"), id="quantity-plus-sign"
    ),
    pytest.param(
        edit(
            ("spec", "pools", "worker", "tolerations", 0),
            {"key": "dedicated", "operator": "Exists", "tolerationSeconds": 300},
        ),
        id="toleration-seconds",
    ),
    pytest.param(
        edit(
            ("spec", "rules"),
            [
                {
                    "name": "data team",
                    "match": {
                        "namespaceSelector": {"matchLabels": {"team": "data"}},
                        "dagId": "etl_*",
                        "taskId": "load_?",
                    },
                    "tier": "heavy",
                    "pools": ["compute"],
                    "override": "always",
                },
                {"name": "catch-all", "match": None, "override": "never"},
            ],
        ),
        id="rules-with-every-match-field",
    ),
    pytest.param(edit(("spec", "pools", "worker", "scaling"), SCALING), id="scaling"),
    pytest.param(edit(("spec", "pools", "gpu", "cost"), COST), id="cost"),
    pytest.param(edit(AUTO, AUTOSCALING), id="autoscaling"),
    pytest.param(
        edit(
            ("spec", "tiers", "heavy"), {"placement": ["compute", "worker"], "maxWaitSeconds": 120}
        ),
        id="max-wait",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "cost"), {"cpuHour": 0, "memoryGiBHour": 1}),
        id="cost-partial-and-zero",
    ),
    pytest.param(edit(("spec", "currency"), "EUR"), id="currency"),
    pytest.param(
        edit(("spec", "pools", "gpu", "scaling"), {"podsPerNode": 1, "maxNodes": 0}),
        id="scaling-min-defaults-to-zero",
    ),
    pytest.param(
        edit(("spec",), {"tiers": {"xl": {"requests": {"cpu": "8"}, "placement": ["compute"]}}}),
        id="partial-file-for-a-set",
    ),
    pytest.param(
        edit(
            ("spec", "learning"),
            {
                "oomEscalation": {"enabled": True, "explicitResources": True},
                "rightSizing": "apply",
                "sizing": "resources",
                "minRuns": 3,
                "margin": 0.25,
                "cpuMargin": 0.1,
                "limitMargin": 0.5,
                "cpuLimit": "none",
                "floor": {"cpu": "25m", "memory": "128Mi"},
                "halfLifeHours": 12.5,
            },
        ),
        id="learning-every-field",
    ),
    pytest.param(
        edit(
            ("spec", "rules"),
            [
                {
                    "name": "reports sized by tier",
                    "match": {"dagId": "report_*"},
                    "learning": {"sizing": "tier", "limitMargin": 0.2, "floor": {"cpu": 0.1}},
                }
            ],
        ),
        id="rule-with-sizing",
    ),
    pytest.param(
        edit(
            ("spec", "rules"),
            [
                {
                    "name": "experiments are left alone",
                    "match": {"dagId": "experiment_*"},
                    "learning": {"oomEscalation": {"enabled": False}, "rightSizing": "off"},
                }
            ],
        ),
        id="rule-with-learning-only",
    ),
]

# What the schema cannot see, so only lint rejects: names defined in the merged set, required
# settings of the set, arithmetic between fields, and YAML-level problems.
LINT_ONLY = [
    pytest.param(
        edit(("spec", "defaultTier"), "huge"),
        "spec.defaultTier",
        '"huge"',
        "known: light",
        id="default-tier-unknown",
    ),
    pytest.param(
        edit(("spec", "tiers", "light", "placement"), ["workers"]),
        "spec.tiers.light.placement[0]",
        '"workers"',
        "known: worker, compute, gpu",
        id="placement-unknown-pool",
    ),
    pytest.param(
        edit(("spec", "tiers", "heavy", "downgradeTo"), "mediun"),
        "spec.tiers.heavy.downgradeTo",
        '"mediun"',
        "known: light",
        id="downgrade-unknown-tier",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "tier": "huge"}]),
        "spec.rules[0].tier",
        '"huge"',
        "known: light",
        id="rule-unknown-tier",
    ),
    pytest.param(
        edit(("spec", "rules"), [{**RULE, "pools": ["fast"]}]),
        "spec.rules[0].pools[0]",
        '"fast"',
        "known: worker",
        id="rule-unknown-pool",
    ),
    pytest.param(
        edit(("spec", "tiers", "light", "limits", "cpu"), "100m"),
        "spec.tiers.light.limits.cpu",
        "100m is below the tier's request 250m",
        "at least as large as the request",
        id="limit-below-request",
    ),
    pytest.param(
        edit(("spec", "ceilings", "cpu"), "1e30"),
        "spec.ceilings.cpu",
        '"1e30"',
        "too large",
        id="quantity-too-large",
    ),
    pytest.param(
        edit(("spec", "pools", "worker", "scaling"), {**SCALING, "minNodes": 5, "maxNodes": 2}),
        "spec.pools.worker.scaling.maxNodes",
        "2 is below minNodes 5",
        "expected maxNodes >= minNodes",
        id="scaling-max-below-min",
    ),
    pytest.param(
        edit(AUTO, {**AUTOSCALING, "node": {"cpu": "0", "memory": "32Gi"}}),
        "spec.pools.compute.autoscaling.node.cpu",
        "0: a node's cpu",
        "required and above 0",
        id="autoscaling-node-zero-cpu",
    ),
    pytest.param(
        edit(AUTO, {**AUTOSCALING, "node": {"cpu": "8", "memory": "1Ei"}}),
        "spec.pools.compute.autoscaling.node.memory",
        "1Ei is too large for a node",
        "at most 64Ti",
        id="autoscaling-node-absurd-memory",
    ),
    pytest.param(
        edit(("spec", "defaultTier"), DELETE),
        "spec.defaultTier",
        "",
        "is required",
        id="default-tier-missing-from-set",
    ),
]


@pytest.mark.parametrize(("change", "field", "value", "expected"), BROKEN)
def test_lint_and_schema_both_reject(
    tmp_path: Path, change: Callable[[Doc], None], field: str, value: str, expected: str
) -> None:
    doc = default_doc()
    change(doc)
    file = write(tmp_path, doc)
    schema_errors = list(validator().iter_errors(doc))
    err = lint(file)
    assert schema_errors, "the schema accepts a file that lint rejects"
    assert err is not None, "lint accepts a file that the schema rejects"
    assert str(err).startswith(f"{file}: {field}: ")
    assert value in err.message
    assert expected in err.message


@pytest.mark.parametrize("change", VALID)
def test_lint_and_schema_both_accept(tmp_path: Path, change: Callable[[Doc], None]) -> None:
    doc = default_doc()
    change(doc)
    schema_errors = [e.message for e in validator().iter_errors(doc)]
    assert schema_errors == []
    if set(doc["spec"]) >= {"airflowPods", "defaultTier"}:
        assert lint(write(tmp_path, doc)) is None
    else:  # a partial file: lint checks it as part of a set, with the default policy
        load_policy([DEFAULT_POLICY, write(tmp_path, doc)])


@pytest.mark.parametrize(("change", "field", "value", "expected"), LINT_ONLY)
def test_checks_beyond_the_schema_are_lint_errors(
    tmp_path: Path, change: Callable[[Doc], None], field: str, value: str, expected: str
) -> None:
    doc = default_doc()
    change(doc)
    assert list(validator().iter_errors(doc)) == []
    file = write(tmp_path, doc)
    err = lint(file)
    assert err is not None
    assert str(err).startswith(f"{file}: {field}: ")
    assert value in err.message
    assert expected in err.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "apiVersion: a\napiVersion: b\n", "duplicate key 'apiVersion'", id="duplicate-key"
        ),
        pytest.param("spec: [unclosed\n", "not valid YAML: line 2", id="syntax"),
        pytest.param("# only a comment\n", "holds no policy document", id="empty"),
        pytest.param("- a\n- b\n", "expected a TierPolicy object, got a list", id="not-an-object"),
    ],
)
def test_yaml_problems_name_the_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text(text)
    err = lint(file)
    assert err is not None
    assert str(err).startswith(f"{file}: ")
    assert expected in str(err)


@pytest.mark.parametrize(
    "file",
    [
        pytest.param(p, id=str(p.relative_to(POLICY_DIR)))
        for p in sorted(POLICY_DIR.rglob("*.yaml"))
        if "tests" not in p.parts
    ],
)
def test_shipped_policy_files_validate_and_carry_the_modeline(file: Path) -> None:
    text = file.read_text()
    for doc in yaml.safe_load_all(text):
        assert [e.message for e in validator().iter_errors(doc)] == []
    modeline = text.splitlines()[0]
    assert modeline.startswith("# yaml-language-server: $schema=")
    target = (file.parent / modeline.split("$schema=", 1)[1].strip()).resolve()
    assert target == SCHEMA
