"""PS3.15 Annex E Table E.1-1 as data: actions per attribute for the Basic Profile and options.

The table itself lives in ``ps3_15_table_e1_1.csv`` beside this module (loaded with
:mod:`importlib.resources`) so that it can be reviewed, diffed and updated without touching
code. Each row gives the Basic Profile action and, per option column, the action that
replaces it when that option is switched on.

Action codes (PS3.15 Table E.1-1 legend)
----------------------------------------
``D``  replace with a non-zero length dummy value consistent with the VR;
``Z``  replace with a zero-length value (or a dummy consistent with the VR);
``X``  remove; ``K`` keep (sequences: keep and apply the profile to their items);
``C``  clean: keep the value with identifying information removed or replaced;
``U``  replace UIDs with consistent non-identifying UIDs.
Combined codes (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) mean "the first unless the
IOD needs the later one"; medseg has no per-IOD attribute types at hand, so it resolves them to
the choice that keeps every IOD valid (see :func:`resolve_combined_action`).
"""

from __future__ import annotations

import csv
import enum
import functools
import io
from dataclasses import dataclass
from importlib import resources

from medseg.core import DeidError

TABLE_RESOURCE = "ps3_15_table_e1_1.csv"
STANDARD_EDITION = (
    "DICOM PS3.15 Annex E Table E.1-1, 460 rows as extracted from the NEMA HTML by "
    "innolitics/dicom-standard (rows up to the 2021-2022 editions)"
)


class Action(str, enum.Enum):
    """Resolved action applied to one data element."""

    KEEP = "K"
    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    CLEAN = "C"
    REPLACE_UID = "U"


class DeidOption(str, enum.Enum):
    """The PS3.15 Annex E options (Table E.1-1 columns), named as in the CSV header."""

    RETAIN_SAFE_PRIVATE = "retain_safe_private"
    RETAIN_UIDS = "retain_uids"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_LONG_FULL_DATES = "retain_long_full_dates"
    RETAIN_LONG_MODIFIED_DATES = "retain_long_modified_dates"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_GRAPHICS = "clean_graphics"


@dataclass(frozen=True)
class TableRow:
    """One row of Table E.1-1.

    Attributes
    ----------
    tag
        The tag as printed in the standard, e.g. ``"(0010,0010)"``, ``"(50XX,XXXX)"``.
    name
        The attribute name.
    in_std_comp_iod
        Whether the attribute is used in a standard composite IOD (``Y``/``N`` column).
    basic
        Basic Profile action code, possibly combined (``"X/Z/D"``).
    options
        Action code per option whose column is not empty.
    """

    tag: str
    name: str
    in_std_comp_iod: bool
    basic: str
    options: dict[DeidOption, str]


