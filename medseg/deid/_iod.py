"""Attribute types (1, 1C, 2, 2C, 3) per IOD, to resolve Table E.1-1's combined codes.

The module tables of PS3.3 come from highdicom, which ships them as JSON generated from the
standard; hand-writing them would be thousands of rows.
"""

from __future__ import annotations

import functools
import logging

logger = logging.getLogger(__name__)

_STRICTNESS = {"1": 0, "1C": 1, "2": 2, "2C": 3, "3": 4}


@functools.cache
def find_attribute_types(sop_class_uid: str) -> dict[tuple[str, ...], str] | None:
    """Return the strictest type of every attribute of the IOD of ``sop_class_uid``.

    Returns
    -------
    dict or None
        Keys are keyword paths: the keywords of the enclosing sequences, then the attribute's
        own (``("ReferencedStudySequence",)``, ``("RequestAttributesSequence",
        "RequestedProcedureID")``). Values are ``"1"``, ``"1C"``, ``"2"``, ``"2C"``, ``"3"``.
        None when the SOP class is not a standard one highdicom knows.
    """
    try:
        from highdicom._standard_utils import (
            get_iod_module_map,
            get_module_attribute_map,
            get_sop_class_iod_map,
        )
    except ImportError:  # pragma: no cover - highdicom is a dependency
        logger.warning("highdicom is missing; combined Table E.1-1 codes use safe defaults")
        return None
    iod = get_sop_class_iod_map().get(str(sop_class_uid))
    if iod is None:
        return None
    modules = get_module_attribute_map()
    types: dict[tuple[str, ...], str] = {}
    for module in get_iod_module_map().get(iod, []):
        for attribute in modules.get(module["key"], []):
            key = (*attribute["path"], attribute["keyword"])
            new = attribute["type"]
            old = types.get(key)
            if old is None or _STRICTNESS.get(new, 4) < _STRICTNESS.get(old, 4):
                types[key] = new
    return types
