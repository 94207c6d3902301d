"""The README is a one-screen quick start whose commands are real; docs/ holds the rest.

Every ``medseg`` command in the README's code blocks must parse with the CLI's own parser,
every bundled path it names must exist, every ``make`` target must be in the Makefile, every
relative link in README.md and docs/*.md must resolve, and the README's figures must be the
ones the docs pages and benchmarks/RESULTS.md state.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from medseg.cli import build_parser

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
# One page per task plus the references the README links to.
DOC_PAGES = (
    "architecture",
    "benchmarks",
    "brain-tumour",
    "cli",
    "ct-organs",
    "data",
    "deid",
    "development",
    "evaluation",
    "export",
    "hostile-inputs",
    "io",
    "nuclei",
    "pipelines",
    "quickstart",
    "retina",
    "sam",
    "text-prompts",
    "training",
)
FIRST_SCREEN_LINES = 60


def _code_lines(text: str) -> list[str]:
    """Command lines of the fenced code blocks, continuation lines joined, comments dropped."""
    lines: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            command = line.split("  #")[0].split(" # ")[0].strip()
            if command:
                lines.append(command)
    return lines


def _medseg_commands(text: str) -> list[list[str]]:
    return [shlex.split(line)[1:] for line in _code_lines(text) if line.startswith("medseg ")]


def test_readme_fits_a_screen_and_starts_with_the_quick_start() -> None:
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= 100, f"README has {len(lines)} lines; move detail to docs/"
    assert len(text.encode()) <= 10_000
    first = "\n".join(lines[:FIRST_SCREEN_LINES])
    assert "Prerequisites" in first
    assert re.search(r"Python ≥ 3\.\d+", first)
    assert re.search(r"\d+(\.\d+)? GB of\s+disk", first)
    assert "make demo" in first
    assert "make test" in first
    own = [c for c in _medseg_commands(first) if c[0] in {"sam", "infer"}]
    assert len(own) >= 2, "the first screen must show how to segment one's own image"


def test_readme_medseg_commands_parse_and_name_existing_bundled_files() -> None:
    commands = _medseg_commands(README.read_text())
    assert len(commands) >= 5
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit as err:  # argparse exits on a usage error
            pytest.fail(f"README command does not parse: medseg {shlex.join(argv)} ({err})")
        for arg in argv:
            value = arg.split("=", 1)[-1]
            if value.startswith("data/"):
                assert (REPO_ROOT / value).exists(), f"README names a missing file: {value}"


def test_readme_make_targets_exist() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = {m for m in re.findall(r"^([a-z][\w-]*):", makefile, flags=re.MULTILINE)}
    used = {line.split()[1] for line in _code_lines(README.read_text()) if line.startswith("make ")}
    assert used >= {"demo", "test"}
    assert used <= targets, f"README runs make targets that do not exist: {used - targets}"


@pytest.mark.parametrize("page", DOC_PAGES)
def test_docs_page_exists_and_readme_or_a_page_links_it(page: str) -> None:
    path = DOCS / f"{page}.md"
    assert path.is_file()
    assert path.read_text().startswith("# ")
    linked = README.read_text() + "".join(p.read_text() for p in DOCS.glob("*.md"))
    assert f"{page}.md" in linked


def test_every_relative_link_resolves() -> None:
    broken = []
    for doc in [README, *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (doc.parent / target.split("#")[0]).exists():
                broken.append(f"{doc.name}: {target}")
    assert not broken, broken


def test_readme_figures_are_the_docs_figures() -> None:
    """A score quoted in the README (0.xxx) is stated in a docs page or RESULTS.md."""
    sources = "".join(p.read_text() for p in DOCS.glob("*.md"))
    sources += (REPO_ROOT / "benchmarks" / "RESULTS.md").read_text()
    figures = set(re.findall(r"(?<![\w.])0\.\d{2,}(?![\w.])", README.read_text()))
    assert figures
    missing = sorted(f for f in figures if f not in sources)
    assert not missing, f"README figures found in no docs page: {missing}"


def _leaf_parsers() -> dict[str, object]:
    """``"export seg"`` → its argparse parser, for every runnable subcommand."""
    import argparse

    def children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    leaves: dict[str, object] = {}
    for name, sub in children(build_parser()).items():
        nested = children(sub)
        if nested:
            leaves.update({f"{name} {child}": parser for child, parser in nested.items()})
        else:
            leaves[name] = sub
    return leaves


def test_cli_reference_documents_every_command_with_real_options() -> None:
    text = (DOCS / "cli.md").read_text()
    leaves = _leaf_parsers()
    rows = re.findall(r"^\| `medseg ([^`]+)` \|", text, flags=re.MULTILINE)
    documented: dict[str, str] = {}
    for row in rows:
        words = row.split()
        key = " ".join(words[:2]) if " ".join(words[:2]) in leaves else words[0]
        documented[key] = row
    missing = sorted(set(leaves) - set(documented))
    assert not missing, f"docs/cli.md lacks the commands {missing}"
    for key, row in documented.items():
        assert key in leaves, f"docs/cli.md documents a command that does not exist: {key}"
        known = set(leaves[key]._option_string_actions)  # type: ignore[attr-defined]
        unknown = sorted(set(re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", row)) - known)
        assert not unknown, f"docs/cli.md: medseg {key} has no options {unknown}"