_VALID_CODES = {"D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}


@functools.cache
def load_profile_table() -> tuple[TableRow, ...]:
    """Read Table E.1-1 from the package resource.

    Returns
    -------
    tuple of TableRow
        In the standard's (alphabetical by name) order.

    Raises
    ------
    DeidError
        If the resource is missing a column or holds an unknown action code.
    """
    text = resources.files("medseg.deid").joinpath(TABLE_RESOURCE).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    expected = {"tag", "name", "in_std_comp_iod", "basic_profile"} | {o.value for o in DeidOption}
    if set(reader.fieldnames or ()) != expected:
        raise DeidError(
            f"{TABLE_RESOURCE} must have the columns {sorted(expected)}, "
            f"not {reader.fieldnames}; restore the file from the package"
        )
    rows = []
    for record in reader:
        codes = [record["basic_profile"]] + [record[o.value] for o in DeidOption]
        bad = [c for c in codes if c and c not in _VALID_CODES]
        if bad:
            raise DeidError(f"{TABLE_RESOURCE}: unknown action code(s) {bad} for {record['tag']}")
        rows.append(
            TableRow(
                tag=record["tag"],
                name=record["name"],
                in_std_comp_iod=record["in_std_comp_iod"] == "Y",
                basic=record["basic_profile"],
                options={o: record[o.value] for o in DeidOption if record[o.value]},
            )
        )
    return tuple(rows)


def parse_tag(text: str) -> int:
    """Return the integer tag of ``"(gggg,eeee)"`` or ``"ggggeeee"`` (hex).

    Raises
    ------
    DeidError
        If ``text`` is not a tag.
    """
    cleaned = text.strip().strip("()").replace(",", "").replace(" ", "")
    if len(cleaned) != 8:
        raise DeidError(f"a tag must look like (0010,0010) or 00100010, not {text!r}")
    try:
        return int(cleaned, 16)
    except ValueError as err:
        raise DeidError(f"a tag must be hexadecimal like (0010,0010), not {text!r}") from err


COMBINED_CODES = frozenset({"X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"})


def resolve_combined_action(
    code: str, *, attribute_type: str | None, is_sequence: bool = False
) -> Action:
    """Turn a (possibly combined) table code into the one action medseg applies.

    A combined code means "the first action unless the IOD needs a later one" (PS3.15 E.1-1
    legend), decided by the attribute's type in the file's IOD (from highdicom's copy of the
    standard's module tables, see :func:`medseg.deid.find_attribute_types`).

    Parameters
    ----------
    code
        ``K``, ``X``, ``Z``, ``D``, ``C``, ``U`` or a combined code.
    attribute_type
        ``"1"``, ``"1C"``, ``"2"``, ``"2C"``, ``"3"``, or None when the IOD is unknown.
    is_sequence
        Whether the attribute is a sequence (an empty Type 3 sequence is invalid, so an
        unknown-IOD ``X/Z`` sequence is removed rather than emptied).

    Notes
    -----
    Type 1/1C → D (``X/Z/U*``: keep the sequence, its UIDs replaced); Type 2/2C → Z (``X/D``:
    D; ``X/Z/U*``: U as well, because an emptied Source Image Sequence breaks the Common
    Instance Reference module that lists the same instances); Type 3 or not in the IOD → X
    (``Z/D``: Z). With an unknown IOD the choice that keeps
    any IOD valid is taken: ``X/Z`` → Z (X for sequences), ``X/D``, ``Z/D``, ``X/Z/D`` → D,
    ``X/Z/U*`` → keep with UIDs replaced.
    """
    if code not in COMBINED_CODES:
        return Action(code)
    if attribute_type is None:
        if code == "X/Z":
            return Action.REMOVE if is_sequence else Action.EMPTY
        if code == "X/Z/U*":
            return Action.KEEP
        return Action.DUMMY
    required = attribute_type in ("1", "1C")
    type2 = attribute_type in ("2", "2C")
    if code == "X/Z/U*":
        return Action.KEEP if required or type2 else Action.REMOVE
    if code == "Z/D":
        return Action.DUMMY if required else Action.EMPTY
    if code == "X/D":
        return Action.DUMMY if required or type2 else Action.REMOVE
    if code == "X/Z":
        return Action.DUMMY if required else Action.EMPTY if type2 else Action.REMOVE
    return Action.DUMMY if required else Action.EMPTY if type2 else Action.REMOVE  # X/Z/D


@dataclass(frozen=True)
class ActionTable:
    """Actions per tag for one set of options, with the repeating-group rows.

    Attributes
    ----------
    by_tag
        Action per exact tag, or the combined code when it depends on the IOD.
    curve_action, overlay_data_action, overlay_comments_action
        Actions for the repeating groups 50xx (curves), 60xx3000 and 60xx4000.
    private_action
        Action for private attributes (odd groups): X, or C with Retain Safe Private.
    """

    by_tag: dict[int, Action | str]
    curve_action: Action
    overlay_data_action: Action
    overlay_comments_action: Action
    private_action: Action


def resolve_code(row: TableRow, options: frozenset[DeidOption]) -> str:
    """Return the table code for ``row`` under ``options``.

    When several enabled options give a code for the same attribute the least restrictive one
    wins (K over C over X): each option promises to retain its kind of information.
    """
    codes = [row.options[o] for o in options if o in row.options]
    for preferred in ("K", "C", "X"):
        if preferred in codes:
            return preferred
    return row.basic


def build_action_table(options: frozenset[DeidOption]) -> ActionTable:
    """Resolve every Table E.1-1 row for ``options`` into one action per tag."""
    by_tag: dict[int, Action | str] = {}
    special: dict[str, Action] = {}
    for row in load_profile_table():
        code = resolve_code(row, options)
        if "X" in row.tag[1:10] or "G" in row.tag:
            special[row.tag] = Action(code)
        else:
            by_tag[parse_tag(row.tag)] = code if code in COMBINED_CODES else Action(code)
    return ActionTable(
        by_tag=by_tag,
        curve_action=special["(50XX,XXXX)"],
        overlay_data_action=special["(60XX,3000)"],
        overlay_comments_action=special["(60XX,4000)"],
        private_action=special["(GGGG,EEEE)"],
    )
