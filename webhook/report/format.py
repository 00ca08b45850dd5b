"""How the report writes its numbers, the same in the terminal and on the page."""

from __future__ import annotations

from podtier.webhook.core.prices import GIB


def money_label(currency: str) -> str:
    return currency or "cost units"


def money(value: float | None, currency: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f} {currency}".rstrip()


def hours(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.0%}"


def gib(size: int | None) -> str:
    return "-" if size is None else f"{size / GIB:,.2f}"


def cores(milli: int | None) -> str:
    return "-" if milli is None else f"{milli / 1000:,.2f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{seconds / 86400:.0f}d"
