"""`policies/schema.json` and the field tables of docs/policy.md, made from the declarations.

The tiers, pools and learning sections come from `policy.spec`; the file's frame (header,
metadata, the spec's settings, label selectors, rules and their match) is written here. A test
checks that the checked-in files are what this makes; regenerate them with

    python tests/webhook/policy/policy_doc.py --write
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from podtier.webhook.core.policy import Cost, Learning, Pool, Scaling, Tier
from podtier.webhook.policy.declare import Field, Schema, Section, section_schema
from podtier.webhook.policy.spec import COST, LEARNING, POOL, RULE_LEARNING, SCALING, TIER

NAME = {"$ref": "#/$defs/name"}
QUANTITY_PATTERN = (
    r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)


def policy_schema() -> Schema:
    """The JSON Schema of one policy file."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://podtier.io/schemas/tierpolicy-v1alpha1.json",
        "title": "podtier TierPolicy (podtier.io/v1alpha1)",
        "description": "One podtier policy file. Several files merge into one policy (see "
        "docs/policy.md); checks that need the whole set (names a tier or pool defined "
        "elsewhere, a setting defined twice, a limit below its request, required settings) "
        "are made by `podtier policy lint`, not by this schema.",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"const": "podtier.io/v1alpha1"},
            "kind": {"const": "TierPolicy"},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {
                        **NAME,
                        "description": "The policy's name, shown in podtier.io/policy with the "
                        "content hash.",
                    }
                },
            },
            "spec": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {**_settings(), "learning": _learning()},
            },
        },
        "$defs": {**_frame_defs(), **_declared_defs()},
    }


def _learning() -> Schema:
    return {
        "description": "What podtier does with what it learned of each Airflow task "
        "(TaskProfile objects; see docs/learning.md).",
        **section_schema(LEARNING, model=Learning),
    }


def _declared_defs() -> Schema:
    """$defs made from the declarations: the tier, the pool and what they share, and each
    learning field a rule may set too."""
    defs: Schema = {
        "tier": section_schema(TIER, nullable=False, model=Tier),
        "pool": section_schema(POOL, nullable=False, model=Pool),
    }
    for fields, model in ((TIER, Tier), (POOL, Pool), (RULE_LEARNING, Learning)):
        defs.update({spec.ref: spec.own_schema(model) for spec in fields if spec.ref})
    defs["ruleLearning"] = {
        "description": "This rule's pods' learning settings; what it leaves out comes from "
        "spec.learning.",
        **section_schema(RULE_LEARNING, model=Learning),
    }
    return defs


def _settings() -> Schema:
    return {
        "airflowPods": {
            "description": "Which pods are Airflow pods: any one of these label selectors "
            "matching is enough.",
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/$defs/labelSelector"},
        },
        "tierKeys": {
            "description": "Label or annotation keys a pod asks for a tier with; the first "
            "found wins.",
            "type": ["array", "null"],
            "items": NAME,
        },
        "defaultTier": {
            **NAME,
            "description": "The tier of a pod that asks for none, matches no rule and has no "
            "requests.",
        },
        "mode": {
            "description": "enforce: validation denies pods over their limits; audit: it "
            "allows them with warnings.",
            "enum": ["enforce", "audit"],
        },
        "ceilings": {
            "$ref": "#/$defs/quantities",
            "description": "No container may request or be limited above these, whatever its tier.",
        },
        "currency": {
            **NAME,
            "description": "The label of the pools' cost figures in podtier report (USD, EUR...).",
        },
        "tiers": {
            "description": "Tiers by name, smallest first: a pod with requests but no tier goes "
            "to the first tier whose requests cover them.",
            "type": ["object", "null"],
            "additionalProperties": {"$ref": "#/$defs/tier"},
        },
        "pools": {
            "description": "Node pools by name.",
            "type": ["object", "null"],
            "additionalProperties": {"$ref": "#/$defs/pool"},
        },
        "rules": {
            "description": "Rules in order; the first rule that matches a pod applies.",
            "type": ["array", "null"],
            "items": {"$ref": "#/$defs/rule"},
        },
    }


