"""The report as one self-contained HTML file: inline CSS, inline SVG charts, no script.

Nothing is fetched when it opens: no script, font, stylesheet or image from anywhere, and a
Content-Security-Policy that forbids them, so the page works offline and leaks nothing. Every
string that comes from the cluster (task ids, pool names) is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from podtier.webhook.report import format as fmt
from podtier.webhook.report.charts import Chart
from podtier.webhook.report.figures import TOP, Figures
from podtier.webhook.report.tables import (
    Table,
    headlines,
    killed_table,
    pools_table,
    tiers_table,
    wasteful_table,
    when,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
:root { color-scheme: light; --ink: #1d2733; --muted: #5b6775; --line: #dfe4ea; --accent: #3b6ea5; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans",
  sans-serif; color: var(--ink); background: #f5f7fa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 34px 0 10px; }
h3 { font-size: 14px; margin: 0 0 6px; }
.meta { color: var(--muted); margin: 0; }
.notes { background: #fff8e6; border: 1px solid #f0dca8; border-radius: 6px; padding: 8px 14px;
  margin: 16px 0 0; }
.notes li { margin: 2px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px;
  margin-top: 18px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .04em; }
.card .value { font-size: 20px; font-weight: 600; margin: 2px 0; }
.card .detail { color: var(--muted); font-size: 12px; }
.charts { display: grid; grid-template-columns: 1fr; gap: 16px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 16px 10px; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
.empty { color: var(--muted); padding: 28px 0; text-align: center; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line);
  border-radius: 8px; overflow: hidden; font-size: 13px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left;
  white-space: nowrap; }
th { background: #eef2f6; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.task { white-space: normal; word-break: break-all; }
tr:last-child td { border-bottom: 0; }
.how { color: var(--muted); font-size: 13px; }
.how code { color: var(--ink); }
"""


def page(f: Figures, charts: Iterable[Chart]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>podtier report: {escape(f.source)}</title>",
        f"<style>{STYLE}</style></head><body><main>",
        "<h1>podtier report</h1>",
        f'<p class="meta">{escape(f.source)} · policy {escape(f.policy)} · {escape(when(f))}</p>',
    ]
    if f.notes:
        parts.append('<ul class="notes">')
        parts += [f"<li>{escape(note)}</li>" for note in f.notes]
        parts.append("</ul>")
    parts.append('<section class="cards">')
    for line in headlines(f):
        parts.append(
            f'<div class="card"><div class="label">{escape(line.label)}</div>'
            f'<div class="value">{escape(line.value)}</div>'
            f'<div class="detail">{escape(line.detail)}</div></div>'
        )
    parts.append("</section>")
    parts += _table(pools_table(f))
    parts += _table(tiers_table(f))
    parts.append('<h2>Charts</h2><section class="charts">')
    for chart in charts:
        parts.append(f'<figure id="chart-{chart.key}"><h3>{escape(chart.title)}</h3>')
        parts.append(
            chart.svg
            if chart.svg is not None
            else f'<div class="empty">{escape(chart.note or "")}</div>'
        )
        if chart.svg is not None and chart.note:
            parts.append(f"<figcaption>{escape(chart.note)}</figcaption>")
        parts.append("</figure>")
    parts.append("</section>")
    parts += _table(wasteful_table(f, TOP), empty="No task has usage figures to compare.")
    parts += _table(killed_table(f, TOP), empty="No task was OOM-killed.")
    parts.append(_HOW.format(money=escape(fmt.money_label(f.currency))))
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _table(table: Table, empty: str = "No pods in the window.") -> list[str]:
    out = [f'<h2 id="{table.key}">{escape(table.title)}</h2>']
    if not table.rows:
        return [*out, f'<p class="empty">{escape(empty)}</p>']
    out.append(f'<table id="table-{table.key}"><thead><tr>')
    out += [_cell("th", c, i >= table.numeric) for i, c in enumerate(table.columns)]
    out.append("</tr></thead><tbody>")
    for row in table.rows:
        cells = [
            _cell("td", c, i >= table.numeric, task=i == 0 and table.numeric > 1)
            for i, c in enumerate(row)
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return out


def _cell(tag: str, text: str, numeric: bool, task: bool = False) -> str:
    cls = ' class="n"' if numeric else ' class="task"' if task else ""
    return f"<{tag}{cls}>{escape(text)}</{tag}>"


_HOW = """<h2>How these figures are made</h2>
<div class="how">
<p><b>Run time</b> tᵢ: from the pod's <code>status.startTime</code> to its containers' last
<code>finishedAt</code>, or to the report's time while it runs, within the window. A pod that
never started costs nothing.</p>
<p><b>Cost</b> C = Σ cᵢ·tᵢ, with cᵢ = requested cores × <code>cpuHour</code> + GiB ×
<code>memoryGiBHour</code> + GPUs × <code>gpuHour</code> of the pod's pool
(<code>spec.pools.NAME.cost</code>, in {money}). Requests are the pod's, as the scheduler
counts them.</p>
<p><b>Utilization</b> U = used / requested: per pod, and per tier or pool
Σ usedᵢ·tᵢ / Σ requestedᵢ·tᵢ over the pods with a usage figure: the pod's PodMetrics sample,
else its run in its task's TaskProfile (cpu p95, memory peak), else its task's profile.</p>
<p><b>Tasks</b> are counted from their TaskProfile when they have one (every run it has seen),
else from their pods in the window. Waste = Σ max(0, requested − used) × t.</p>
<p><b>Pending</b>: from a pod's creation to its binding to a node; pods still waiting count
with their wait so far.</p>
<p><b>Saving</b>: the window's pods priced again, each at the tier its task's TaskProfile
recommends (in its pool when that tier may go there, else the tier's first pool).</p>
</div>"""
