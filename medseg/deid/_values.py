"""Value-level replacements: dummies per VR, date shifting and free-text cleaning."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

DUMMY_TEXT = "REMOVED"
DUMMY_PERSON_NAME = "ANONYMOUS"
DUMMY_DATE = "19000101"
DUMMY_TIME = "000000"
DUMMY_DATETIME = "19000101000000"
DUMMY_AGE = "000D"

DUMMY_VALUES = frozenset(
    {DUMMY_TEXT, DUMMY_PERSON_NAME, DUMMY_DATE, DUMMY_TIME, DUMMY_DATETIME, DUMMY_AGE}
)
"""Every dummy value medseg writes (the leak check ignores originals equal to one)."""

TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "AE", "UR"})
NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "IS", "DS"})
BYTES_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})

_DATE8 = re.compile(r"^\d{8}$")


def make_dummy(vr: str) -> object:
    """Return a non-empty dummy value valid for ``vr`` (PS3.15 action D).

    Returns
    -------
    object
        A string for text, date and time VRs, ``0`` for numbers, two zero bytes for binary
        VRs, ``None`` (zero length) where no dummy makes sense (``AT``).
    """
    if vr == "PN":
        return DUMMY_PERSON_NAME
    if vr == "DA":
        return DUMMY_DATE
    if vr == "TM":
        return DUMMY_TIME
    if vr == "DT":
        return DUMMY_DATETIME
    if vr == "AS":
        return DUMMY_AGE
    if vr == "CS":
        return DUMMY_TEXT
    if vr in TEXT_VRS:
        return DUMMY_TEXT if vr != "UR" else None
    if vr in NUMBER_VRS:
        return 0
    if vr in BYTES_VRS:
        return b"\x00\x00"
    return None


def _shift_date8(value: str, offset_days: int) -> str | None:
    if not _DATE8.match(value):
        return None
    try:
        day = dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        return (day + dt.timedelta(days=offset_days)).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return None


def shift_date(value: str, offset_days: int) -> str:
    """Shift a DA value (``YYYYMMDD`` or a ``A-B`` range) by ``offset_days``.

    Partial or malformed dates cannot be shifted exactly and become the dummy date.
    """
    text = value.strip()
    if "-" in text:
        parts = [_shift_date8(p, offset_days) if p else "" for p in text.split("-", 1)]
        if all(p is not None for p in parts) and any(parts):
            return "-".join(p or "" for p in parts)
        return DUMMY_DATE
    return _shift_date8(text, offset_days) or DUMMY_DATE


def shift_datetime(value: str, offset_days: int) -> str:
    """Shift the date part of a DT value (``YYYYMMDDHHMMSS.FFFFFF&ZZXX``); keep the time."""
    text = value.strip()
    if "-" in text[8:] and not re.search(r"[+-]\d{4}$", text):
        # a range A-B
        head, tail = text.split("-", 1)
        return f"{shift_datetime(head, offset_days) if head else ''}-" + (
            shift_datetime(tail, offset_days) if tail else ""
        )
    shifted = _shift_date8(text[:8], offset_days)
    if shifted is None:
        return DUMMY_DATETIME
    return shifted + text[8:]


_DATE_LIKE = re.compile(r"\b(?:19|20)\d{2}[-./]?(?:0[1-9]|1[0-2])[-./]?(?:0[1-9]|[12]\d|3[01])\b")
_DMY_LIKE = re.compile(r"\b(?:0?[1-9]|[12]\d|3[01])[-./](?:0?[1-9]|1[0-2])[-./](?:19|20)?\d{2}\b")
_LONG_NUMBER = re.compile(r"\b\d{6,}\b")


def collect_text_tokens(values: Iterable[str]) -> list[str]:
    """Split identifying values into the tokens free text is cleaned of.

    Person names split on ``^``, ``=`` and spaces; tokens shorter than 2 characters are
    dropped (initials would erase ordinary words).
    """
    tokens: set[str] = set()
    for value in values:
        text = value.strip()
        if len(text) >= 2:
            tokens.add(text)
        for part in re.split(r"[\^=\s,]+", text):
            if len(part) >= 2:
                tokens.add(part)
        if _DATE8.match(text):
            tokens.update(
                {f"{text[:4]}-{text[4:6]}-{text[6:]}", f"{text[6:]}.{text[4:6]}.{text[:4]}"}
            )
            tokens.update(
                {f"{text[4:6]}/{text[6:]}/{text[:4]}", f"{text[6:]}/{text[4:6]}/{text[:4]}"}
            )
    return sorted(tokens, key=len, reverse=True)


def compile_cleaner(tokens: list[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching any token as a whole word."""
    if not tokens:
        return None
    alternatives = "|".join(re.escape(t) for t in tokens)
    return re.compile(rf"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])", re.IGNORECASE)


def clean_text(text: str, pattern: re.Pattern[str] | None) -> str:
    """Remove the file's identifying tokens, date-like strings and numbers of 6+ digits.

    This is the PS3.15 "C" action for descriptors as medseg implements it: a deterministic
    scrub of the values the same file identifies its patient, staff and site with, plus
    patterns that look like dates or record numbers. It is not free-text NLP: a name that
    occurs in a description but nowhere in the file's own attributes is not found.
    """
    cleaned = text
    if pattern is not None:
        cleaned = pattern.sub("", cleaned)
    cleaned = _DATE_LIKE.sub("", cleaned)
    cleaned = _DMY_LIKE.sub("", cleaned)
    cleaned = _LONG_NUMBER.sub("", cleaned)
    return re.sub(r"\s{2,}", " ", cleaned).strip()
