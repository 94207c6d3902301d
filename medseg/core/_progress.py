"""The one progress helper: tqdm bars with time left on stderr, only on a terminal.

Bars are off when stdout or stderr is not a terminal (logs and pipes stay clean) and when
the command line asked for ``--quiet`` (:func:`set_progress_enabled`). While a bar is
shown, log records are written above it (:func:`progress_logging`), never through it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

from tqdm import tqdm

ItemT = TypeVar("ItemT")

#: Switched off by the CLI's ``--quiet``; bars also need a terminal.
_ENABLED = [True]


def set_progress_enabled(enabled: bool) -> None:
    """Allow (the default) or forbid progress bars in this process."""
    _ENABLED[0] = bool(enabled)


def progress_enabled() -> bool:
    """Whether a bar would be shown now: allowed, and stdout and stderr are terminals."""
    return _ENABLED[0] and sys.stdout.isatty() and sys.stderr.isatty()


class ProgressBar(Protocol):
    """What :func:`progress_bar` yields."""

    def update(self, n: float = 1) -> object: ...


def progress(
    items: Iterable[ItemT], *, description: str, total: int | None = None, unit: str = "it"
) -> Iterator[ItemT]:
    """Yield ``items`` with a progress bar (count, elapsed, time left) on stderr."""
    yield from _tqdm(items, description=description, total=total, unit=unit)


def _tqdm(items: Iterable[ItemT] | None, *, description: str, total: int | None, unit: str) -> tqdm:
    """One place for the bars' look: stderr, cleared when done, off when disabled."""
    return tqdm(
        items,
        desc=description,
        total=total,
        unit=unit,
        disable=not progress_enabled(),
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
    )


@contextlib.contextmanager
def progress_bar(*, total: int, description: str, unit: str = "it") -> Iterator[ProgressBar]:
    """A bar advanced by hand (``bar.update()``) where work is not one loop over items."""
    bar = _tqdm(None, description=description, total=total, unit=unit)
    try:
        yield bar
    finally:
        bar.close()


@contextlib.contextmanager
def progress_logging() -> Iterator[None]:
    """Write log records above any active bar instead of through it."""
    if not progress_enabled():
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield
