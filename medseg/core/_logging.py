"""Logging set-up for the CLI; library modules only call ``logging.getLogger(__name__)``."""

from __future__ import annotations

import enum
import logging
import os


class LogLevel(str, enum.Enum):
    """Levels accepted by ``medseg --log-level``."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def configure_logging(level: LogLevel | str = LogLevel.INFO) -> None:
    """Send medseg's log records to stderr at ``level`` and quiet chatty dependencies."""
    level = LogLevel(level)
    logging.basicConfig(
        level=getattr(logging, level.name),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    for noisy in (
        "mlflow",
        "alembic",
        "urllib3",
        "matplotlib",
        "PIL",
        "git",
        "numexpr",
        "distributed",
        "tornado",
        "bokeh",
        "asyncio",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level.name)))
    # highdicom logs the source's SOP Instance UIDs at INFO while building a SEG (PHI-adjacent
    # identifiers of the original study): keep it to warnings even at --log-level info.
    logging.getLogger("highdicom").setLevel(
        logging.DEBUG
        if level is LogLevel.DEBUG
        else max(logging.WARNING, getattr(logging, level.name))
    )
    # nibabel logs each header repair of a damaged file; the typed error that follows is
    # what the user needs.
    logging.getLogger("nibabel").setLevel(
        logging.DEBUG if level is LogLevel.DEBUG else logging.ERROR
    )
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
