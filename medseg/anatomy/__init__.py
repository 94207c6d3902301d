"""Anatomy: a coded vocabulary of structures and a locator that finds them in a new CT."""

from __future__ import annotations

from medseg.anatomy._locate import (
    Atlas,
    LocatedBox,
    LocatorConfig,
    load_atlas,
    locate_lungs,
    locate_structures,
    register_atlas,
)
from medseg.anatomy._vocabulary import (
    CT_LOCATOR,
    MODALITIES_2D,
    VOCABULARY,
    Concept,
    Vocabulary,
    image_modalities,
    infer_modality,
    normalize_modality,
    normalize_text,
    split_names,
)

__all__ = [
    "CT_LOCATOR",
    "MODALITIES_2D",
    "VOCABULARY",
    "Atlas",
    "Concept",
    "LocatedBox",
    "LocatorConfig",
    "Vocabulary",
    "image_modalities",
    "infer_modality",
    "load_atlas",
    "locate_lungs",
    "locate_structures",
    "normalize_modality",
    "normalize_text",
    "register_atlas",
    "split_names",
]
