"""Structures to export: label value, name, colour and SNOMED CT codes.

The code map is a typed config (``configs/export/structure_codes.yaml``); its values are
keywords of pydicom's SNOMED CT dictionary (``pydicom.sr.codedict.codes.SCT``, generated
from DICOM Part 16), so a misspelt or invented code fails validation instead of reaching a
PACS.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from medseg.anatomy import Vocabulary
from medseg.core import ConfigError, ConfigModel, load_config, parse_config

logger = logging.getLogger(__name__)

#: Laterality modifiers allowed in the code map (SNOMED CT).
_LATERALITY = ("Left", "Right")


def _check_sct_keyword(keyword: str) -> str:
    try:
        getattr(codes.SCT, keyword)
    except AttributeError as err:
        raise ValueError(
            f"must be a keyword of pydicom's SNOMED CT dictionary (codes.SCT), not {keyword!r}"
        ) from err
    return keyword


class StructureCode(ConfigModel):
    """SNOMED CT category, type and optional laterality of one structure (codes.SCT keywords)."""

    category: str
    type: str
    modifier: str | None = None

    @field_validator("category", "type")
    @classmethod
    def _known(cls, value: str) -> str:
        return _check_sct_keyword(value)

    @field_validator("modifier")
    @classmethod
    def _laterality(cls, value: str | None) -> str | None:
        if value is not None and value not in _LATERALITY:
            raise ValueError(f"must be one of {', '.join(_LATERALITY)}, not {value!r}")
        return value

    @property
    def category_code(self) -> Code:
        """The category as a pydicom Code."""
        return getattr(codes.SCT, self.category)

    @property
    def type_code(self) -> Code:
        """The type as a pydicom Code."""
        return getattr(codes.SCT, self.type)

    @property
    def modifier_code(self) -> Code | None:
        """The laterality modifier as a pydicom Code, if any."""
        return getattr(codes.SCT, self.modifier) if self.modifier else None


class StructureCodeMap(ConfigModel):
    """Structure name → SNOMED CT codes: exact names, then glob patterns, then a default."""

    default: StructureCode = Field(
        default_factory=lambda: StructureCode(
            category="AnatomicalStructure", type="AnatomicalStructure"
        )
    )
    structures: dict[str, StructureCode] = Field(default_factory=dict)
    patterns: dict[str, StructureCode] = Field(default_factory=dict)

    def look_up(self, name: str) -> tuple[StructureCode, bool]:
        """Return the code for ``name`` and whether it was matched (False: the default)."""
        key = name.strip().lower()
        exact = {k.lower(): v for k, v in self.structures.items()}
        if key in exact:
            return exact[key], True
        for pattern, code in self.patterns.items():
            if fnmatch.fnmatchcase(key, pattern.lower()):
                return code, True
        return self.default, False


def _code_json(code: Code | None) -> dict[str, str] | None:
    if code is None:
        return None
    return {"value": code.value, "scheme": code.scheme_designator, "meaning": code.meaning}


def describe_labels(
    names: Mapping[int, str], *, code_map: StructureCodeMap | None = None
) -> list[dict[str, object]]:
    """Label sidecar entries (:func:`medseg.io.write_label_sidecar`) for label names.

    Each name gets its SNOMED CT codes from ``code_map`` (the names exports use), else from
    the anatomy vocabulary (exact names and synonyms, never fuzzy); a name known to neither
    gets null codes, never the generic default.

    Parameters
    ----------
    names
        Label value (> 0) → structure name.
    code_map
        The export code map (``configs/export/structure_codes.yaml``); None: vocabulary only.
    """
    vocabulary = Vocabulary()
    entries: list[dict[str, object]] = []
    for value in sorted(names):
        name = names[value]
        entry: dict[str, object] = {"label": int(value), "name": name}
        code, matched = code_map.look_up(name) if code_map is not None else (None, False)
        if matched and code is not None:
            entry.update(
                category=_code_json(code.category_code),
                type=_code_json(code.type_code),
                laterality=_code_json(code.modifier_code),
            )
        else:
            concept = vocabulary.find_exact(name)
            if concept is not None:
                codes_json = concept.to_json()
                entry.update({k: codes_json[k] for k in ("category", "type", "laterality")})
            else:
                entry.update(category=None, type=None, laterality=None)
        entries.append(entry)
    return entries


def structure_sidecar_entries(structures: Sequence[Structure]) -> list[dict[str, object]]:
    """Label sidecar entries (:func:`medseg.io.write_label_sidecar`) of exported structures;
    codes left null for a structure coded with the map's generic default."""
    entries: list[dict[str, object]] = []
    for structure in structures:
        code = structure.code if structure.code_matched else None
        entries.append(
            {
                "label": structure.label_value,
                "name": structure.name,
                "category": _code_json(code.category_code) if code else None,
                "type": _code_json(code.type_code) if code else None,
                "laterality": _code_json(code.modifier_code) if code else None,
            }
        )
    return entries


