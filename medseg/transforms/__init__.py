"""Transforms: intensity windows, slice orientation, dataset plans and MONAI chains."""

from __future__ import annotations

from medseg.transforms._cases import (
    CaseArrays,
    instances_from_volume,
    label_to_classes,
    load_case,
    volume_to_case,
    volume_to_channels,
)
from medseg.transforms._chains import (
    NormalizeChannelsd,
    ResampleToSpacingd,
    build_augmentation,
    build_preprocessing,
    compute_resampled_shape,
    resample_to_shape,
    run_chain,
)
from medseg.transforms._instances import (
    BOUNDARY_CLASS,
    INTERIOR_CLASS,
    InstancesToBoundaryClassesd,
    TrainingTarget,
    compute_boundary_classes,
    target_label_names,
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

__all__ = [
    "BOUNDARY_CLASS",
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
