"""The ``medseg`` command line: one module per command group, each command a thin call
into the library; ``main`` is the console script's entry point."""

from __future__ import annotations

from medseg.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
