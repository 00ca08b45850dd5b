"""The report's charts, drawn by matplotlib as SVG text to inline in the page.

Why matplotlib's SVG: the page must open offline (clusters often are) with nothing fetched, so
no CDN script, no web font, no JavaScript chart library to embed (hundreds of KB each) and
nothing to run in the browser. SVG is drawn once, here; text stays text (`svg.fonttype:
none`, the browser's sans-serif), so a chart is a few tens of KB, sharp at any zoom, and its
title and labels are in the DOM for search, copy and tests. Scatters with thousands of points
are rasterized (one embedded PNG) to keep the page small.

Each chart is `Chart(key, title, svg, note)`: `svg` is None, and `note` says why, when there
is nothing to draw (no usage figures, no waits, no profiles).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any, NamedTuple

from podtier.webhook.core.prices import GIB
from podtier.webhook.report.figures import Figures
from podtier.webhook.report.format import money_label

RASTERIZE_ABOVE = 1500  # scatter points drawn as one image above this
COLORS = ("#3b6ea5", "#e08a2c", "#5a9e5a", "#b8504a", "#8b6bb1", "#8c6d4f", "#c76fae", "#7f7f7f")
REQUESTED, USED, NOW, RECOMMENDED, KILLED = "#9db7d5", "#3b6ea5", "#b0b0b0", "#5a9e5a", "#c0392b"


class Chart(NamedTuple):
    key: str
    title: str
    svg: str | None
    note: str | None = None


STYLE = {
    "svg.fonttype": "none",  # text stays text, in the reader's sans-serif
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "legend.frameon": False,
}


def charts(f: Figures) -> list[Chart]:
    return [
        _chart("usage", "Requested and used, per tier", lambda: _usage_by_tier(f)),
        _chart("memory", "Requested and peak memory, per task", lambda: _memory_scatter(f)),
        _chart("cost", _cost_title(f), lambda: _cost(f)),
        _chart("pending", "Pods waiting for a node, per pool", lambda: _pending(f)),
        _chart("saving", "With every recommended tier applied", lambda: _saving(f)),
    ]


def _chart(key: str, title: str, draw: Callable[[], Any]) -> Chart:
    """One chart, drawn in matplotlib's object API (no pyplot, no global backend) with the
    report's style set only while it draws."""
    from matplotlib import rc_context

    # svg.hashsalt: ids stable from run to run, and distinct between the page's charts
    with rc_context({**STYLE, "svg.hashsalt": key}):
        drawn = draw()
        if isinstance(drawn, str):
            return Chart(key, title, None, drawn)
        figure, note = drawn
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return Chart(key, title, _inline(buffer.getvalue(), key, title), note)


