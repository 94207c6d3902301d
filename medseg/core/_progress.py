"""The one progress helper: a tqdm bar on a terminal, nothing when output is redirected."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

ItemT = TypeVar("ItemT")


def progress(
    items: Iterable[ItemT], *, description: str, total: int | None = None, unit: str = "it"
) -> Iterator[ItemT]:
    """Yield ``items`` with a progress bar on stderr, shown only when stdout is a TTY."""
    enabled = sys.stdout.isatty() and sys.stderr.isatty()
    yield from tqdm(
        items, desc=description, total=total, unit=unit, disable=not enabled, leave=False
    )
