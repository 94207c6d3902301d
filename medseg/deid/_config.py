"""Typed de-identification profiles and pixel-cleaning rules (validated pydantic models).

A profile switches PS3.15 Annex E options on, adds per-tag overrides, lists safe private
attributes and bounds the date shift. Profiles live in ``configs/deid/*.yaml``; the CLI reads
the YAML, this module only validates it.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator
from pydicom.datadict import tag_for_keyword

from medseg.core import ConfigModel
from medseg.deid._table import Action, DeidOption, parse_tag

_TAG_TEXT = re.compile(r"^\(?[0-9A-Fa-f]{4},?[0-9A-Fa-f]{4}\)?$")


def resolve_tag_name(name: str) -> int:
    """Return the tag for a DICOM keyword (``StudyDescription``) or a tag text (``(0008,1030)``).

    Raises
    ------
    ValueError
        If ``name`` is neither (pydantic turns it into a ConfigError with the key path).
    """
    keyword_tag = tag_for_keyword(name)
    if keyword_tag is not None:
        return int(keyword_tag)
    if _TAG_TEXT.match(name.replace(" ", "")):
        return parse_tag(name)
    raise ValueError(f"{name!r} is neither a DICOM keyword nor a tag like (0008,1030)")


class SafePrivateAttribute(ConfigModel):
    """One private attribute kept under the Retain Safe Private option (PS3.15 E.3.10).

    A private tag is matched by its group, its private creator and its element offset within
    the creator's block (the low byte of the element number).
    """

    group: str = Field(description="odd group, 4 hex digits, e.g. '0019'")
    creator: str = Field(min_length=1, description="Private Creator value, e.g. 'GEMS_ACQU_01'")
    element: str = Field(description="element offset in the block, 2 hex digits, e.g. '10'")

    @field_validator("group")
    @classmethod
    def _odd_group(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9A-Fa-f]{4}", value) or int(value, 16) % 2 == 0:
            raise ValueError(f"must be an odd group of 4 hex digits, not {value!r}")
        return value.upper()

    @field_validator("element")
    @classmethod
    def _offset(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", value):
            raise ValueError(f"must be 2 hex digits (the offset within the block), not {value!r}")
        return value.upper()


class DateShift(ConfigModel):
    """Bounds of the per-patient keyed date offset, in days (both ends included)."""

    min_days: int = -3652
    max_days: int = -366

    @model_validator(mode="after")
    def _ordered(self) -> DateShift:
        if self.min_days > self.max_days:
            raise ValueError("min_days must not exceed max_days")
        if self.min_days <= 0 <= self.max_days:
            raise ValueError("the range must exclude 0 so that every date moves")
        return self


class DeidConfig(ConfigModel):
    """A de-identification profile: Annex E options, overrides and engine settings."""

    description: str = ""
    options: tuple[DeidOption, ...] = ()
    overrides: dict[str, Action] = Field(
        default_factory=dict,
        description="per-tag action (K, X, Z, D, C, U) by keyword or tag, applied before the table",
    )
    safe_private: tuple[SafePrivateAttribute, ...] = ()
    date_shift: DateShift = DateShift()
    harden_unlisted: bool = Field(
        default=True,
        description="also treat attributes Table E.1-1 does not list: every person name gets a "
        "dummy, every date the date rule, every non-registry UID is replaced",
    )

    @field_validator("overrides")
    @classmethod
    def _known_tags(cls, value: dict[str, Action]) -> dict[str, Action]:
        for name in value:
            resolve_tag_name(name)
        return value

    @model_validator(mode="after")
    def _compatible(self) -> DeidConfig:
        opts = set(self.options)
        if {DeidOption.RETAIN_LONG_FULL_DATES, DeidOption.RETAIN_LONG_MODIFIED_DATES} <= opts:
            raise ValueError(
                "retain_long_full_dates and retain_long_modified_dates exclude each other; keep one"
            )
        return self

    def override_tags(self) -> dict[int, Action]:
        """The overrides keyed by integer tag."""
        return {resolve_tag_name(name): action for name, action in self.overrides.items()}


class PixelRegion(ConfigModel):
    """A rectangle to blank, in pixels: columns ``x .. x+width-1``, rows ``y .. y+height-1``."""

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class PixelRule(ConfigModel):
    """Where burned-in text sits for one kind of device (like CTP's DicomPixelAnonymizer).

    A rule matches a file when every given criterion matches: ``manufacturer`` and ``model``
    are case-insensitive regular expressions searched in Manufacturer and
    ManufacturerModelName; ``rows``/``columns`` must equal the image size; ``modality`` must
    equal Modality.
    """

    name: str = Field(min_length=1)
    manufacturer: str | None = None
    model: str | None = None
    modality: str | None = None
    rows: int | None = Field(default=None, gt=0)
    columns: int | None = Field(default=None, gt=0)
    regions: tuple[PixelRegion, ...] = Field(min_length=1)

    @field_validator("manufacturer", "model")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as err:
                raise ValueError(f"not a valid regular expression: {err}") from err
        return value


class PixelRules(ConfigModel):
    """The ``--clean-pixels`` rules file."""

    rules: tuple[PixelRule, ...] = Field(min_length=1)