def _keyword_of(code: Mapping[str, object] | None) -> str | None:
    """codes.SCT keyword of a sidecar code (``{"value": "10200004", "scheme": "SCT"}``);
    of several keywords sharing a value, the one whose meaning the sidecar gives."""
    if not code or code.get("scheme") != "SCT":
        return None
    keywords = _sct_keywords().get(str(code.get("value")), [])
    meaning = str(code.get("meaning", "")).lower()
    for keyword in keywords:
        if getattr(codes.SCT, keyword).meaning.lower() == meaning:
            return keyword
    return keywords[0] if keywords else None


_SCT_BY_VALUE: dict[str, list[str]] = {}


def _sct_keywords() -> dict[str, list[str]]:
    if not _SCT_BY_VALUE:
        for keyword in codes.SCT.dir():
            _SCT_BY_VALUE.setdefault(getattr(codes.SCT, keyword).value, []).append(keyword)
    return _SCT_BY_VALUE


def structure_code_from_entry(entry: Mapping[str, object]) -> StructureCode | None:
    """The SNOMED CT codes of a label sidecar entry, or None when it has none (or codes
    outside pydicom's SNOMED CT dictionary)."""
    category = _keyword_of(entry.get("category"))  # type: ignore[arg-type]
    structure = _keyword_of(entry.get("type"))  # type: ignore[arg-type]
    if category is None or structure is None:
        return None
    side = _keyword_of(entry.get("laterality"))  # type: ignore[arg-type]
    return StructureCode(
        category=category,
        type=structure,
        modifier=side if side in _LATERALITY else None,
    )


def load_structure_codes(path: str | Path | None = None) -> StructureCodeMap:
    """Load a structure code map from YAML, or the built-in defaults when ``path`` is None."""
    if path is None:
        return parse_config(StructureCodeMap, {})
    return load_config(path, StructureCodeMap)


#: 3D Slicer's recommended display colours by SNOMED CT code (package data, see its header).
_SLICER_COLOURS = "slicer_colours.json"
#: matplotlib's tab20 entries that are grey: told apart badly on a grey image.
_TAB20_GREYS = (14, 15)


@functools.cache
def _slicer_colour_index() -> dict[tuple[str, str | None], tuple[int, int, int]]:
    """(type code, modifier code or None) → RGB, over every category, first entry winning.

    Slicer files the organs under the older "Anatomical Structure" category code
    (123037004) where pydicom's ``codes.SCT.AnatomicalStructure`` is 91723000, so the
    category is not part of the key.
    """
    data = json.loads(resources.files("medseg.export").joinpath(_SLICER_COLOURS).read_text())
    index: dict[tuple[str, str | None], tuple[int, int, int]] = {}
    for key, rgb in data["colours"].items():
        parts = key.split("/")
        modifier = parts[2] if len(parts) == 3 else None
        r, g, b = (int(c) for c in rgb)
        index.setdefault((parts[1], modifier), (r, g, b))
    return index


