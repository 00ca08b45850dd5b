"""The report's headline numbers and tables as text, for both the terminal and the page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from podtier.webhook.report import format as fmt
from podtier.webhook.report.figures import Figures, Totals
from podtier.webhook.report.tasks import TaskRow


class Table(NamedTuple):
    key: str
    title: str
    columns: list[str]
    numeric: int  # the first columns are text, those from this index on are numbers
    rows: list[list[str]]


class Headline(NamedTuple):
    label: str
    value: str
    detail: str


def when(f: Figures) -> str:
    now = _stamp(f.now)
    return f"{_stamp(f.since)} to {now}" if f.since is not None else f"up to {now}"


def headlines(f: Figures) -> list[Headline]:
    t = f.total
    sampled = t.pods - f.usage_sources.get("none", 0)
    lines = [
        Headline("Airflow pods", f"{t.pods:,}", f"{fmt.hours(t.run_hours)} run hours"),
        Headline(
            "cpu·hours",
            f"{fmt.hours(t.cpu_hours)} requested",
            f"{fmt.hours(t.used_cpu_hours)} used of {fmt.hours(t.sampled_cpu_hours)} · "
            f"U {fmt.percent(t.cpu_utilization)}",
        ),
        Headline(
            "GiB·hours",
            f"{fmt.hours(t.memory_gib_hours)} requested",
            f"{fmt.hours(t.used_memory_gib_hours)} used of "
            f"{fmt.hours(t.sampled_memory_gib_hours)} · U {fmt.percent(t.memory_utilization)}",
        ),
    ]
    if t.gpu_hours:
        lines.append(Headline("GPU·hours", f"{fmt.hours(t.gpu_hours)} requested", ""))
    if f.priced:
        lines.append(
            Headline(
                "cost",
                fmt.money(t.cost, fmt.money_label(f.currency)),
                f"pods in pools without prices: {t.unpriced_pods}" if t.unpriced_pods else "",
            )
        )
    saving = f.saving_total
    if saving.pods:
        if f.priced and saving.now.cost:
            now, then = saving.now.cost, saving.recommended.cost or 0.0
            unit = fmt.money_label(f.currency)
            value = f"{fmt.money(now - then, unit)} ({(now - then) / now:.0%})"
        else:
            now, then = saving.now.cpu_hours, saving.recommended.cpu_hours
            value = f"{fmt.hours(now - then)} cpu·h ({(now - then) / now:.0%})" if now else "-"
        lines.append(
            Headline(
                "saving with recommended tiers",
                value,
                f"of this window's cost; {saving.pods:,} pods would change tier",
            )
        )
    lines.append(
        Headline(
            "usage figures",
            f"{sampled:,} of {t.pods:,} pods",
            ", ".join(f"{n:,} {k}" for k, n in sorted(f.usage_sources.items()) if k != "none"),
        )
    )
    return lines


def pools_table(f: Figures) -> Table:
    rows = []
    for pool, totals in f.by_pool.items():
        pending = f.pending.get(pool)
        rows.append(
            [
                pool or "(none)",
                *_totals(totals, f),
                fmt.duration(pending.p50_seconds) if pending else "-",
                fmt.duration(pending.p95_seconds) if pending else "-",
                str(pending.waiting_now) if pending else "0",
            ]
        )
    columns = ["pool", *_total_columns(f), "pending p50", "pending p95", "waiting"]
    return Table("pools", "Per pool", columns, 1, rows)


def tiers_table(f: Figures) -> Table:
    rows = [[tier or "(none)", *_totals(totals, f)] for tier, totals in f.by_tier.items()]
    return Table("tiers", "Per tier", ["tier", *_total_columns(f)], 1, rows)


def wasteful_table(f: Figures, limit: int) -> Table:
    columns = ["task", "tier", "pool", "from", "runs", "run hours", "cpu req", "cpu used"]
    columns += ["wasted cpu·h", "wasted GiB·h"]
    if f.priced:
        columns.append(f"wasted {fmt.money_label(f.currency)}")
    rows = []
    for t in f.wasteful[:limit]:
        row = [
            *_task(t),
            f"{t.runs:,}",
            fmt.hours(t.run_hours),
            fmt.cores(t.cpu_requested),
            fmt.cores(t.cpu_used),
            fmt.hours(t.wasted_cpu_hours),
            fmt.hours(t.wasted_memory_gib_hours),
        ]
        rows.append([*row, fmt.money(t.wasted_cost, "")] if f.priced else row)
    title = f"The {limit} most wasteful tasks (requested but unused cpu·hours)"
    return Table("wasteful", title, columns, 4, rows)


def killed_table(f: Figures, limit: int) -> Table:
    columns = ["task", "tier", "pool", "from", "runs", "OOM kills", "kill rate", "memory req GiB"]
    columns += ["peak GiB", "recommended tier"]
    rows = [
        [
            *_task(t),
            f"{t.runs:,}",
            f"{t.oom_kills:,}",
            fmt.percent(t.oom_kills / t.runs if t.runs else None),
            fmt.gib(t.memory_requested),
            fmt.gib(t.memory_peak),
            t.recommended_tier or "-",
        ]
        for t in f.killed[:limit]
    ]
    return Table("killed", f"The {limit} tasks OOM-killed most often", columns, 4, rows)


def _total_columns(f: Figures) -> list[str]:
    columns = ["pods", "run hours", "cpu·h", "GiB·h", "GPU·h", "U cpu", "U memory"]
    return [*columns, fmt.money_label(f.currency)] if f.priced else columns


def _totals(t: Totals, f: Figures) -> list[str]:
    cells = [
        f"{t.pods:,}",
        fmt.hours(t.run_hours),
        fmt.hours(t.cpu_hours),
        fmt.hours(t.memory_gib_hours),
        fmt.hours(t.gpu_hours),
        fmt.percent(t.cpu_utilization),
        fmt.percent(t.memory_utilization),
    ]
    return [*cells, fmt.money(t.cost, "")] if f.priced else cells


def _task(t: TaskRow) -> list[str]:
    return [f"{t.namespace}/{t.dag_id}.{t.task_id}", t.tier or "-", t.pool or "-", t.source]


def _stamp(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")
