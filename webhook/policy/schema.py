"""`policies/schema.json` and the field tables of docs/policy.md, made from the declarations.

The spec, its tiers, pools, rules and learning sections come from `policy.spec`; the file's
frame (header, metadata, quantities, label selectors, tolerations) is written here. A test
checks that the checked-in files are what this makes; regenerate them with

    python tests/webhook/policy/policy_doc.py --write
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from podtier.webhook.core.policy import (
    Autoscaling,
    Cost,
    Learning,
    Policy,
    Pool,
    Rule,
    RuleMatch,
    Scaling,
    Tier,
)
from podtier.webhook.policy.declare import Field, Schema, Section, section_schema
from podtier.webhook.policy.spec import (
    AUTOSCALING,
    COST,
    LEARNING,
    MATCH,
    POOL,
    RULE,
    RULE_LEARNING,
    SCALING,
    SPEC,
    TIER,
)

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
                "properties": {spec.key: spec.own_schema(Policy) for spec in SPEC},
            },
        },
        "$defs": {**_frame_defs(), **_declared_defs()},
    }


def _declared_defs() -> Schema:
    """$defs made from the declarations: the tier, the pool and what they share, and each
    learning field a rule may set too."""
    defs: Schema = {
        "tier": section_schema(TIER, nullable=False, model=Tier),
        "pool": section_schema(POOL, nullable=False, model=Pool),
    }
    for fields, model in ((TIER, Tier), (POOL, Pool), (RULE_LEARNING, Learning), (RULE, Rule)):
        defs.update({spec.ref: spec.own_schema(model) for spec in fields if spec.ref})
    # A rule gives its pods something: one of these at least (a lint error names them too).
    gives = (("tier", "string"), ("pools", "array"), ("override", "string"), ("learning", "object"))
    defs["rule"] = {
        **section_schema(RULE, nullable=False, model=Rule),
        "anyOf": [{"required": [key], "properties": {key: {"type": t}}} for key, t in gives],
    }
    return defs


def _frame_defs() -> Schema:
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
    }


# Docs tables: the marker's name -> (the fields, the model that holds their defaults).
TABLES: Mapping[str, tuple[Sequence[Field], type]] = {
    "spec": (SPEC, Policy),
    "tier": (TIER, Tier),
    "pool": (POOL, Pool),
    "scaling": (SCALING, Scaling),
    "cost": (COST, Cost),
    "autoscaling": (AUTOSCALING, Autoscaling),
    "learning": (LEARNING, Learning),
    "rule": (RULE, Rule),
    "match": (MATCH, RuleMatch),
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
