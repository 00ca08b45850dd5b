"""Field checks for policy documents: each takes the source file, the raw value and its field
path, and returns the value as the expected type or raises `PolicyError` naming all three."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from podtier.webhook.core.policy import PolicyError, Quantity
from podtier.webhook.core.quantity import QuantityError, to_milli

QUANTITY_EXPECTED = "(expected a Kubernetes quantity such as 500m, 2 or 4Gi)"
# A Kubernetes quantity as the API server spells it (no blanks, no sign but +), as in schema.json.
QUANTITY_TEXT = re.compile(
    r"[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)


def as_quantities(source: str, raw: Any, path: str) -> dict[str, Quantity]:
    out = {}
    for name, value in as_map(source, raw, path).items():
        if isinstance(value, str) and not QUANTITY_TEXT.fullmatch(value):
            raise PolicyError(
                source,
                f"{path}.{name}",
                f"{show(value)} is not a quantity {QUANTITY_EXPECTED}",
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


def as_count(source: str, raw: Any, path: str, least: int) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < least:
        raise PolicyError(source, path, f"{show(raw)} is not a whole number >= {least}")
    return raw


def as_number(
    source: str,
    raw: Any,
    path: str,
    *,
    least: float | None = None,
    above: float | None = None,
    most: float | None = None,
) -> float:
    """A number within bounds (`least` <= n, `above` < n, n <= `most`)."""
    ok = isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw)
    if ok and least is not None and raw < least:
        ok = False
    if ok and above is not None and raw <= above:
        ok = False
    if ok and most is not None and raw > most:
        ok = False
    if not ok:
        bounds = []
        if least is not None:
            bounds.append(f">= {least:g}")
        if above is not None:
            bounds.append(f"> {above:g}")
        if most is not None:
            bounds.append(f"<= {most:g}")
        raise PolicyError(source, path, f"{show(raw)} is not a number {' and '.join(bounds)}")
    return float(raw)


def optional_bool(source: str, raw: Any, path: str) -> bool | None:
    if raw is not None and not isinstance(raw, bool):
        raise PolicyError(source, path, f"{show(raw)} is not true or false")
    return raw


def as_price(source: str, raw: Any, path: str) -> float:
    """A price per hour: a plain number, zero or more."""
    if (
        not isinstance(raw, int | float)
        or isinstance(raw, bool)
        or not math.isfinite(raw)
        or raw < 0
    ):
        raise PolicyError(
            source, path, f"{show(raw)} is not a price (expected a number >= 0, such as 0.045)"
        )
    return float(raw)


def check_fields(source: str, raw: Mapping[str, Any], path: str, allowed: Sequence[str]) -> None:
    for key in raw:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise PolicyError(
                source, where, f"unknown field (expected one of {', '.join(allowed)})"
            )


def as_map(source: str, raw: Any, path: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PolicyError(source, path, f"expected a map, got {type_name(raw)} {show(raw)}")
    return raw


def as_list(source: str, raw: Any, path: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PolicyError(source, path, f"expected a list, got {type_name(raw)} {show(raw)}")
    return raw


def as_strings(source: str, raw: Any, path: str) -> list[str]:
    items = as_list(source, raw, path)
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise PolicyError(source, f"{path}[{i}]", f"{show(item)} is not a non-empty string")
    return items


def as_string_map(source: str, raw: Any, path: str) -> dict[str, str]:
    out = {}
    for key, value in as_map(source, raw, path).items():
        if not isinstance(value, str):
            raise PolicyError(source, f"{path}.{key}", f"{show(value)} is not a string (quote it)")
        out[str(key)] = value
    return out


def optional_string(source: str, raw: Any, path: str) -> str | None:
    if raw is not None and (not isinstance(raw, str) or not raw):
        raise PolicyError(source, path, f"{show(raw)} is not a non-empty string")
    return raw


def unknown(what: str, name: Any, known: Mapping[str, Any]) -> str:
    return f"unknown {what} {show(name)} (known: {', '.join(known)})"


def expected(value: Any, allowed: Sequence[str]) -> str:
    return f"{show(value)} is not one of {', '.join(allowed)}"


def show(value: Any) -> str:
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def type_name(value: Any) -> str:
    return {
        dict: "a map",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)
