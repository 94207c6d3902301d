"""Table E.1-1 as package data, option resolution and combined codes."""

from __future__ import annotations

import pytest
from pydicom.datadict import dictionary_description, dictionary_has_tag

from medseg.deid import (
    Action,
    DeidOption,
    build_action_table,
    find_attribute_types,
    load_profile_table,
    resolve_combined_action,
)
from medseg.deid._table import parse_tag, resolve_code


def test_table_is_complete_as_transcribed() -> None:
    rows = load_profile_table()
    assert len(rows) == 460
    assert len({r.tag for r in rows}) == 460
    for option in DeidOption:
        assert any(option in r.options for r in rows), option


def test_every_tag_names_the_standard_attribute() -> None:
    for row in load_profile_table():
        if "X" in row.tag[1:10] or "G" in row.tag:
            continue
        tag = parse_tag(row.tag)
        assert dictionary_has_tag(tag), row.tag
        expected = dictionary_description(tag).lower().replace("generationmode", "generation mode")
        assert row.name.lower() == expected, row.tag


@pytest.mark.parametrize(
    ("tag", "options", "code"),
    [
        ("(0010,0010)", set(), "Z"),
        ("(0020,000D)", set(), "U"),
        ("(0020,000D)", {DeidOption.RETAIN_UIDS}, "K"),
        ("(0008,0020)", {DeidOption.RETAIN_LONG_MODIFIED_DATES}, "C"),
        ("(0008,0020)", {DeidOption.RETAIN_LONG_FULL_DATES}, "K"),
        ("(0018,1000)", {DeidOption.RETAIN_DEVICE_IDENTITY}, "K"),
        ("(0008,0080)", {DeidOption.RETAIN_INSTITUTION_IDENTITY}, "K"),
        ("(0010,1010)", {DeidOption.RETAIN_PATIENT_CHARACTERISTICS}, "K"),
        ("(0008,1030)", {DeidOption.CLEAN_DESCRIPTORS}, "C"),
        ("(0040,A730)", {DeidOption.CLEAN_STRUCTURED_CONTENT}, "C"),
        ("(0070,0001)", {DeidOption.CLEAN_GRAPHICS}, "C"),
        ("(0008,1120)", {DeidOption.RETAIN_UIDS}, "X"),
        # two options on one attribute: the less restrictive wins
        (
            "(0010,2110)",
            {DeidOption.RETAIN_PATIENT_CHARACTERISTICS, DeidOption.CLEAN_DESCRIPTORS},
            "C",
        ),
        ("(0018,1002)", {DeidOption.RETAIN_DEVICE_IDENTITY}, "K"),
    ],
)
def test_resolve_code(tag: str, options: set[DeidOption], code: str) -> None:
    row = next(r for r in load_profile_table() if r.tag == tag)
    assert resolve_code(row, frozenset(options)) == code


@pytest.mark.parametrize(
    ("code", "attribute_type", "expected"),
    [
        ("X/Z", "3", Action.REMOVE),
        ("X/Z", "2", Action.EMPTY),
        ("X/D", "1", Action.DUMMY),
        ("X/D", "3", Action.REMOVE),
        ("Z/D", "2", Action.EMPTY),
        ("Z/D", "1", Action.DUMMY),
        ("X/Z/D", "1C", Action.DUMMY),
        ("X/Z/D", "2", Action.EMPTY),
        ("X/Z/D", "3", Action.REMOVE),
        ("X/Z/U*", "1", Action.KEEP),
        ("X/Z/U*", "3", Action.REMOVE),
        ("X/Z", None, Action.EMPTY),
        ("X/Z/D", None, Action.DUMMY),
        ("X/Z/U*", None, Action.KEEP),
        ("U", None, Action.REPLACE_UID),
    ],
)
def test_combined_codes(code: str, attribute_type: str | None, expected: Action) -> None:
    assert resolve_combined_action(code, attribute_type=attribute_type) is expected


def test_unknown_iod_sequence_is_removed_not_emptied() -> None:
    assert resolve_combined_action("X/Z", attribute_type=None, is_sequence=True) is Action.REMOVE


def test_attribute_types_come_from_the_iod() -> None:
    ct = find_attribute_types("1.2.840.10008.5.1.4.1.1.2")
    assert ct is not None
    assert ct[("ReferencedStudySequence",)] == "3"
    assert ct[("ContrastBolusAgent",)] == "2"
    assert ct[("ContentDate",)] == "2C"
    seg = find_attribute_types("1.2.840.10008.5.1.4.1.1.66.4")
    assert seg is not None
    path = ("PerFrameFunctionalGroupsSequence", "DerivationImageSequence", "SourceImageSequence")
    assert seg[path] == "2"
    assert find_attribute_types("1.2.3.4.private") is None


def test_action_table_special_rows() -> None:
    table = build_action_table(frozenset())
    assert table.private_action is Action.REMOVE
    assert table.overlay_data_action is Action.REMOVE
    safe = build_action_table(frozenset({DeidOption.RETAIN_SAFE_PRIVATE}))
    assert safe.private_action is Action.CLEAN


def test_shipped_iod_type_table_matches_highdicom() -> None:
    import json
    from importlib import resources

    from medseg.deid._iod import IOD_TYPES_RESOURCE, derive_iod_type_table

    shipped = json.loads(resources.files("medseg.deid").joinpath(IOD_TYPES_RESOURCE).read_text())
    assert shipped == derive_iod_type_table()
