"""Readers of the policy's shapes that are more than one field with bounds: label selectors,
pools' node selectors and tolerations, and the settings read as they are (`policy.spec`
declares the fields that use them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podtier.webhook.core.policy import LabelSelector, PolicyError, Quantity
from podtier.webhook.policy.fields import (
    as_list,
    as_map,
    as_quantities,
    as_string_map,
    as_strings,
    check_fields,
    expected,
    show,
)

SELECTOR_FIELDS = ("matchLabels", "matchExpressions")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def label_selector(source: str, raw: Any, path: str) -> LabelSelector:
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


def label_selectors(source: str, raw: Any, path: str) -> tuple[LabelSelector, ...]:
    """`airflowPods`: a list of label selectors, at least one."""
    selectors = tuple(
        label_selector(source, item, f"{path}[{i}]")
        for i, item in enumerate(as_list(source, raw, path))
    )
    if not selectors:
        raise PolicyError(source, path, "needs at least one label selector")
    return selectors


def strings(source: str, raw: Any, path: str) -> tuple[str, ...]:
    """A list of non-empty strings (null: none)."""
    return tuple(as_strings(source, raw, path))


def name(source: str, raw: Any, path: str) -> str:
    """A non-empty string (null is an error too)."""
    if not isinstance(raw, str) or not raw:
        raise PolicyError(source, path, f"{show(raw)} is not a non-empty string")
    return raw


def string_map(source: str, raw: Any, path: str) -> dict[str, str]:
    return as_string_map(source, raw, path)


def as_given(source: str, raw: Any, path: str) -> Any:
    """The value as written (a later check says whether it names something known)."""
    return raw


def node_selector(source: str, raw: Any, path: str) -> dict[str, str]:
    selector = as_string_map(source, raw, path)
    if not selector:
        raise PolicyError(source, path, "needs at least one node label")
    return selector


TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def tolerations(source: str, raw: Any, path: str) -> tuple[Mapping[str, Any], ...]:
    tolerations = []
    for i, item in enumerate(as_list(source, raw, path)):
        tpath = f"{path}[{i}]"
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
    return tuple(tolerations)


# A node bigger than this is a typo, not a machine.
NODE_SHAPE_LIMITS = {"cpu": (1024, "1024"), "memory": (64 * 2**40, "64Ti")}


def node_shape(source: str, raw: Any, path: str) -> Mapping[str, Quantity]:
    """An autoscaling pool's node: its allocatable, cpu and memory above 0 and of a size a
    node can have, and any other resource (nvidia.com/gpu)."""
    node = as_quantities(source, raw, path)
    for resource, (limit, text) in NODE_SHAPE_LIMITS.items():
        quantity = node.get(resource)
        if quantity is None or quantity.milli <= 0:
            shown = "missing" if quantity is None else quantity.text
            raise PolicyError(
                source,
                f"{path}.{resource}",
                f"{shown}: a node's {resource} is required and above 0",
            )
        if quantity.milli > limit * 1000:
            raise PolicyError(
                source,
                f"{path}.{resource}",
                f"{quantity.text} is too large for a node (expected at most {text})",
            )
    return node
