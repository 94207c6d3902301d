from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from medseg.core import ConfigError, ConfigModel, load_config, look_up_option, read_yaml


class _Inner(ConfigModel):
    overlap: float = Field(default=0.5, ge=0, lt=1)


class _Outer(ConfigModel):
    name: str
    inference: _Inner = _Inner()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_loads_into_frozen_model(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "name: a\ninference: {overlap: 0.25}\n"), _Outer)
    assert config.inference.overlap == 0.25
    with pytest.raises(ValueError, match="frozen"):
        config.name = "b"  # type: ignore[misc]


def test_unknown_key_names_file_and_dotted_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: a\ninference: {overlapp: 0.25}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, _Outer)
    message = str(info.value)
    assert str(path) in message
    assert "inference.overlapp: unknown key" in message


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: a\ninference: {overlap: lots}\n")
    with pytest.raises(ConfigError, match=r"inference\.overlap: input should be a valid number"):
        load_config(path, _Outer)


def test_out_of_range_and_missing_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"inference\.overlap: input should be less than 1"):
        load_config(_write(tmp_path, "name: a\ninference: {overlap: 1.5}\n"), _Outer)
    with pytest.raises(ConfigError, match="name: required key is missing"):
        load_config(_write(tmp_path, "inference: {}\n"), _Outer)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [("a: [1, 2\n", "invalid YAML at line"), ("- 1\n- 2\n", "top level must be a mapping")],
)
def test_bad_yaml_is_a_config_error(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        read_yaml(_write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        read_yaml(tmp_path / "nope.yaml")


def test_config_error_is_also_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_look_up_option_suggests_close_name() -> None:
    assert look_up_option("unet2d", ["unet2d", "unet3d"]) == "unet2d"
    with pytest.raises(ConfigError, match="did you mean 'litemedsam'"):
        look_up_option("litemedsm", ["litemedsam"], what="SAM model")


def test_binary_file_is_a_config_error_not_a_crash(tmp_path: Path) -> None:
    from medseg.core import ConfigError, read_yaml

    path = tmp_path / "random.yaml"
    path.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        read_yaml(path)
