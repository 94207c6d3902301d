"""Options shared by several subcommands (``--out``, ``--overwrite``, ``--device``,
``--precision``, ``--root``) and small parsing helpers."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from medseg.core import ConfigError

#: When the CLI was imported: the start of "imports and setup" in timing logs.
CLI_STARTED = time.perf_counter()


def default_root() -> Path:
    """Folder holding ``data_manifests/``: the source checkout, else the working directory."""
    checkout = Path(__file__).resolve().parent.parent.parent
    return checkout if (checkout / "data_manifests").is_dir() else Path.cwd()


def add_out(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    help: str,
    default: Path | None = None,
) -> None:
    """``--out PATH``: required unless a ``default`` is given."""
    parser.add_argument("--out", type=Path, required=default is None, default=default, help=help)


def add_overwrite(parser: argparse.ArgumentParser, *, help: str) -> None:
    """``--overwrite``: replace existing outputs instead of refusing."""
    parser.add_argument("--overwrite", action="store_true", help=help)


def add_device(parser: argparse.ArgumentParser, *, help: str) -> None:
    """``--device``: auto, cpu or cuda[:N] (validated by the library's config)."""
    parser.add_argument("--device", help=help)


def add_precision(
    parser: argparse.ArgumentParser,
    *,
    choices: Sequence[str],
    help: str,
) -> None:
    """``--precision``: one of ``choices`` (the library's precision names)."""
    parser.add_argument("--precision", choices=list(choices), help=help)


def add_root(parser: argparse.ArgumentParser, *, help: str) -> None:
    """``--root``: the folder relative paths start from (default: the checkout)."""
    parser.add_argument("--root", type=Path, default=default_root(), help=help)


def parse_numbers(text: str, *, what: str, counts: tuple[int, ...]) -> list[float]:
    """Comma-separated numbers, ``len`` one of ``counts``; ConfigError naming ``what``."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as err:
        raise ConfigError(f"{what} must be comma-separated numbers, not {text!r}") from err
    if len(values) not in counts:
        raise ConfigError(
            f"{what} must have {' or '.join(str(c) for c in counts)} values, "
            f"not {len(values)} ({text!r})"
        )
    return values
