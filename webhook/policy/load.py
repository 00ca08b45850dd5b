"""Read policy files into a `Policy`, or fail with `file: field.path: what is wrong`.

Several files load in the order given and merge: tiers and pools are pooled, rules are
concatenated in file order, and each setting (`airflowPods`, `tierKeys`, `defaultTier`,
`mode`, `ceilings`) comes from exactly one file. Anything defined twice is an error that
names both files.

A directory loads its `*.yaml`/`*.yml` files in name order, skipping hidden names: in a
ConfigMap volume, `..data` and `..2026_...` are kubelet's bookkeeping, and each file is read
once, through its visible symlink.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from webhook.policy.model import (
    OVERRIDE_MODES,
    VALIDATION_MODES,
    LabelSelector,
    Policy,
    PolicyError,
    Pool,
    Quantity,
    Rule,
    RuleMatch,
    Scaling,
    Tier,
)
from webhook.quantity import QuantityError, to_milli

API_VERSION = "podtier.io/v1alpha1"
KIND = "TierPolicy"
SETTINGS = ("airflowPods", "tierKeys", "defaultTier", "mode", "ceilings")
SPEC_FIELDS = (*SETTINGS, "tiers", "pools", "rules")
TIER_FIELDS = ("requests", "limits", "placement", "downgradeTo", "override")
POOL_FIELDS = ("nodeSelector", "tolerations", "scaling")
SCALING_FIELDS = ("podsPerNode", "minNodes", "maxNodes")
RULE_FIELDS = ("name", "match", "tier", "pools", "override")
MATCH_FIELDS = ("namespaces", "namespaceSelector", "labels", "annotations", "dagId", "taskId")
SELECTOR_FIELDS = ("matchLabels", "matchExpressions")
TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
QUANTITY_EXPECTED = "(expected a Kubernetes quantity such as 500m, 2 or 4Gi)"
# A Kubernetes quantity as the API server spells it (no blanks, no sign but +), as in schema.json.
QUANTITY_TEXT = re.compile(
    r"[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)


def load_policy(paths: Sequence[str | Path]) -> Policy:
    """Load policy files and directories, in order."""
    return load_policy_text(read_policy_files(paths))


def read_policy_files(paths: Sequence[str | Path]) -> list[tuple[str, str]]:
    """`(file name, text)` of every policy file the paths name, in load order."""
    files: list[tuple[str, str]] = []
    for path in map(Path, paths):
        if path.is_dir():
            members = sorted(
                p
                for p in path.iterdir()
                if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
            )
            if not members:
                raise PolicyError(str(path), "", "directory holds no *.yaml policy files")
            files += [(str(p), _read(p)) for p in members]
        else:
            files.append((str(path), _read(path)))
    return files


def load_policy_text(files: Sequence[tuple[str, str]]) -> Policy:
    """Pure: `(source name, YAML text)` pairs to a Policy."""
    documents: list[tuple[str, Any]] = []
    for source, text in files:
        try:
            docs = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
        except yaml.YAMLError as err:
            raise PolicyError(source, "", f"not valid YAML: {_yaml_problem(err)}") from None
        if not docs:
            raise PolicyError(source, "", "the file holds no policy document")
        documents += [(source, doc) for doc in docs]
    digest = hashlib.sha256()
    for source, text in files:
        digest.update(Path(source).name.encode() + b"\0" + text.encode() + b"\0")
    return parse_policy_documents(documents, digest.hexdigest())


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
        for name, raw in _map(source, spec.get("tiers"), "spec.tiers").items():
            if name in tiers:
                raise PolicyError(
                    source, f"spec.tiers.{name}", f"tier also defined in {tiers[name][0]}"
                )
            tiers[name] = (source, _tier(source, name, raw))
        for name, raw in _map(source, spec.get("pools"), "spec.pools").items():
            if name in pools:
                raise PolicyError(
                    source, f"spec.pools.{name}", f"pool also defined in {pools[name][0]}"
                )
            pools[name] = (source, _pool(source, name, raw))
        for i, raw in enumerate(_list(source, spec.get("rules"), "spec.rules")):
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
        for i, item in enumerate(_list(source, raw, "spec.airflowPods"))
    )
    if not airflow_pods:
        raise PolicyError(source, "spec.airflowPods", "needs at least one label selector")
    source, raw = settings.get("tierKeys", (first, ["podtier.io/tier"]))
    tier_keys = tuple(_strings(source, raw, "spec.tierKeys"))
    source, default_tier = settings["defaultTier"]
    if default_tier not in tiers:
        raise PolicyError(source, "spec.defaultTier", _unknown("tier", default_tier, tiers))
    source, mode = settings.get("mode", (first, "enforce"))
    if mode not in VALIDATION_MODES:
        raise PolicyError(source, "spec.mode", _expected(mode, VALIDATION_MODES))
    source, raw = settings.get("ceilings", (first, {}))
    ceilings = _quantities(source, raw, "spec.ceilings")

    for name, (source, tier) in tiers.items():
        for i, pool in enumerate(tier.placement):
            if pool not in pools:
                raise PolicyError(
                    source, f"spec.tiers.{name}.placement[{i}]", _unknown("pool", pool, pools)
                )
        if tier.downgrade_to is not None and tier.downgrade_to not in tiers:
            raise PolicyError(
                source, f"spec.tiers.{name}.downgradeTo", _unknown("tier", tier.downgrade_to, tiers)
            )
    for rule in rules:
        if rule.tier is not None and rule.tier not in tiers:
            raise PolicyError(rule.source, f"{rule.path}.tier", _unknown("tier", rule.tier, tiers))
        for j, pool in enumerate(rule.pools or ()):
            if pool not in pools:
                raise PolicyError(
                    rule.source, f"{rule.path}.pools[{j}]", _unknown("pool", pool, pools)
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
    )


def _header(source: str, doc: Any) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise PolicyError(source, "", f"expected a {KIND} object, got {_type(doc)}")
    _fields(source, doc, "", ("apiVersion", "kind", "metadata", "spec"))
    if doc.get("apiVersion") != API_VERSION:
        raise PolicyError(source, "apiVersion", _expected(doc.get("apiVersion"), (API_VERSION,)))
    if doc.get("kind") != KIND:
        raise PolicyError(source, "kind", _expected(doc.get("kind"), (KIND,)))
    metadata = _map(source, doc.get("metadata"), "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError(
            source, "metadata.name", f"{_show(name)} is not a name (a non-empty string)"
        )
    spec = _map(source, doc.get("spec"), "spec")
    _fields(source, spec, "spec", SPEC_FIELDS)
    return spec


def _tier(source: str, name: str, raw: Any) -> Tier:
    path = f"spec.tiers.{name}"
    raw = _map(source, raw, path)
    _fields(source, raw, path, TIER_FIELDS)
    requests = _quantities(source, raw.get("requests"), f"{path}.requests")
    limits = _quantities(source, raw.get("limits"), f"{path}.limits")
    for resource, limit in limits.items():
        request = requests.get(resource)
        if request is not None and limit.milli < request.milli:
            raise PolicyError(
                source,
                f"{path}.limits.{resource}",
                f"{limit.text} is below the tier's request {request.text} "
                "(expected a limit at least as large as the request)",
            )
    placement = tuple(_strings(source, raw.get("placement"), f"{path}.placement"))
    if not placement:
        raise PolicyError(source, f"{path}.placement", "is empty (expected at least one pool name)")
    downgrade = raw.get("downgradeTo")
    if downgrade is not None and not isinstance(downgrade, str):
        raise PolicyError(source, f"{path}.downgradeTo", f"{_show(downgrade)} is not a tier name")
    override = raw.get("override", "missing")
    if override not in OVERRIDE_MODES:
        raise PolicyError(source, f"{path}.override", _expected(override, OVERRIDE_MODES))
    return Tier(name, requests, limits, placement, downgrade, override)


def _pool(source: str, name: str, raw: Any) -> Pool:
    path = f"spec.pools.{name}"
    raw = _map(source, raw, path)
    _fields(source, raw, path, POOL_FIELDS)
    selector = _string_map(source, raw.get("nodeSelector"), f"{path}.nodeSelector")
    if not selector:
        raise PolicyError(source, f"{path}.nodeSelector", "needs at least one node label")
    tolerations = []
    for i, item in enumerate(_list(source, raw.get("tolerations"), f"{path}.tolerations")):
        tpath = f"{path}.tolerations[{i}]"
        item = _map(source, item, tpath)
        _fields(source, item, tpath, TOLERATION_FIELDS)
        operator = item.get("operator", "Equal")
        if operator not in ("Equal", "Exists"):
            raise PolicyError(source, f"{tpath}.operator", _expected(operator, ("Equal", "Exists")))
        effect = item.get("effect", "")
        if effect not in ("", *TAINT_EFFECTS):
            raise PolicyError(source, f"{tpath}.effect", _expected(effect, TAINT_EFFECTS))
        for key in ("key", "value"):
            if key in item and not isinstance(item[key], str):
                raise PolicyError(source, f"{tpath}.{key}", f"{_show(item[key])} is not a string")
        seconds = item.get("tolerationSeconds")
        if "tolerationSeconds" in item and (
            not isinstance(seconds, int) or isinstance(seconds, bool)
        ):
            raise PolicyError(
                source,
                f"{tpath}.tolerationSeconds",
                f"{_show(seconds)} is not a whole number of seconds",
            )
        tolerations.append(dict(item))
    scaling = None
    if raw.get("scaling") is not None:
        scaling = _scaling(source, raw["scaling"], f"{path}.scaling")
    return Pool(name, selector, tuple(tolerations), scaling)


def _scaling(source: str, raw: Any, path: str) -> Scaling:
    raw = _map(source, raw, path)
    _fields(source, raw, path, SCALING_FIELDS)
    for key in ("podsPerNode", "maxNodes"):
        if key not in raw:
            raise PolicyError(source, f"{path}.{key}", "is required")
    pods_per_node = _count(source, raw["podsPerNode"], f"{path}.podsPerNode", least=1)
    min_nodes = _count(source, raw.get("minNodes", 0), f"{path}.minNodes", least=0)
    max_nodes = _count(source, raw["maxNodes"], f"{path}.maxNodes", least=0)
    if max_nodes < min_nodes:
        raise PolicyError(
            source,
            f"{path}.maxNodes",
            f"{max_nodes} is below minNodes {min_nodes} (expected maxNodes >= minNodes)",
        )
    return Scaling(pods_per_node, min_nodes, max_nodes)


def _count(source: str, raw: Any, path: str, least: int) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < least:
        raise PolicyError(source, path, f"{_show(raw)} is not a whole number >= {least}")
    return raw


def _rule(source: str, index: int, raw: Any) -> Rule:
    path = f"spec.rules[{index}]"
    raw = _map(source, raw, path)
    _fields(source, raw, path, RULE_FIELDS)
    name = raw.get("name", f"rule {index + 1}")
    if not isinstance(name, str) or not name:
        raise PolicyError(source, f"{path}.name", f"{_show(name)} is not a non-empty string")
    mpath = f"{path}.match"
    match = _map(source, raw.get("match"), mpath)
    _fields(source, match, mpath, MATCH_FIELDS)
    labels = match.get("labels")
    ns_selector = match.get("namespaceSelector")
    rule_match = RuleMatch(
        namespaces=tuple(_strings(source, match.get("namespaces"), f"{mpath}.namespaces")),
        namespace_selector=None
        if ns_selector is None
        else _selector(source, ns_selector, f"{mpath}.namespaceSelector"),
        labels=None if labels is None else _selector(source, labels, f"{mpath}.labels"),
        annotations=_string_map(source, match.get("annotations"), f"{mpath}.annotations"),
        dag_id=_optional_string(source, match.get("dagId"), f"{mpath}.dagId"),
        task_id=_optional_string(source, match.get("taskId"), f"{mpath}.taskId"),
    )
    tier = _optional_string(source, raw.get("tier"), f"{path}.tier")
    pools = raw.get("pools")
    pool_list = None if pools is None else tuple(_strings(source, pools, f"{path}.pools"))
    if pool_list == ():
        raise PolicyError(source, f"{path}.pools", "is empty (expected at least one pool name)")
    override = raw.get("override")
    if override is not None and override not in OVERRIDE_MODES:
        raise PolicyError(source, f"{path}.override", _expected(override, OVERRIDE_MODES))
    if tier is None and pool_list is None and override is None:
        raise PolicyError(source, path, "a rule must set at least one of tier, pools, override")
    return Rule(name, source, path, rule_match, tier, pool_list, override)


def _selector(source: str, raw: Any, path: str) -> LabelSelector:
    raw = _map(source, raw, path)
    _fields(source, raw, path, SELECTOR_FIELDS)
    expressions = []
    for i, item in enumerate(
        _list(source, raw.get("matchExpressions"), f"{path}.matchExpressions")
    ):
        epath = f"{path}.matchExpressions[{i}]"
        item = _map(source, item, epath)
        _fields(source, item, epath, ("key", "operator", "values"))
        key = item.get("key")
        if not isinstance(key, str) or not key:
            raise PolicyError(source, f"{epath}.key", f"{_show(key)} is not a label key")
        operator = item.get("operator")
        if operator not in SELECTOR_OPERATORS:
            raise PolicyError(source, f"{epath}.operator", _expected(operator, SELECTOR_OPERATORS))
        values = tuple(_strings(source, item.get("values"), f"{epath}.values"))
        if operator in ("In", "NotIn") and not values:
            raise PolicyError(source, f"{epath}.values", f"operator {operator} needs values")
        if operator in ("Exists", "DoesNotExist") and values:
            raise PolicyError(source, f"{epath}.values", f"operator {operator} takes no values")
        expressions.append((key, operator, values))
    labels = _string_map(source, raw.get("matchLabels"), f"{path}.matchLabels")
    if not labels and not expressions:
        raise PolicyError(
            source,
            path,
            "an empty selector would match everything (expected matchLabels or matchExpressions)",
        )
    return LabelSelector(labels, tuple(expressions))


def _quantities(source: str, raw: Any, path: str) -> dict[str, Quantity]:
    out = {}
    for name, value in _map(source, raw, path).items():
        if isinstance(value, str) and not QUANTITY_TEXT.fullmatch(value):
            raise PolicyError(
                source,
                f"{path}.{name}",
                f"{_show(value)} is not a quantity {QUANTITY_EXPECTED}",
            )
        try:
            milli = to_milli(value)
        except QuantityError as err:
            message = str(err)
            if "expected" not in message:
                message += f" {QUANTITY_EXPECTED}"
            raise PolicyError(source, f"{path}.{name}", message) from None
        out[str(name)] = Quantity(str(value), milli)
    return out


def _fields(source: str, raw: Mapping[str, Any], path: str, allowed: Sequence[str]) -> None:
    for key in raw:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise PolicyError(
                source, where, f"unknown field (expected one of {', '.join(allowed)})"
            )


def _map(source: str, raw: Any, path: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PolicyError(source, path, f"expected a map, got {_type(raw)} {_show(raw)}")
    return raw


def _list(source: str, raw: Any, path: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PolicyError(source, path, f"expected a list, got {_type(raw)} {_show(raw)}")
    return raw


def _strings(source: str, raw: Any, path: str) -> list[str]:
    items = _list(source, raw, path)
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise PolicyError(source, f"{path}[{i}]", f"{_show(item)} is not a non-empty string")
    return items


def _string_map(source: str, raw: Any, path: str) -> dict[str, str]:
    out = {}
    for key, value in _map(source, raw, path).items():
        if not isinstance(value, str):
            raise PolicyError(source, f"{path}.{key}", f"{_show(value)} is not a string (quote it)")
        out[str(key)] = value
    return out


def _optional_string(source: str, raw: Any, path: str) -> str | None:
    if raw is not None and (not isinstance(raw, str) or not raw):
        raise PolicyError(source, path, f"{_show(raw)} is not a non-empty string")
    return raw


def _unknown(what: str, name: Any, known: Mapping[str, Any]) -> str:
    return f"unknown {what} {_show(name)} (known: {', '.join(known)})"


def _expected(value: Any, allowed: Sequence[str]) -> str:
    return f"{_show(value)} is not one of {', '.join(allowed)}"


def _show(value: Any) -> str:
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type(value: Any) -> str:
    return {
        dict: "a map",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(str(path), "", "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyError(str(path), "", f"cannot read: {err}") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(problem)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which PyYAML would silently overwrite."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
