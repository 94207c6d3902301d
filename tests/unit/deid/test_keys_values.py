"""Keyed replacements and value helpers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from medseg.core import ConfigError
from medseg.deid import DeidKey, load_deid_key, shift_date, shift_datetime
from medseg.deid._values import clean_text, collect_text_tokens, compile_cleaner


def test_uid_is_a_version8_uuid_under_2_25(deid_key: DeidKey) -> None:
    uid = deid_key.replace_uid("1.2.3.4")
    assert uid == deid_key.replace_uid("1.2.3.4")
    value = uuid.UUID(int=int(uid.removeprefix("2.25.")))
    assert value.version == 8
    assert value.variant == uuid.RFC_4122
    assert deid_key.replace_uid("1.2.3.5") != uid


def test_pseudonym_and_offset(deid_key: DeidKey) -> None:
    name = deid_key.make_pseudonym("PID1")
    assert name == deid_key.make_pseudonym("PID1")
    assert name.isalpha()
    assert len(name) == 16
    offsets = {
        deid_key.compute_date_offset_days(f"p{i}", min_days=-10, max_days=-5) for i in range(200)
    }
    assert offsets == set(range(-10, -4))


def test_key_sources(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("  " + "a" * 32 + "\n")
    from_file = load_deid_key(key_file=path)
    from_env = load_deid_key(env_value="a" * 32)
    assert from_file.replace_uid("1.2") == from_env.replace_uid("1.2")
    assert "a" * 32 not in repr(from_file)
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        load_deid_key(env_value="short")
    with pytest.raises(ConfigError, match="exactly one"):
        load_deid_key()
    with pytest.raises(ConfigError, match="cannot read"):
        load_deid_key(key_file=tmp_path / "missing")


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20200301", -1, "20200229"),
        ("20200115", -365, "20190115"),
        ("20200101-20200110", -1, "20191231-20200109"),
        ("2020", -1, "19000101"),
        ("garbage", -1, "19000101"),
    ],
)
def test_shift_date(value: str, days: int, expected: str) -> None:
    assert shift_date(value, days) == expected


def test_shift_datetime_keeps_time_and_zone() -> None:
    assert shift_datetime("20200301101500.123+0100", -1) == "20200229101500.123+0100"


def test_clean_text() -> None:
    pattern = compile_cleaner(collect_text_tokens(["DOE^JANE", "19870203", "MRN55"]))
    text = "Jane Doe born 03.02.1987, mrn55, id 1234567, seen 2020-01-15; doesnt match Doerr"
    assert clean_text(text, pattern) == "born , , id , seen ; doesnt match Doerr"
