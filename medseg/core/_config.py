"""Typed configuration: YAML validated into frozen pydantic models.

YAML is read only at the edge (CLI, pipeline runner). An unknown key, a wrong type or a bad
value raises :class:`~medseg.core.ConfigError` naming the file, the dotted key path and what
was expected.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from medseg.core._errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigModel(BaseModel):
    """Base of every medseg config section: immutable, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``; raise ConfigError if it is missing or not a mapping."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError("file not found", path=path) from err
    except OSError as err:
        raise ConfigError(f"cannot read file ({err.strerror})", path=path) from err
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"not a UTF-8 text file (byte {err.start} cannot be decoded); expected YAML",
            path=path,
        ) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"invalid YAML{where}", path=path) from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"top level must be a mapping of keys to values, not a {type(data).__name__}",
            path=path,
        )
    return data


def _describe_validation_error(err: ValidationError) -> str:
    parts = []
    for item in err.errors():
        key_path = ".".join(str(p) for p in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            parts.append(f"{key_path}: unknown key")
        elif item["type"] == "missing":
            parts.append(f"{key_path}: required key is missing")
        else:
            got = item.get("input")
            got_text = f" (got {type(got).__name__} {got!r})" if not isinstance(got, dict) else ""
            parts.append(f"{key_path}: {item['msg'].lower()}{got_text}")
    return "; ".join(parts)


def parse_config(
    model_cls: type[ModelT], data: Mapping[str, Any], *, source: str | Path | None = None
) -> ModelT:
    """Validate ``data`` into ``model_cls``; errors name ``source`` and the dotted key path."""
    try:
        return model_cls.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(_describe_validation_error(err), path=source) from err


def load_config(path: str | Path, model_cls: type[ModelT]) -> ModelT:
    """Read the YAML file at ``path`` and validate it into ``model_cls``."""
    return parse_config(model_cls, read_yaml(path), source=path)


def dump_config(config: BaseModel) -> str:
    """Serialise a resolved config to YAML (saved with every run)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def look_up_option(name: str, choices: Iterable[str], *, what: str = "option") -> str:
    """Return ``name`` if it is one of ``choices``; else raise ConfigError with "did you mean"."""
    options = sorted(choices)
    if name in options:
        return name
    close = difflib.get_close_matches(name, options, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown {what} {name!r}: expected one of {', '.join(options)}{hint}")
