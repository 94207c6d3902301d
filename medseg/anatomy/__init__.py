"""Anatomy: a coded vocabulary of structures and a locator that finds them in a new CT."""

from __future__ import annotations

from medseg.anatomy._locate import (
    Atlas,
    LocatedBox,
    LocatorConfig,
    locate_lungs,
    locate_structures,
    register_atlas,
)
from medseg.anatomy._vocabulary import (
    CT_LOCATOR,
    VOCABULARY,
    Concept,
    Vocabulary,
    infer_modality,
    normalize_text,
)

__all__ = [
    "CT_LOCATOR",
    "VOCABULARY",
    "Atlas",
    "Concept",
    "LocatedBox",
    "LocatorConfig",
    "Vocabulary",
    "infer_modality",
    "locate_lungs",
    "locate_structures",
    "normalize_text",
    "register_atlas",
]
