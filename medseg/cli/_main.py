"""The ``medseg`` command line: parse arguments, load config, call the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from medseg import __version__
from medseg.cli import _data, _deid, _evaluate, _export, _infer, _run, _sam, _train
from medseg.cli._options import add_global_flags, merge_path_aliases
from medseg.core import (
    ExitCode,
    LogLevel,
    MedsegError,
    configure_logging,
    progress_logging,
    set_progress_enabled,
)

logger = logging.getLogger("medseg")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every working subcommand."""
    parser = argparse.ArgumentParser(
        prog="medseg",
        description="Medical images to validated, reviewable segmentations.",
    )
    parser.add_argument("--version", action="version", version=f"medseg {__version__}")
    add_global_flags(parser, top_level=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _run.add_parsers(commands)
    _data.add_parsers(commands)
    _evaluate.add_parsers(commands)
    _sam.add_parsers(commands)
    _data.add_manifest_parsers(commands)
    _deid.add_parsers(commands)
    _train.add_parsers(commands)
    _infer.add_parsers(commands)
    _data.add_config_parsers(commands)
    _export.add_parsers(commands)
    _add_global_flags_everywhere(commands)
    return parser


def _add_global_flags_everywhere(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Accept the global flags after every (nested) subcommand too."""
    for subparser in set(commands.choices.values()):
        add_global_flags(subparser, top_level=False)
        for action in subparser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_global_flags_everywhere(action)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medseg`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    merge_path_aliases(args)
    configure_logging(args.log_level or (LogLevel.WARNING if args.quiet else LogLevel.INFO))
    set_progress_enabled(not args.quiet)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        with progress_logging():
            return int(handler(args))
    except MedsegError as err:
        logger.debug("failed", exc_info=True)
        print(f"medseg: error: {err}", file=sys.stderr)
        return int(err.exit_code)
    except KeyboardInterrupt:
        print("medseg: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        logger.debug("internal error", exc_info=True)
        print(
            f"medseg: internal error ({type(err).__name__}); rerun with --log-level debug "
            "for the traceback",
            file=sys.stderr,
        )
        return int(ExitCode.INTERNAL)
