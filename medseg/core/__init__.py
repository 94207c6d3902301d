"""Core: configuration, errors, logging, progress and file helpers (no torch here)."""

from __future__ import annotations

from medseg.core._config import (
    ConfigModel,
    dump_config,
    load_config,
    look_up_option,
    parse_config,
    read_yaml,
)
from medseg.core._errors import (
    ChannelError,
    ConfigError,
    DeidError,
    ExitCode,
    ExportError,
    GeometryError,
    InputError,
    IntegrityError,
    MedsegError,
    ModelError,
    OutputExistsError,
    OutputPathError,
    StructureNameError,
    TrackingError,
)
from medseg.core._files import atomic_output, compute_sha256
from medseg.core._logging import LogLevel, configure_logging
from medseg.core._paths import (
    CASE_ID_PATTERN,
    check_case_id,
    check_distinct_outputs,
    check_output_path,
    child_path,
    normalize_path,
)
from medseg.core._progress import (
    progress,
    progress_bar,
    progress_enabled,
    progress_logging,
    set_progress_enabled,
)

__all__ = [
    "CASE_ID_PATTERN",
    "ChannelError",
    "ConfigError",
    "ConfigModel",
    "DeidError",
    "ExitCode",
    "ExportError",
    "GeometryError",
    "InputError",
    "IntegrityError",
    "LogLevel",
    "MedsegError",
    "ModelError",
    "OutputExistsError",
    "OutputPathError",
    "StructureNameError",
    "TrackingError",
    "atomic_output",
    "check_case_id",
    "check_distinct_outputs",
    "check_output_path",
    "child_path",
    "compute_sha256",
    "configure_logging",
    "dump_config",
    "load_config",
    "look_up_option",
    "normalize_path",
    "parse_config",
    "progress",
    "progress_bar",
    "progress_enabled",
    "progress_logging",
    "read_yaml",
    "set_progress_enabled",
]
