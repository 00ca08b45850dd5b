"""Build a `Policy` from parsed policy documents: merge several files, check each field (with
`fields`), and check the references between tiers, pools and rules.

Several files merge: tiers and pools are pooled, rules are concatenated in file order, and each
setting (`airflowPods`, `tierKeys`, `defaultTier`, `mode`, `ceilings`, `learning`) comes from
exactly one file. Anything defined twice is an error that names both files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from podtier.webhook.core.policy import (
    OVERRIDE_MODES,
    VALIDATION_MODES,
    LabelSelector,
    Learning,
    LearningOverride,
    Policy,
    PolicyError,
    Pool,
    Rule,
    RuleMatch,
    Tier,
)
from podtier.webhook.policy.declare import read_section
from podtier.webhook.policy.fields import (
    as_list,
    as_map,
    as_quantities,
    as_string_map,
    as_strings,
    check_fields,
    expected,
    optional_string,
    show,
    type_name,
    unknown,
)
from podtier.webhook.policy.spec import LEARNING, POOL, RULE_LEARNING, TIER

API_VERSION = "podtier.io/v1alpha1"
KIND = "TierPolicy"
SETTINGS = ("airflowPods", "tierKeys", "defaultTier", "mode", "ceilings", "currency", "learning")
SPEC_FIELDS = (*SETTINGS, "tiers", "pools", "rules")
RULE_FIELDS = ("name", "match", "tier", "pools", "override", "learning")
MATCH_FIELDS = ("namespaces", "namespaceSelector", "labels", "annotations", "dagId", "taskId")
SELECTOR_FIELDS = ("matchLabels", "matchExpressions")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def parse_policy_documents(documents: Sequence[tuple[str, Any]], digest: str) -> Policy:
    names: list[str] = []
    settings: dict[str, tuple[str, Any]] = {}
    tiers: dict[str, tuple[str, Tier]] = {}
    pools: dict[str, tuple[str, Pool]] = {}
    rules: list[Rule] = []
    for source, doc in documents:
        spec = _header(source, doc)
        names.append(doc["metadata"]["name"])
        for key in SETTINGS:
            if key in spec:
                if key in settings:
                    raise PolicyError(
                        source, f"spec.{key}", f"also set in {settings[key][0]}; set it in one file"
                    )
                settings[key] = (source, spec[key])
        for name, raw in as_map(source, spec.get("tiers"), "spec.tiers").items():
            if name in tiers:
                raise PolicyError(
                    source, f"spec.tiers.{name}", f"tier also defined in {tiers[name][0]}"
                )
            tiers[name] = (source, _tier(source, name, raw))
        for name, raw in as_map(source, spec.get("pools"), "spec.pools").items():
            if name in pools:
                raise PolicyError(
                    source, f"spec.pools.{name}", f"pool also defined in {pools[name][0]}"
                )
            pools[name] = (source, _pool(source, name, raw))
        for i, raw in enumerate(as_list(source, spec.get("rules"), "spec.rules")):
            rules.append(_rule(source, i, raw))

    first = documents[0][0]
    for key in ("airflowPods", "defaultTier"):
        if key not in settings:
            raise PolicyError(first, f"spec.{key}", "is required (set it in one policy file)")
    if not tiers:
        raise PolicyError(first, "spec.tiers", "at least one tier is required")
    if not pools:
        raise PolicyError(first, "spec.pools", "at least one pool is required")

    source, raw = settings["airflowPods"]
    airflow_pods = tuple(
        _selector(source, item, f"spec.airflowPods[{i}]")
        for i, item in enumerate(as_list(source, raw, "spec.airflowPods"))
    )
    if not airflow_pods:
        raise PolicyError(source, "spec.airflowPods", "needs at least one label selector")
    source, raw = settings.get("tierKeys", (first, ["podtier.io/tier"]))
    tier_keys = tuple(as_strings(source, raw, "spec.tierKeys"))
    source, default_tier = settings["defaultTier"]
    if default_tier not in tiers:
        raise PolicyError(source, "spec.defaultTier", unknown("tier", default_tier, tiers))
    source, mode = settings.get("mode", (first, "enforce"))
    if mode not in VALIDATION_MODES:
        raise PolicyError(source, "spec.mode", expected(mode, VALIDATION_MODES))
    source, raw = settings.get("ceilings", (first, {}))
    ceilings = as_quantities(source, raw, "spec.ceilings")
    source, currency = settings.get("currency", (first, None))
    currency = optional_string(source, currency, "spec.currency") or ""
    learning = Learning()
    if "learning" in settings:
        source, raw = settings["learning"]
        learning = LearningOverride(**read_section(source, raw, "spec.learning", LEARNING)).over(
            learning
        )

    for name, (source, tier) in tiers.items():
        for i, pool in enumerate(tier.placement):
            if pool not in pools:
                raise PolicyError(
                    source, f"spec.tiers.{name}.placement[{i}]", unknown("pool", pool, pools)
                )
        if tier.downgrade_to is not None and tier.downgrade_to not in tiers:
            raise PolicyError(
                source, f"spec.tiers.{name}.downgradeTo", unknown("tier", tier.downgrade_to, tiers)
            )
    for rule in rules:
        if rule.tier is not None and rule.tier not in tiers:
            raise PolicyError(rule.source, f"{rule.path}.tier", unknown("tier", rule.tier, tiers))
        for j, pool in enumerate(rule.pools or ()):
            if pool not in pools:
                raise PolicyError(
                    rule.source, f"{rule.path}.pools[{j}]", unknown("pool", pool, pools)
                )

    return Policy(
        name="+".join(dict.fromkeys(names)),
        digest=digest,
        sources=tuple(dict.fromkeys(source for source, _ in documents)),
        airflow_pods=airflow_pods,
        tier_keys=tier_keys,
        default_tier=default_tier,
        mode=mode,
        ceilings=ceilings,
        tiers={name: tier for name, (_, tier) in tiers.items()},
        pools={name: pool for name, (_, pool) in pools.items()},
        rules=tuple(rules),
        currency=currency,
        learning=learning,
    )


def _header(source: str, doc: Any) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise PolicyError(source, "", f"expected a {KIND} object, got {type_name(doc)}")
    check_fields(source, doc, "", ("apiVersion", "kind", "metadata", "spec"))
    if doc.get("apiVersion") != API_VERSION:
        raise PolicyError(source, "apiVersion", expected(doc.get("apiVersion"), (API_VERSION,)))
    if doc.get("kind") != KIND:
        raise PolicyError(source, "kind", expected(doc.get("kind"), (KIND,)))
    metadata = as_map(source, doc.get("metadata"), "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError(
            source, "metadata.name", f"{show(name)} is not a name (a non-empty string)"
        )
    spec = as_map(source, doc.get("spec"), "spec")
    check_fields(source, spec, "spec", SPEC_FIELDS)
    return spec


def _tier(source: str, name: str, raw: Any) -> Tier:
    path = f"spec.tiers.{name}"
    tier = Tier(name=name, **read_section(source, raw, path, TIER))
    for resource, limit in tier.limits.items():
        request = tier.requests.get(resource)
        if request is not None and limit.milli < request.milli:
            raise PolicyError(
                source,
                f"{path}.limits.{resource}",
                f"{limit.text} is below the tier's request {request.text} "
                "(expected a limit at least as large as the request)",
            )
    return tier


def _pool(source: str, name: str, raw: Any) -> Pool:
    path = f"spec.pools.{name}"
    pool = Pool(name=name, **read_section(source, raw, path, POOL))
    scaling = pool.scaling
    if scaling is not None and scaling.max_nodes < scaling.min_nodes:
        raise PolicyError(
            source,
            f"{path}.scaling.maxNodes",
            f"{scaling.max_nodes} is below minNodes {scaling.min_nodes} "
            "(expected maxNodes >= minNodes)",
        )
    return pool


def _rule(source: str, index: int, raw: Any) -> Rule:
    path = f"spec.rules[{index}]"
    raw = as_map(source, raw, path)
    check_fields(source, raw, path, RULE_FIELDS)
    name = raw.get("name", f"rule {index + 1}")
    if not isinstance(name, str) or not name:
        raise PolicyError(source, f"{path}.name", f"{show(name)} is not a non-empty string")
    mpath = f"{path}.match"
    match = as_map(source, raw.get("match"), mpath)
    check_fields(source, match, mpath, MATCH_FIELDS)
    labels = match.get("labels")
    ns_selector = match.get("namespaceSelector")
    rule_match = RuleMatch(
        namespaces=tuple(as_strings(source, match.get("namespaces"), f"{mpath}.namespaces")),
        namespace_selector=None
        if ns_selector is None
        else _selector(source, ns_selector, f"{mpath}.namespaceSelector"),
        labels=None if labels is None else _selector(source, labels, f"{mpath}.labels"),
        annotations=as_string_map(source, match.get("annotations"), f"{mpath}.annotations"),
        dag_id=optional_string(source, match.get("dagId"), f"{mpath}.dagId"),
        task_id=optional_string(source, match.get("taskId"), f"{mpath}.taskId"),
    )
    tier = optional_string(source, raw.get("tier"), f"{path}.tier")
    pools = raw.get("pools")
    pool_list = None if pools is None else tuple(as_strings(source, pools, f"{path}.pools"))
    if pool_list == ():
        raise PolicyError(source, f"{path}.pools", "is empty (expected at least one pool name)")
    override = raw.get("override")
    if override is not None and override not in OVERRIDE_MODES:
        raise PolicyError(source, f"{path}.override", expected(override, OVERRIDE_MODES))
    learning = raw.get("learning")
    learned = None
    if learning is not None:
        learned = LearningOverride(
            **read_section(source, learning, f"{path}.learning", RULE_LEARNING)
        )
    if tier is None and pool_list is None and override is None and learned is None:
        raise PolicyError(
            source, path, "a rule must set at least one of tier, pools, override, learning"
        )
    return Rule(name, source, path, rule_match, tier, pool_list, override, learned)


def _selector(source: str, raw: Any, path: str) -> LabelSelector:
    raw = as_map(source, raw, path)
    check_fields(source, raw, path, SELECTOR_FIELDS)
    expressions = []
    for i, item in enumerate(
        as_list(source, raw.get("matchExpressions"), f"{path}.matchExpressions")
    ):
        epath = f"{path}.matchExpressions[{i}]"
        item = as_map(source, item, epath)
        check_fields(source, item, epath, ("key", "operator", "values"))
        key = item.get("key")
        if not isinstance(key, str) or not key:
            raise PolicyError(source, f"{epath}.key", f"{show(key)} is not a label key")
        operator = item.get("operator")
        if operator not in SELECTOR_OPERATORS:
            raise PolicyError(source, f"{epath}.operator", expected(operator, SELECTOR_OPERATORS))
        values = tuple(as_strings(source, item.get("values"), f"{epath}.values"))
        if operator in ("In", "NotIn") and not values:
            raise PolicyError(source, f"{epath}.values", f"operator {operator} needs values")
        if operator in ("Exists", "DoesNotExist") and values:
            raise PolicyError(source, f"{epath}.values", f"operator {operator} takes no values")
        expressions.append((key, operator, values))
    labels = as_string_map(source, raw.get("matchLabels"), f"{path}.matchLabels")
    if not labels and not expressions:
        raise PolicyError(
            source,
            path,
            "an empty selector would match everything (expected matchLabels or matchExpressions)",
        )
    return LabelSelector(labels, tuple(expressions))
