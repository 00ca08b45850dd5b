"""Build a `Policy` from parsed policy documents: merge several files, check each field (with
`fields`), and check the references between tiers, pools and rules.

Several files merge: tiers and pools are pooled, rules are concatenated in file order, and each
setting (`policy.spec.SETTINGS`: `airflowPods`, `tierKeys`, `defaultTier`, `mode`, `ceilings`,
`currency`, `learning`) comes from exactly one file. Anything defined twice is an error that
names both files. The fields themselves are declared in `policy.spec` and read by
`policy.declare.read_section`; what is here is the merging and the references between tiers,
pools and rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from podtier.webhook.core.policy import (
    Policy,
    PolicyError,
    Pool,
    Rule,
    Tier,
)
from podtier.webhook.policy.declare import read_section
from podtier.webhook.policy.fields import (
    as_list,
    as_map,
    check_fields,
    expected,
    show,
    type_name,
    unknown,
)
from podtier.webhook.policy.spec import POOL, RULE, SETTINGS, SPEC, TIER

API_VERSION = "podtier.io/v1alpha1"
KIND = "TierPolicy"


def parse_policy_documents(documents: Sequence[tuple[str, Any]], digest: str) -> Policy:
    names: list[str] = []
    settings: dict[str, tuple[str, Any]] = {}
    tiers: dict[str, tuple[str, Tier]] = {}
    pools: dict[str, tuple[str, Pool]] = {}
    rules: list[Rule] = []
    for source, doc in documents:
        spec = _header(source, doc)
        names.append(doc["metadata"]["name"])
        for key in (field.key for field in SETTINGS if field.key in spec):
            if key in settings:
                where = f"also set in {settings[key][0]}; set it in one file"
                raise PolicyError(source, f"spec.{key}", where)
            settings[key] = (source, spec[key])
        _pool_in(tiers, "tier", source, spec.get("tiers"), _tier)
        _pool_in(pools, "pool", source, spec.get("pools"), _pool)
        for i, raw in enumerate(as_list(source, spec.get("rules"), "spec.rules")):
            rules.append(_rule(source, i, raw))

    first = documents[0][0]
    values: dict[str, Any] = {}
    for field in SETTINGS:  # each from the one file that sets it
        source, raw = settings.get(field.key, (first, None))
        given = {field.key: raw} if field.key in settings else {}
        values.update(read_section(source, given, "spec", (field,)))
    if not tiers:
        raise PolicyError(first, "spec.tiers", "at least one tier is required")
    if not pools:
        raise PolicyError(first, "spec.pools", "at least one pool is required")
    _check_references(settings, tiers, pools, rules)
    return Policy(
        name="+".join(dict.fromkeys(names)),
        digest=digest,
        sources=tuple(dict.fromkeys(source for source, _ in documents)),
        tiers={name: tier for name, (_, tier) in tiers.items()},
        pools={name: pool for name, (_, pool) in pools.items()},
        rules=tuple(rules),
        **values,
    )


_Named = TypeVar("_Named")


def _pool_in(
    into: dict[str, tuple[str, _Named]],
    what: str,
    source: str,
    raw: Any,
    read: Callable[[str, str, Any], _Named],
) -> None:
    """Add a file's tiers (or pools) to those of the files before it, each defined once."""
    for name, item in as_map(source, raw, f"spec.{what}s").items():
        if name in into:
            raise PolicyError(
                source, f"spec.{what}s.{name}", f"{what} also defined in {into[name][0]}"
            )
        into[name] = (source, read(source, name, item))


def _check_references(
    settings: Mapping[str, tuple[str, Any]],
    tiers: Mapping[str, tuple[str, Tier]],
    pools: Mapping[str, tuple[str, Pool]],
    rules: Sequence[Rule],
) -> None:
    """Every tier and pool named (the default tier, placements, downgrades, rules) exists."""
    source, default_tier = settings["defaultTier"]
    if default_tier not in tiers:
        raise PolicyError(source, "spec.defaultTier", unknown("tier", default_tier, tiers))
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
    check_fields(source, spec, "spec", [field.key for field in SPEC])
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
    given = {"name": f"rule {index + 1}", **read_section(source, raw, path, RULE)}
    if not given.keys() & {"tier", "pools", "override", "learning"}:
        raise PolicyError(
            source, path, "a rule must set at least one of tier, pools, override, learning"
        )
    return Rule(source=source, path=path, **given)