def _inline(svg: str, key: str, title: str) -> str:
    """matplotlib's SVG file as an element for an HTML page: no XML prolog or metadata, ids
    prefixed with the chart's key (several charts share one document), sized by CSS, titled."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{key}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{key}-\1"', svg)
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*" ', r"<svg \1", svg, count=1)
    opening = svg.index(">") + 1
    return (
        svg[: opening - 1]
        + f' role="img" aria-labelledby="{key}-title" class="chart">'
        + f'<title id="{key}-title">{escape(title)}</title>'
        + svg[opening:]
    )


def _figure(panels: int = 1, height: float = 3.4) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10.0, height), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    return figure, list(axes)


# ---------------------------------------------------------------------------- the charts


def _usage_by_tier(f: Figures) -> tuple[Any, str | None] | str:
    tiers = [
        t
        for t, totals in f.by_tier.items()
        if totals.sampled_cpu_hours or totals.sampled_memory_gib_hours
    ]
    if not tiers:
        return "No usage figures: neither PodMetrics nor TaskProfiles cover the pods."
    figure, (cpu, memory) = _figure(2)
    for ax, unit, sampled, used, ratio in (
        (cpu, "cpu·hours", "sampled_cpu_hours", "used_cpu_hours", "cpu_utilization"),
        (
            memory,
            "GiB·hours",
            "sampled_memory_gib_hours",
            "used_memory_gib_hours",
            "memory_utilization",
        ),
    ):
        totals = [f.by_tier[t] for t in tiers]
        _paired_bars(
            ax,
            [t or "(none)" for t in tiers],
            [getattr(t, sampled) for t in totals],
            [getattr(t, used) for t in totals],
            ("requested", "used"),
            (REQUESTED, USED),
        )
        for i, t in enumerate(totals):
            u = getattr(t, ratio)
            if u is not None:
                ax.annotate(
                    f"U {u:.0%}",
                    (i + 0.2, getattr(t, used)),
                    textcoords="offset points",
                    xytext=(0, 3),
                    ha="center",
                    fontsize=8,
                )
        ax.set_ylabel(unit)
        ax.set_title(unit.split("·")[0].replace("GiB", "memory"))
    cpu.legend(loc="upper right")
    sampled_pods = f.total.pods - f.usage_sources.get("none", 0)
    return figure, f"Over the {sampled_pods} of {f.total.pods} pods with a usage figure."


def _memory_scatter(f: Figures) -> tuple[Any, str | None] | str:
    points = [t for t in f.tasks if t.memory_peak is not None and t.memory_requested > 0]
    if not points:
        return "No memory peaks: neither PodMetrics nor TaskProfiles cover the tasks."
    figure, (ax,) = _figure(1, height=4.0)
    killed = [t for t in points if t.oom_kills]
    fine = [t for t in points if not t.oom_kills]
    rasterize = len(points) > RASTERIZE_ABOVE
    for group, color, marker, label in (
        (fine, USED, "o", "task"),
        (killed, KILLED, "x", "task OOM-killed at least once"),
    ):
        if group:
            ax.scatter(
                [t.memory_requested / GIB for t in group],
                [(t.memory_peak or 0) / GIB for t in group],
                s=14 if marker == "o" else 26,
                c=color,
                marker=marker,
                alpha=0.55 if marker == "o" else 0.9,
                linewidths=0 if marker == "o" else 1.2,
                label=f"{label} ({len(group)})",
                rasterized=rasterize,
            )
    top = max(max(t.memory_requested, t.memory_peak or 0) for t in points) / GIB * 1.08
    ax.plot(
        [0, top], [0, top], color="#888888", linewidth=0.8, linestyle="--", label="peak = request"
    )
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("requested memory (GiB)")
    ax.set_ylabel("peak memory (GiB)")
    ax.legend(loc="upper left")
    left_out = len(f.tasks) - len(points)
    return figure, (
        f"{left_out} tasks without a memory figure are not shown." if left_out else None
    )


def _cost_title(f: Figures) -> str:
    return "Cost per pool and per tier" if f.priced else "Requested resource·hours per pool"


def _cost(f: Figures) -> tuple[Any, str | None] | str:
    if not f.by_pool:
        return "No pods in the window."
    if f.priced:
        figure, (pools, tiers) = _figure(2)
        unit = money_label(f.currency)
        for ax, groups, what in ((pools, f.by_pool, "pool"), (tiers, f.by_tier, "tier")):
            names = [n for n, t in groups.items() if t.cost]
            _bars(ax, names, [groups[n].cost or 0.0 for n in names], unit, _colors(groups))
            ax.set_title(f"per {what}")
        unpriced = f.total.unpriced_pods
        return figure, (
            f"Pods that ran in pools without prices are not in these sums: {unpriced}."
            if unpriced
            else None
        )
    panels = [("cpu·hours", "cpu_hours"), ("GiB·hours", "memory_gib_hours")]
    if f.total.gpu_hours:
        panels.append(("GPU·hours", "gpu_hours"))
    figure, axes = _figure(len(panels))
    names = list(f.by_pool)
    for ax, (unit, attr) in zip(axes, panels, strict=True):
        _bars(ax, names, [getattr(f.by_pool[n], attr) for n in names], unit, _colors(names))
        ax.set_title(unit)
    return (
        figure,
        "The policy has no pool prices (spec.pools.NAME.cost): resource·hours instead of money.",
    )


def _pending(f: Figures) -> tuple[Any, str | None] | str:
    series = f.pending_series
    if series is None:
        return "No pod waited for a node in the window: no time series to show."
    figure, (ax,) = _figure(1)
    times = [datetime.fromtimestamp(t, UTC) for t in series.times]
    colors = _colors(f.by_pool)
    for pool, counts in series.by_pool.items():
        ax.step(
            times, counts, where="post", color=colors[pool], label=pool or "(none)", linewidth=1.3
        )
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("pods waiting")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time (UTC)")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.legend(loc="upper left")
    return (
        figure,
        "Rebuilt from the pods' creation and binding times: pods already deleted are not in it.",
    )


def _saving(f: Figures) -> tuple[Any, str | None] | str:
    if not f.saving_total.pods:
        return "No TaskProfile recommends another tier for the window's pods: nothing to save yet."
    names = list(f.savings)
    labels = [n or "(none)" for n in names]
    saved = f.saving_total
    if f.priced and saved.now.cost is not None:
        figure, (ax,) = _figure(1)
        unit = money_label(f.currency)
        _paired_bars(
            ax,
            labels,
            [f.savings[n].now.cost or 0.0 for n in names],
            [f.savings[n].recommended.cost or 0.0 for n in names],
            ("tiers now", "recommended tiers"),
            (NOW, RECOMMENDED),
        )
        ax.set_ylabel(unit)
        ax.legend(loc="upper right")
        head = _change((saved.now.cost or 0.0) - (saved.recommended.cost or 0.0), unit)
    else:
        figure, (cpu, memory) = _figure(2)
        for ax, unit, attr in (
            (cpu, "cpu·hours", "cpu_hours"),
            (memory, "GiB·hours", "memory_gib_hours"),
        ):
            _paired_bars(
                ax,
                labels,
                [getattr(f.savings[n].now, attr) for n in names],
                [getattr(f.savings[n].recommended, attr) for n in names],
                ("tiers now", "recommended tiers"),
                (NOW, RECOMMENDED),
            )
            ax.set_ylabel(unit)
        cpu.legend(loc="upper right")
        head = _change(saved.now.cpu_hours - saved.recommended.cpu_hours, "cpu·hours")
    return figure, (
        f"{head} on the window's pods: {saved.pods} of them would change tier (from their "
        "task's TaskProfile); the others count the same in both."
    )


def _change(saved: float, unit: str) -> str:
    return f"{saved:,.2f} {unit} saved" if saved >= 0 else f"{-saved:,.2f} {unit} more"


# ---------------------------------------------------------------------------- drawing helpers


def _colors(names: Iterable[str]) -> dict[str, str]:
    """One colour per pool (or tier), the same in every chart."""
    return {name: COLORS[i % len(COLORS)] for i, name in enumerate(names)}


def _bars(
    ax: Any, names: Sequence[str], values: Sequence[float], unit: str, colors: dict[str, str]
) -> None:
    bars = ax.bar(
        [n or "(none)" for n in names], values, color=[colors[n] for n in names], width=0.6
    )
    ax.bar_label(bars, labels=[_short(v) for v in values], fontsize=8, padding=2)
    ax.set_ylabel(unit)
    ax.margins(y=0.15)


def _paired_bars(
    ax: Any,
    names: Sequence[str],
    first: Sequence[float],
    second: Sequence[float],
    labels: tuple[str, str],
    colors: tuple[str, str],
) -> None:
    positions = list(range(len(names)))
    ax.bar([p - 0.2 for p in positions], first, width=0.4, color=colors[0], label=labels[0])
    ax.bar([p + 0.2 for p in positions], second, width=0.4, color=colors[1], label=labels[1])
    ax.set_xticks(positions, names)
    ax.margins(y=0.18)


def _short(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return (
        f"{value:.2f}"
        if abs(value) < 10
        else f"{value:.1f}"
        if abs(value) < 100
        else f"{value:.0f}"
    )
