"""One exception hierarchy for medseg, each error mapped to a distinct CLI exit code.

Every domain error also subclasses the matching built-in (``ValueError``, ``OSError``…) so
callers that only know the built-ins still catch it. Messages name the file and the
problem, never a PHI value.
"""

from __future__ import annotations

import enum
from pathlib import Path


class ExitCode(enum.IntEnum):
    """Process exit codes of the ``medseg`` CLI (2 is argparse's usage error)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    INPUT = 4
    GEOMETRY = 5
    DEID = 6
    MODEL = 7
    EXPORT = 8
    TRACKING = 9
    INTEGRITY = 10
    OUTPUT_EXISTS = 11
    OUTPUT_PATH = 12
    INTERNAL = 70


class MedsegError(Exception):
    """Base of all medseg errors.

    Parameters
    ----------
    message
        What was expected, what was found and how to fix it. Never a PHI value.
    path
        The file or folder the problem is about, if any.
    case_id
        Pseudonymous case identifier, if the problem concerns one case.
    """

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(
        self, message: str, *, path: str | Path | None = None, case_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.case_id = case_id

    def __str__(self) -> str:
        where = []
        if self.path is not None:
            where.append(str(self.path))
        if self.case_id is not None:
            where.append(f"case {self.case_id}")
        prefix = f"{', '.join(where)}: " if where else ""
        return f"{prefix}{self.message}"


class ConfigError(MedsegError, ValueError):
    """A configuration file or value is invalid (unknown key, wrong type, bad value)."""

    exit_code = ExitCode.CONFIG


class InputError(MedsegError, ValueError):
    """An input file is missing, unreadable, corrupt or of an unsupported kind."""

    exit_code = ExitCode.INPUT


class ChannelError(InputError):
    """The input channels do not match the ones a model expects (missing, extra, repeated).

    ``expected`` and ``found`` hold the channel names.
    """

    def __init__(
        self,
        message: str,
        *,
        expected: list[str] | None = None,
        found: list[str] | None = None,
        path: str | Path | None = None,
        case_id: str | None = None,
    ) -> None:
        super().__init__(message, path=path, case_id=case_id)
        self.expected = list(expected or [])
        self.found = list(found or [])


class GeometryError(MedsegError, ValueError):
    """Grids, spacings or orientations do not agree (e.g. mask and image differ)."""

    exit_code = ExitCode.GEOMETRY


class DeidError(MedsegError, ValueError):
    """De-identification refused a file or could not be applied safely."""

    exit_code = ExitCode.DEID


class ModelError(MedsegError, RuntimeError):
    """A model or its weights could not be built, loaded or run."""

    exit_code = ExitCode.MODEL


class ExportError(MedsegError, RuntimeError):
    """A result could not be exported (DICOM SEG, RTSTRUCT, overlays, PACS)."""

    exit_code = ExitCode.EXPORT


class TrackingError(MedsegError, RuntimeError):
    """Experiment tracking (MLflow) failed or was given a value it must refuse."""

    exit_code = ExitCode.TRACKING


class IntegrityError(MedsegError, ValueError):
    """A file does not match its recorded checksum, or a listed file is missing."""

    exit_code = ExitCode.INTEGRITY


class OutputExistsError(MedsegError, FileExistsError):
    """An output already exists and overwriting was not asked for."""

    exit_code = ExitCode.OUTPUT_EXISTS


class OutputPathError(MedsegError, OSError):
    """An output cannot go where it was asked: it is an input, lies inside one, a file
    stands where a folder is needed, or the place is not writable."""

    exit_code = ExitCode.OUTPUT_PATH


class StructureNameError(ConfigError):
    """Text names no known structure, several equally, or one not segmented on this image.

    Attributes
    ----------
    text
        The text as given.
    candidates
        The closest structure names, best first.
    """

    def __init__(self, message: str, *, text: str, candidates: tuple[str, ...]) -> None:
        super().__init__(message)
        self.text = text
        self.candidates = candidates
