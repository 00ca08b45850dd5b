"""The report in a terminal (rich): headline numbers, pools, tiers, the top wasteful and most
killed tasks, and the notes."""

from __future__ import annotations

from podtier.webhook.report.figures import Figures
from podtier.webhook.report.tables import (
    Table,
    headlines,
    killed_table,
    pools_table,
    tiers_table,
    wasteful_table,
    when,
)

TERMINAL_TOP = 10


def render(f: Figures, width: int | None = None) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(width=width or max(120, Console().width))
    console.print(f"[bold]podtier report[/bold]: {f.source}, policy {f.policy}, {when(f)}")
    summary = RichTable(show_header=False, box=None, padding=(0, 2))
    for line in headlines(f):
        summary.add_row(line.label, f"[bold]{line.value}[/bold]", line.detail)
    console.print(summary)

    def show(table: Table) -> None:
        if not table.rows:
            return
        out = RichTable(title=table.title, title_justify="left")
        for i, column in enumerate(table.columns):
            if i >= table.numeric:
                out.add_column(column, justify="right")
            else:  # names stay whole; headers of numbers may wrap
                longest = max(len(column), *(len(row[i]) for row in table.rows))
                out.add_column(column, no_wrap=True, min_width=longest)
        for row in table.rows:
            out.add_row(*row)
        console.print(out)

    for table in (
        pools_table(f),
        tiers_table(f),
        wasteful_table(f, TERMINAL_TOP),
        killed_table(f, TERMINAL_TOP),
    ):
        show(table)
    for note in f.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