def _frame_defs() -> Schema:
    selector = {"$ref": "#/$defs/optionalSelector"}
    glob = {"type": ["string", "null"], "minLength": 1}
    return {
        "name": {"type": "string", "minLength": 1},
        "names": {"type": "array", "items": NAME},
        "quantity": {
            "description": "A Kubernetes quantity such as 500m, 2, 4Gi or 1e3 (not negative).",
            "oneOf": [
                {"type": "string", "pattern": QUANTITY_PATTERN},
                {"type": "number", "minimum": 0},
            ],
        },
        "quantities": {
            "type": ["object", "null"],
            "additionalProperties": {"$ref": "#/$defs/quantity"},
        },
        "stringMap": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
        "selectorExpression": {
            "type": "object",
            "additionalProperties": False,
            "required": ["key", "operator"],
            "properties": {
                "key": NAME,
                "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                "values": {"type": ["array", "null"], "items": NAME},
            },
            "if": {"properties": {"operator": {"enum": ["In", "NotIn"]}}},
            "then": {
                "required": ["values"],
                "properties": {"values": {"type": "array", "minItems": 1}},
            },
            "else": {"properties": {"values": {"maxItems": 0}}},
        },
        "labelSelector": {
            "description": "A Kubernetes label selector: every matchLabels pair and every "
            "expression must hold.",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "matchLabels": {"$ref": "#/$defs/stringMap"},
                "matchExpressions": {
                    "type": ["array", "null"],
                    "items": {"$ref": "#/$defs/selectorExpression"},
                },
            },
            "anyOf": [
                {
                    "required": ["matchLabels"],
                    "properties": {"matchLabels": {"type": "object", "minProperties": 1}},
                },
                {
                    "required": ["matchExpressions"],
                    "properties": {"matchExpressions": {"type": "array", "minItems": 1}},
                },
            ],
        },
        "optionalSelector": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/labelSelector"}]},
        "toleration": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "key": {"type": "string"},
                "operator": {"enum": ["Equal", "Exists"]},
                "value": {"type": "string"},
                "effect": {"enum": ["", "NoSchedule", "PreferNoSchedule", "NoExecute"]},
                "tolerationSeconds": {"type": "integer"},
            },
        },
        "price": {"type": "number", "minimum": 0},
        "match": {
            "description": "Every condition given must hold; no condition at all matches every "
            "Airflow pod.",
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "namespaces": {
                    "description": "Namespace names or globs (data-*).",
                    "type": ["array", "null"],
                    "items": NAME,
                },
                "namespaceSelector": {
                    **selector,
                    "description": "A label selector on the pod's namespace.",
                },
                "labels": {**selector, "description": "A label selector on the pod."},
                "annotations": {
                    "$ref": "#/$defs/stringMap",
                    "description": "Annotations the pod must carry, with these exact values.",
                },
                "dagId": {"description": "Airflow dag_id name or glob.", **glob},
                "taskId": {"description": "Airflow task_id name or glob.", **glob},
            },
        },
        "rule": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": NAME,
                "match": {"$ref": "#/$defs/match"},
                "tier": {"type": ["string", "null"], "minLength": 1},
                "pools": {"type": ["array", "null"], "minItems": 1, "items": NAME},
                "override": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/override"}]},
                "learning": {"$ref": "#/$defs/ruleLearning"},
            },
            "anyOf": [
                {"required": [key], "properties": {key: {"type": kind}}}
                for key, kind in (
                    ("tier", "string"),
                    ("pools", "array"),
                    ("override", "string"),
                    ("learning", "object"),
                )
            ],
        },
    }


# Docs tables: the marker's name -> (the fields, the model that holds their defaults).
TABLES: Mapping[str, tuple[Sequence[Field], type]] = {
    "tier": (TIER, Tier),
    "pool": (POOL, Pool),
    "scaling": (SCALING, Scaling),
    "cost": (COST, Cost),
    "learning": (LEARNING, Learning),
}


def docs_table(fields: Sequence[Field], model: type) -> str:
    """The markdown table of a section: field, type, default, meaning (a nested section whose
    entries join the parent's gives a row per entry, `oomEscalation.enabled`)."""
    lines = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for spec in fields:
        if spec.attr == "" and isinstance(spec.kind, Section):
            inner_model = spec.kind.defaults_from(model)
            for inner in spec.kind.fields:
                lines.append(_row(f"{spec.key}.{inner.key}", inner, inner_model))
        else:
            lines.append(_row(spec.key, spec, model))
    return "\n".join(lines)


def _row(key: str, spec: Field, model: type | None) -> str:
    return f"| `{key}` | {spec.type_doc()} | {spec.default_text(model)} | {spec.doc} |"
