"""Attribute types (1, 1C, 2, 2C, 3) per IOD, to resolve Table E.1-1's combined codes.

The PS3.3 module tables come from highdicom, which ships them as JSON generated from the
standard. Loading all of them costs about a second, so the package carries a derived table,
``iod_attribute_types.json``: for every IOD, the type of each attribute (at any sequence
depth) whose Table E.1-1 code is combined (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``),
and the SOP Class → IOD map. :func:`derive_iod_type_table` rebuilds it from highdicom; a test
checks that the shipped file equals the derivation.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from pydicom.datadict import keyword_for_tag

from medseg.deid._table import COMBINED_CODES, load_profile_table, parse_tag

IOD_TYPES_RESOURCE = "iod_attribute_types.json"
_STRICTNESS = {"1": 0, "1C": 1, "2": 2, "2C": 3, "3": 4}
_TYPE_CODE = {"1": "1", "1C": "a", "2": "2", "2C": "b", "3": "3"}
_CODE_TYPE = {code: name for name, code in _TYPE_CODE.items()}


def _combined_keywords() -> set[str]:
    keywords = set()
    for row in load_profile_table():
        codes = {row.basic, *row.options.values()}
        if codes & COMBINED_CODES and "X" not in row.tag[1:10] and "G" not in row.tag:
            keywords.add(keyword_for_tag(parse_tag(row.tag)))
    return keywords


def derive_iod_type_table() -> dict[str, Any]:
    """Build the table from highdicom's copy of the PS3.3 module tables.

    Returns
    -------
    dict
        ``{"keys": [...], "sop_class_iod": {uid: iod}, "iod_types": {iod: codes}}``: ``keys``
        are keyword paths joined by ``/``; ``codes`` has one character per key, the strictest
        type over the IOD's modules (``1``, ``a`` = 1C, ``2``, ``b`` = 2C, ``3``; ``-``: the
        attribute is not in the IOD at that path).
    """
    from highdicom._standard_utils import (
        get_iod_module_map,
        get_module_attribute_map,
        get_sop_class_iod_map,
    )

    wanted = _combined_keywords()
    modules = get_module_attribute_map()
    iod_types: dict[str, dict[str, str]] = {}
    for iod, iod_modules in sorted(get_iod_module_map().items()):
        types: dict[str, str] = {}
        for module in iod_modules:
            for attribute in modules.get(module["key"], []):
                if attribute["keyword"] not in wanted:
                    continue
                key = "/".join([*attribute["path"], attribute["keyword"]])
                new, old = attribute["type"], types.get(key)
                if old is None or _STRICTNESS.get(new, 4) < _STRICTNESS.get(old, 4):
                    types[key] = new
        iod_types[iod] = types
    keys = sorted({key for types in iod_types.values() for key in types})
    encoded = {
        iod: "".join(_TYPE_CODE.get(types.get(key, ""), "-") for key in keys)
        for iod, types in iod_types.items()
    }
    return {
        "keys": keys,
        "sop_class_iod": dict(sorted(get_sop_class_iod_map().items())),
        "iod_types": encoded,
    }


@functools.cache
def _load_table() -> dict[str, Any]:
    text = resources.files("medseg.deid").joinpath(IOD_TYPES_RESOURCE).read_text("utf-8")
    return json.loads(text)


@functools.cache
def find_attribute_types(sop_class_uid: str) -> dict[tuple[str, ...], str] | None:
    """Return the strictest type of each combined-code attribute in the IOD of a SOP class.

    Returns
    -------
    dict or None
        Keys are keyword paths: the keywords of the enclosing sequences, then the attribute's
        own (``("ReferencedStudySequence",)``). Values are ``"1"``, ``"1C"``, ``"2"``,
        ``"2C"``, ``"3"``. None when the SOP class is not a standard one.
    """
    table = _load_table()
    iod = table["sop_class_iod"].get(str(sop_class_uid))
    if iod is None:
        return None
    codes = table["iod_types"][iod]
    return {
        tuple(key.split("/")): _CODE_TYPE[code]
        for key, code in zip(table["keys"], codes, strict=True)
        if code != "-"
    }
