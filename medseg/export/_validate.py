"""Check DICOM files against their IOD with dicom3tools' ``dciodvfy``."""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from medseg.core import ExportError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IodReport:
    """What ``dciodvfy`` said about one file: its error and warning lines."""

    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors


def validate_dicom_iod(path: str | Path, *, executable: str = "dciodvfy") -> IodReport:
    """Run ``dciodvfy`` on one file and collect its ``Error``/``Warning`` lines.

    Raises
    ------
    ExportError
        If ``dciodvfy`` is not installed (Debian/Ubuntu: ``apt-get install dicom3tools``).
    """
    program = shutil.which(executable)
    if program is None:
        raise ExportError(
            f"{executable} not found; install dicom3tools (apt-get install dicom3tools)"
        )
    result = subprocess.run(
        [program, str(path)], capture_output=True, text=True, check=False, timeout=300
    )
    lines = (result.stdout + result.stderr).splitlines()
    errors = tuple(line.strip() for line in lines if line.startswith("Error"))
    warnings = tuple(line.strip() for line in lines if line.startswith("Warning"))
    logger.debug("dciodvfy: %d errors, %d warnings", len(errors), len(warnings))
    return IodReport(errors=errors, warnings=warnings)
