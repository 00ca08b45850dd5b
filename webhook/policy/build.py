"""Build a `Policy` from parsed policy documents: merge several files, check each field (with
`fields`), and check the references between tiers, pools and rules.

Several files merge: tiers and pools are pooled, rules are concatenated in file order, and each
setting (`airflowPods`, `tierKeys`, `defaultTier`, `mode`, `ceilings`, `learning`) comes from
exactly one file. Anything defined twice is an error that names both files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from podtier.webhook.core.policy import (
    CPU_LIMIT_MODES,
    OVERRIDE_MODES,
    PLACEMENT_MODES,
    RIGHT_SIZING_MODES,
    SIZING_MODES,
    VALIDATION_MODES,
    Cost,
    LabelSelector,
    Learning,
    LearningOverride,
    Policy,
    PolicyError,
    Pool,
    Rule,
    RuleMatch,
    Scaling,
    Tier,
)
from podtier.webhook.policy.fields import (
    as_count,
    as_list,
    as_map,
    as_number,
    as_price,
    as_quantities,
    as_string_map,
    as_strings,
    check_fields,
    expected,
    optional_bool,
    optional_string,
    show,
    type_name,
    unknown,
)

API_VERSION = "podtier.io/v1alpha1"
KIND = "TierPolicy"
SETTINGS = ("airflowPods", "tierKeys", "defaultTier", "mode", "ceilings", "currency", "learning")
SPEC_FIELDS = (*SETTINGS, "tiers", "pools", "rules")
TIER_FIELDS = ("requests", "limits", "placement", "placementMode", "downgradeTo", "override")
POOL_FIELDS = ("nodeSelector", "tolerations", "scaling", "cost")
COST_FIELDS = ("cpuHour", "memoryGiBHour", "gpuHour")
SCALING_FIELDS = ("podsPerNode", "minNodes", "maxNodes")
RULE_FIELDS = ("name", "match", "tier", "pools", "override", "learning")
OOM_FIELDS = ("enabled", "explicitResources")
RULE_LEARNING_FIELDS = (
    "oomEscalation",
    "rightSizing",
    "sizing",
    "minRuns",
    "margin",
    "cpuMargin",
    "limitMargin",
    "cpuLimit",
    "floor",
)
LEARNING_FIELDS = (*RULE_LEARNING_FIELDS, "halfLifeHours")
MATCH_FIELDS = ("namespaces", "namespaceSelector", "labels", "annotations", "dagId", "taskId")
SELECTOR_FIELDS = ("matchLabels", "matchExpressions")
TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


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
        learning = _learning(source, raw, "spec.learning", LEARNING_FIELDS).over(learning)
        half_life = as_map(source, raw, "spec.learning").get("halfLifeHours")
        if half_life is not None:
            learning = replace(
                learning,
                half_life_hours=as_number(
                    source, half_life, "spec.learning.halfLifeHours", above=0.0
                ),
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
    raw = as_map(source, raw, path)
    check_fields(source, raw, path, TIER_FIELDS)
    requests = as_quantities(source, raw.get("requests"), f"{path}.requests")
    limits = as_quantities(source, raw.get("limits"), f"{path}.limits")
    for resource, limit in limits.items():
        request = requests.get(resource)
        if request is not None and limit.milli < request.milli:
            raise PolicyError(
                source,
                f"{path}.limits.{resource}",
                f"{limit.text} is below the tier's request {request.text} "
                "(expected a limit at least as large as the request)",
            )
    placement = tuple(as_strings(source, raw.get("placement"), f"{path}.placement"))
    if not placement:
        raise PolicyError(source, f"{path}.placement", "is empty (expected at least one pool name)")
    downgrade = raw.get("downgradeTo")
    if downgrade is not None and not isinstance(downgrade, str):
        raise PolicyError(source, f"{path}.downgradeTo", f"{show(downgrade)} is not a tier name")
    override = raw.get("override", "missing")
    if override not in OVERRIDE_MODES:
        raise PolicyError(source, f"{path}.override", expected(override, OVERRIDE_MODES))
    mode = raw.get("placementMode", "pin")
    if mode not in PLACEMENT_MODES:
        raise PolicyError(source, f"{path}.placementMode", expected(mode, PLACEMENT_MODES))
    return Tier(name, requests, limits, placement, downgrade, override, mode)


def _pool(source: str, name: str, raw: Any) -> Pool:
    path = f"spec.pools.{name}"
    raw = as_map(source, raw, path)
    check_fields(source, raw, path, POOL_FIELDS)
    selector = as_string_map(source, raw.get("nodeSelector"), f"{path}.nodeSelector")
    if not selector:
        raise PolicyError(source, f"{path}.nodeSelector", "needs at least one node label")
    tolerations = []
    for i, item in enumerate(as_list(source, raw.get("tolerations"), f"{path}.tolerations")):
        tpath = f"{path}.tolerations[{i}]"
        item = as_map(source, item, tpath)
        check_fields(source, item, tpath, TOLERATION_FIELDS)
        operator = item.get("operator", "Equal")
        if operator not in ("Equal", "Exists"):
            raise PolicyError(source, f"{tpath}.operator", expected(operator, ("Equal", "Exists")))
        effect = item.get("effect", "")
        if effect not in ("", *TAINT_EFFECTS):
            raise PolicyError(source, f"{tpath}.effect", expected(effect, TAINT_EFFECTS))
        for key in ("key", "value"):
            if key in item and not isinstance(item[key], str):
                raise PolicyError(source, f"{tpath}.{key}", f"{show(item[key])} is not a string")
        seconds = item.get("tolerationSeconds")
        if "tolerationSeconds" in item and (
            not isinstance(seconds, int) or isinstance(seconds, bool)
        ):
            raise PolicyError(
                source,
                f"{tpath}.tolerationSeconds",
                f"{show(seconds)} is not a whole number of seconds",
            )
        tolerations.append(dict(item))
    scaling = None
    if raw.get("scaling") is not None:
        scaling = _scaling(source, raw["scaling"], f"{path}.scaling")
    cost = None
    if raw.get("cost") is not None:
        cost = _cost(source, raw["cost"], f"{path}.cost")
    return Pool(name, selector, tuple(tolerations), scaling, cost)


def _cost(source: str, raw: Any, path: str) -> Cost:
    raw = as_map(source, raw, path)
    check_fields(source, raw, path, COST_FIELDS)
    if not raw:
        raise PolicyError(
            source, path, f"is empty (expected at least one of {', '.join(COST_FIELDS)})"
        )
    cpu, memory, gpu = (as_price(source, raw.get(key, 0), f"{path}.{key}") for key in COST_FIELDS)
    return Cost(cpu, memory, gpu)


def _scaling(source: str, raw: Any, path: str) -> Scaling:
    raw = as_map(source, raw, path)
    check_fields(source, raw, path, SCALING_FIELDS)
    for key in ("podsPerNode", "maxNodes"):
        if key not in raw:
            raise PolicyError(source, f"{path}.{key}", "is required")
    pods_per_node = as_count(source, raw["podsPerNode"], f"{path}.podsPerNode", least=1)
    min_nodes = as_count(source, raw.get("minNodes", 0), f"{path}.minNodes", least=0)
    max_nodes = as_count(source, raw["maxNodes"], f"{path}.maxNodes", least=0)
    if max_nodes < min_nodes:
        raise PolicyError(
            source,
            f"{path}.maxNodes",
            f"{max_nodes} is below minNodes {min_nodes} (expected maxNodes >= minNodes)",
        )
    return Scaling(pods_per_node, min_nodes, max_nodes)


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
        learned = _learning(source, learning, f"{path}.learning", RULE_LEARNING_FIELDS)
    if tier is None and pool_list is None and override is None and learned is None:
        raise PolicyError(
            source, path, "a rule must set at least one of tier, pools, override, learning"
        )
    return Rule(name, source, path, rule_match, tier, pool_list, override, learned)


def _learning(source: str, raw: Any, path: str, allowed: Sequence[str]) -> LearningOverride:
    """`spec.learning` or a rule's `learning`: what it sets (`halfLifeHours` is read by the
    caller, as only the policy-wide section may set it)."""
    raw = as_map(source, raw, path)
    check_fields(source, raw, path, allowed)
    oom = raw.get("oomEscalation")
    enabled = explicit = None
    if oom is not None:
        oom = as_map(source, oom, f"{path}.oomEscalation")
        check_fields(source, oom, f"{path}.oomEscalation", OOM_FIELDS)
        enabled = optional_bool(source, oom.get("enabled"), f"{path}.oomEscalation.enabled")
        explicit = optional_bool(
            source, oom.get("explicitResources"), f"{path}.oomEscalation.explicitResources"
        )
    return LearningOverride(
        oom_escalation=enabled,
        escalate_explicit=explicit,
        right_sizing=_choice(source, raw, path, "rightSizing", RIGHT_SIZING_MODES),
        sizing=_choice(source, raw, path, "sizing", SIZING_MODES),
        min_runs=None
        if raw.get("minRuns") is None
        else as_count(source, raw["minRuns"], f"{path}.minRuns", least=1),
        margin=_margin(source, raw, path, "margin"),
        cpu_margin=_margin(source, raw, path, "cpuMargin"),
        limit_margin=_margin(source, raw, path, "limitMargin"),
        cpu_limit=_choice(source, raw, path, "cpuLimit", CPU_LIMIT_MODES),
        floor=_floor(source, raw.get("floor"), f"{path}.floor"),
    )


_T = TypeVar("_T", bound=str)


def _choice(
    source: str, raw: Mapping[str, Any], path: str, key: str, choices: Sequence[_T]
) -> _T | None:
    value = raw.get(key)
    if value is None:
        return None
    for choice in choices:
        if value == choice:
            return choice
    raise PolicyError(source, f"{path}.{key}", expected(value, choices))


def _margin(source: str, raw: Mapping[str, Any], path: str, key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    return as_number(source, value, f"{path}.{key}", least=0.0, most=10.0)


FLOOR_RESOURCES = ("cpu", "memory")


def _floor(source: str, raw: Any, path: str) -> dict[str, int] | None:
    """`floor`: the least cpu and memory a recommendation requests."""
    if raw is None:
        return None
    check_fields(source, as_map(source, raw, path), path, FLOOR_RESOURCES)
    floor = as_quantities(source, raw, path)
    return {name: quantity.milli for name, quantity in floor.items()}


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
