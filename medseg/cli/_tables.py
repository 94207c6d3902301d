"""Text tables on stdout, laid out by rich: aligned on a terminal, never wrapped in a pipe."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def print_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], *, title: str | None = None
) -> None:
    """Print ``rows`` under ``header`` as an aligned table (plain text when piped)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    terminal = sys.stdout.isatty()
    table = Table(
        *header,
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if terminal else "",
        title_justify="left",
    )
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    # a pipe has no width: lay the table out in full rather than wrap it at 80 columns
    console = Console(
        file=sys.stdout, width=None if terminal else 10_000, highlight=False, soft_wrap=False
    )
    console.print(table)