def recommended_colour(code: StructureCode) -> tuple[int, int, int] | None:
    """3D Slicer's recommended display colour (8-bit RGB) for a structure's codes, or None.

    Looked up by the SNOMED CT type and laterality, then by the type alone, so a liver is
    liver-coloured in medseg's overlays, SEG, RTSTRUCT and Slicer files as it is in Slicer.
    """
    index = _slicer_colour_index()
    modifier = code.modifier_code.value if code.modifier_code is not None else None
    type_value = code.type_code.value
    return index.get((type_value, modifier)) or index.get((type_value, None))


def _fallback_colours() -> list[tuple[int, int, int]]:
    """matplotlib's tab20 without its greys, dark shades first: for uncoded structures."""
    from matplotlib import colormaps

    colours = colormaps["tab20"].colors
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    return [
        tuple(round(255 * c) for c in colours[i][:3])  # type: ignore[misc]
        for i in order
        if i not in _TAB20_GREYS
    ]


@dataclass(frozen=True)
class Structure:
    """One exported structure.

    Attributes
    ----------
    label_value
        Its value in the label map (> 0).
    name
        Human-readable name (segment label / ROI name); never PHI.
    color_rgb
        Display colour, 8-bit RGB.
    code
        SNOMED CT category/type/laterality.
    code_matched
        False when ``code`` is the map's default because the name is not in the map.
    """

    label_value: int
    name: str
    color_rgb: tuple[int, int, int]
    code: StructureCode
    code_matched: bool = True


def build_structures(
    label_values: list[int] | np.ndarray,
    *,
    names: dict[int, str] | None = None,
    code_map: StructureCodeMap | None = None,
    warn_uncoded: bool = True,
    sidecar: Mapping[int, Mapping[str, object]] | None = None,
) -> list[Structure]:
    """Describe each label value: name from ``names`` (else ``label_<v>``), colour, codes.

    The colour is 3D Slicer's recommended one for the structure's SNOMED CT codes
    (:func:`recommended_colour`); structures Slicer has no colour for, or that are not in
    the code map, take matplotlib's tab20 colours in label order.

    Parameters
    ----------
    label_values
        Positive label values present in the mask, any order; returned sorted.
    names
        Label value → structure name (e.g. a dataset manifest's ``labels``).
    code_map
        SNOMED CT code map; the built-in default when None.
    warn_uncoded
        Log a warning naming the structures the code map does not know.
    sidecar
        The mask's label sidecar entries (:func:`medseg.io.read_label_sidecar`): names for
        values ``names`` lacks, and codes for names the code map does not know.
    """
    code_map = code_map or load_structure_codes()
    sidecar = sidecar or {}
    names = {**{v: str(e["name"]) for v, e in sidecar.items()}, **(names or {})}
    structures = []
    unmatched = []
    fallback = _fallback_colours()
    n_fallback = 0
    for value in sorted(int(v) for v in label_values):
        if value <= 0:
            raise ConfigError(f"label values must be > 0, not {value}")
        name = names.get(value, f"label_{value}")
        code, matched = code_map.look_up(name)
        if not matched and value in sidecar and str(sidecar[value]["name"]) == name:
            from_sidecar = structure_code_from_entry(sidecar[value])
            if from_sidecar is not None:
                code, matched = from_sidecar, True
        if not matched:
            unmatched.append(name)
        colour = recommended_colour(code) if matched else None
        if colour is None:
            colour = fallback[n_fallback % len(fallback)]
            n_fallback += 1
        structures.append(
            Structure(
                label_value=value,
                name=name,
                color_rgb=colour,
                code=code,
                code_matched=matched,
            )
        )
    if unmatched and warn_uncoded:
        logger.warning(
            "%d structure(s) not in the SNOMED CT code map, coded as the default %s: %s",
            len(unmatched),
            code_map.default.type,
            ", ".join(unmatched),
        )
    return structures
