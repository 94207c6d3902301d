"""One validation of case ids and output paths, used by every command before any work.

A case id becomes a file or folder name (``cases/<id>/``, ``<id>.nii.gz``), so it must be one
plain path component: ``.``, ``..``, hidden names and separators are refused. An output path
is checked before a model runs: its suffix, that it is not (inside) an input, that it does
not exist unless overwriting was asked for, that no file stands where a folder is needed and
that the nearest existing folder is writable. Paths are normalised lexically first, so
``a/../b/../c.nii.gz`` writes ``c.nii.gz`` and creates neither ``a/`` nor ``b/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from medseg.core._errors import ConfigError, OutputExistsError, OutputPathError

#: A case id: letters, digits, ``_ . -``, starting with a letter, digit or ``_`` (so never
#: ``.``, ``..`` or a hidden name), at most 128 characters.
CASE_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
_CASE_ID = re.compile(CASE_ID_PATTERN)


def check_case_id(case_id: str) -> str:
    """Return ``case_id`` if it is safe as one file name component.

    Raises
    ------
    ConfigError
        If it is empty, ``.``/``..``, starts with a dot or holds anything but letters,
        digits, ``_``, ``.`` and ``-``.
    """
    if not isinstance(case_id, str) or not _CASE_ID.match(case_id):
        shown = repr(case_id)[:40]
        raise ConfigError(
            f"case id must be letters, digits, '_', '.', '-' (not starting with '.', at most "
            f"128 characters), not {shown}"
        )
    return case_id


def child_path(parent: str | Path, name: str) -> Path:
    """``parent / name`` for a case id or output name, refusing one that leaves ``parent``."""
    return Path(parent) / check_case_id(name)


def normalize_path(path: str | Path) -> Path:
    """``path`` made absolute and normalised lexically (``a/../b`` → ``b``), no symlinks read."""
    return Path(os.path.normpath(os.path.abspath(os.fspath(path))))


def _contains(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor)


def check_output_path(
    path: str | Path,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    suffixes: Sequence[str] | None = None,
    folder: bool = False,
    what: str = "output",
) -> Path:
    """Check where an output will go, before any work; return the normalised path.

    Parameters
    ----------
    path
        The output file (or folder, with ``folder=True``).
    overwrite
        Whether an existing output file may be replaced (folders may always exist).
    inputs
        Files or folders read by the command: the output may not be one of them or lie
        inside one of them (that would change the input).
    suffixes
        Accepted name endings (case-insensitive), e.g. ``(".nii", ".nii.gz")``.
    what
        How the message names the output (``--out``).

    Raises
    ------
    ConfigError
        If the name does not end in one of ``suffixes``.
    OutputExistsError
        If the output file exists and ``overwrite`` is false.
    OutputPathError
        If the output is an input or lies inside one, a file stands where a folder is
        needed (or a folder where a file is), or the place is not writable.
    """
    given = path
    path = normalize_path(path)
    if suffixes and not path.name.lower().endswith(tuple(s.lower() for s in suffixes)):
        raise ConfigError(
            f"{what} must end in {' or '.join(suffixes)}, not {Path(given).name!r}", path=given
        )
    real = _real(path)
    for source in inputs:
        source_real = _real(normalize_path(source))
        if _contains(source_real, real) and (source_real.is_dir() or real == source_real):
            raise OutputPathError(
                f"{what} is an input or lies inside one; choose a place outside the inputs",
                path=given,
            )
    if os.path.lexists(path):
        if folder and not path.is_dir():
            raise OutputPathError(f"{what} must be a folder; a file is there", path=given)
        if not folder and path.is_dir():
            raise OutputPathError(f"{what} must be a file; a folder is there", path=given)
        if not folder and not overwrite:
            raise OutputExistsError(
                "output already exists; pass --overwrite to replace it", path=given
            )
    existing = _nearest_existing(path if folder else path.parent)
    if not existing.is_dir():
        raise OutputPathError(
            f"{what} cannot be created: {existing.name!r} on its path is a file, not a folder",
            path=given,
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} cannot be written: no write permission", path=given)
    return path


def check_distinct_outputs(paths: Sequence[str | Path], *, overwrite: bool = False) -> None:
    """Check the output files of a batch before any work: no two share a path, and none
    exists unless ``overwrite`` (two inputs ``a/img.png`` and ``b/img.png`` would both be
    written to ``img_labels.nii.gz``).

    Raises
    ------
    ConfigError
        If two outputs have the same path.
    OutputExistsError, OutputPathError
        As :func:`check_output_path`, for the first output that fails.
    """
    seen: dict[Path, int] = {}
    for index, path in enumerate(paths):
        key = normalize_path(path)
        if key in seen:
            raise ConfigError(
                f"outputs {seen[key] + 1} and {index + 1} would both be written to "
                f"{key.name!r}; give inputs distinct file names",
                path=key.parent,
            )
        seen[key] = index
        check_output_path(key, overwrite=overwrite)
