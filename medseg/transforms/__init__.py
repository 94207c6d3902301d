"""Transforms: intensity windows, slice orientation, dataset plans and MONAI chains.

The MONAI-backed names (``_chains``, ``_instances``) load on first use: ``import
monai.transforms`` costs 3-10 s, which commands that never touch a MONAI chain (``medseg
sam``, ``inspect``, exports) should not pay.
"""

from __future__ import annotations

import importlib
from typing import Any

from medseg.transforms._cases import (
    CaseArrays,
    instances_from_volume,
    label_to_classes,
    load_case,
    volume_to_case,
    volume_to_channels,
)
from medseg.transforms._intensity import (
    CTWindow,
    apply_window,
    equalize_adaptive_histogram,
    scale_percentiles,
)
from medseg.transforms._orientation import from_display_slice, to_display_slice
from medseg.transforms._plans import (
    CaseFingerprint,
    ChannelNormalization,
    ChannelStats,
    DatasetFingerprint,
    NormalizationScheme,
    Plans,
    compute_fingerprint,
    compute_layout,
    estimate_training_memory_gb,
    plan_from_fingerprint,
)
from medseg.transforms._targets import (
    BOUNDARY_CLASS,
    CORE_CLASS,
    INTERIOR_CLASS,
    TrainingTarget,
    target_label_names,
)

__all__ = [
    "BOUNDARY_CLASS",
    "CORE_CLASS",
    "INTERIOR_CLASS",
    "CTWindow",
    "CaseArrays",
    "CaseFingerprint",
    "ChannelNormalization",
    "ChannelStats",
    "DatasetFingerprint",
    "InstancesToBoundaryClassesd",
    "NormalizationScheme",
    "NormalizeChannelsd",
    "Plans",
    "ResampleToSpacingd",
    "TrainingTarget",
    "apply_window",
    "build_augmentation",
    "build_preprocessing",
    "compute_boundary_classes",
    "compute_contact_weights",
    "compute_fingerprint",
    "compute_layout",
    "compute_resampled_shape",
    "equalize_adaptive_histogram",
    "estimate_training_memory_gb",
    "from_display_slice",
    "instances_from_volume",
    "label_to_classes",
    "load_case",
    "plan_from_fingerprint",
    "resample_to_shape",
    "run_chain",
    "scale_percentiles",
    "target_label_names",
    "to_display_slice",
    "volume_to_case",
    "volume_to_channels",
]

#: Names whose modules import MONAI, loaded by :func:`__getattr__` on first access.
_LAZY = {
    "NormalizeChannelsd": "medseg.transforms._chains",
    "ResampleToSpacingd": "medseg.transforms._chains",
    "build_augmentation": "medseg.transforms._chains",
    "build_preprocessing": "medseg.transforms._chains",
    "compute_resampled_shape": "medseg.transforms._chains",
    "resample_to_shape": "medseg.transforms._chains",
    "run_chain": "medseg.transforms._chains",
    "InstancesToBoundaryClassesd": "medseg.transforms._instances",
    "compute_boundary_classes": "medseg.transforms._instances",
    "compute_contact_weights": "medseg.transforms._instances",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
