"""Options shared by several subcommands (``-i/--input``, ``-o/--out``, ``--overwrite``,
``--device``, ``--precision``, ``--root``, the global ``--log-level``/``--quiet``) and small
parsing helpers.

Every command takes its input as ``-i/--input`` and its output as ``-o/--out``; the
positional forms of earlier versions (``medseg sam IMAGE``, ``medseg convert SRC DST``)
stay as aliases. :func:`merge_path_aliases` folds the two into one attribute after parsing.
"""

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
    """``-o/--out PATH``: required unless a ``default`` is given."""
    parser.add_argument(
        "-o", "--out", type=Path, required=default is None, default=default, help=help
    )


#: Attribute on a subcommand's namespace listing its (dest, option dest, many, flag) aliases.
_ALIASES = "_path_aliases"


def add_path_alias(
    parser: argparse.ArgumentParser,
    *,
    dest: str,
    flags: tuple[str, ...],
    metavar: str,
    help: str,
    many: bool = False,
) -> None:
    """A path given either positionally (the older form) or by option (``flags``).

    Adds an optional positional ``dest`` (``nargs='?'``, or ``'*'`` with ``many``) and the
    option ``flags`` (repeatable with ``many``); after parsing, :func:`merge_path_aliases`
    puts the value in ``args.<dest>`` (with ``many``: the paths of both forms) and refuses
    a single path given both ways or not at all.
    """
    option_dest = f"{dest}_option"
    parser.add_argument(
        dest,
        nargs="*" if many else "?",
        type=Path,
        metavar=metavar,
        help=f"{help} (same as {flags[-1]})",
    )
    parser.add_argument(
        *flags,
        dest=option_dest,
        type=Path,
        metavar=metavar,
        action="extend" if many else "store",
        nargs="+" if many else None,
        help=help,
    )
    aliases = list(parser.get_default(_ALIASES) or [])
    aliases.append((dest, option_dest, many, "/".join(flags)))
    parser.set_defaults(**{_ALIASES: aliases, "_subparser": parser})


def merge_path_aliases(args: argparse.Namespace, *, required: bool = True) -> None:
    """Fold each positional/option alias pair of ``args`` into one value (see above).

    Exits with a usage error (status 2) when a path is given both ways, or not at all
    while ``required``.
    """
    parser: argparse.ArgumentParser | None = getattr(args, "_subparser", None)
    for dest, option_dest, many, flags in getattr(args, _ALIASES, None) or []:
        positional = getattr(args, dest)
        option = getattr(args, option_dest)
        delattr(args, option_dest)
        if many:
            setattr(args, dest, [*(positional or []), *(option or [])])
            continue
        if positional is not None and option is not None and parser is not None:
            parser.error(f"give {flags} or the positional {dest.upper()}, not both")
        value = option if option is not None else positional
        if value is None and required and parser is not None:
            parser.error(f"the following arguments are required: {flags}")
        setattr(args, dest, value)


def add_mask_format(parser: argparse.ArgumentParser, *, help: str) -> None:
    """``--format auto|png|tif|nifti``: the mask file type written into an output folder."""
    from medseg.cli._inputs import OutputFormat

    parser.add_argument(
        "--format", choices=[f.value for f in OutputFormat], default="auto", help=help
    )


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


def add_global_flags(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """``--log-level`` and ``-q/--quiet``, accepted before or after the subcommand.

    On subcommands (``top_level=False``) they default to "not given", so a value given
    before the subcommand is kept unless repeated after it.
    """
    from medseg.core import LogLevel

    suppress = {} if top_level else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--log-level",
        choices=[lvl.value for lvl in LogLevel],
        help="log verbosity; 'debug' also prints tracebacks (default: info)",
        **({"default": None} if top_level else suppress),
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars and only warnings and errors in the log",
        **({"default": False} if top_level else suppress),
    )


class _DeprecatedAlias(argparse.Action):
    """Store into the new option's ``dest`` and say on stderr which option to use."""

    def __init__(self, *args: object, replacement: str, **kwargs: object) -> None:
        self.replacement = replacement
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        import sys

        print(
            f"medseg: warning: {option_string} is deprecated here; use {self.replacement}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_deprecated_alias(
    parser: argparse.ArgumentParser, flag: str, *, dest: str, replacement: str
) -> None:
    """An old option name kept working (hidden from --help) that warns it is deprecated."""
    parser.add_argument(
        flag, dest=dest, action=_DeprecatedAlias, replacement=replacement, help=argparse.SUPPRESS
    )


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
