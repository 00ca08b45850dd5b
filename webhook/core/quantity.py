"""Kubernetes quantities as integer milli-units.

Parsing is `kubernetes.utils.parse_quantity`; this module only adds the bounds that the
API server enforces (no negatives, nothing above int64) and turns the Decimal into an int of
milli-units, rounded up as the scheduler rounds cpu (`100.5m` counts as `101m`). Every
resource uses the same unit, so sums and comparisons are plain integer arithmetic.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation
from functools import lru_cache

from kubernetes.utils import parse_quantity

# Kubernetes quantities must fit in an int64 of their base unit.
_MAX_UNITS = Decimal(2**63 - 1)


class QuantityError(ValueError):
    """A value that is not a usable Kubernetes quantity. The message names the value."""


def to_milli(value: object) -> int:
    """Parse a quantity (`"500m"`, `"2Gi"`, `4`) into integer milli-units."""
    # Pods repeat a handful of spellings ("500m", "1Gi") and a Decimal parse costs
    # microseconds per admission: strings go through a small cache (errors are not cached).
    if type(value) is str:
        return _str_to_milli(value)
    return _to_milli(value)


@lru_cache(maxsize=1024)
def _str_to_milli(value: str) -> int:
    return _to_milli(value)


def _to_milli(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(
            f"{_show(value)} is not a quantity (expected a string such as 500m or 2Gi)"
        )
    try:
        parsed = parse_quantity(value)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, InvalidOperation, ArithmeticError):
        raise QuantityError(f"{_show(value)} is not a quantity") from None
    if not parsed.is_finite():
        raise QuantityError(f"{_show(value)} is not a quantity")
    if parsed < 0:
        raise QuantityError(f"{_show(value)} is negative")
    if parsed > _MAX_UNITS:
        raise QuantityError(f"{_show(value)} is too large")
    return int((parsed * 1000).to_integral_value(rounding=ROUND_CEILING))


def format_milli(milli: int, resource: str) -> str:
    """Render milli-units the way Kubernetes prints them: cpu in m or cores, memory in Mi/Gi."""
    if resource == "cpu" or milli % 1000:
        if milli % 1000 == 0:
            return str(milli // 1000)
        return f"{milli}m"
    units = milli // 1000
    if resource == "memory" or resource.endswith("storage"):
        for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if units >= size and units % size == 0:
                return f"{units // size}{suffix}"
    return str(units)


def _show(value: object) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:37] + '..."'
