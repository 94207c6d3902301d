"""Inference: prompted SAM prediction (sliding-window U-Net inference comes here too)."""

from __future__ import annotations

from medseg.inference._sam_3d import (
    PropagationConfig,
    PropagationResult,
    SliceStack,
    box_from_mask,
    propagate_prompt,
)
from medseg.inference._sam_auto import AutoMaskConfig, generate_masks, segment_everything
from medseg.inference._sam_predict import (
    ImageEmbedding,
    Precision,
    SamPrediction,
    SamPrompt,
    embed_image,
    mask_to_prompt_logits,
    predict_box_logits,
    predict_box_mask,
    predict_prompts,
    upsample_logits,
)
from medseg.inference._sam_preprocess import (
    IntensityConfig,
    IntensityMode,
    resolve_intensity_mode,
    scale_intensity,
)
from medseg.inference._sam_prompts import (
    CasePrompts,
    CoordinateSpace,
    ObjectPrompt,
    ObjectPromptSpec,
    PromptFile,
    load_prompt_file,
    resolve_object_prompts,
)
from medseg.inference._sam_volume import (
    DisplayVolume,
    SamSegmentConfig,
    build_slice_stack,
    display_axis_codes,
    labels_to_file_grid,
    segment_automatically,
    segment_with_prompts,
    to_display_volume,
)

__all__ = [
    "AutoMaskConfig",
    "CasePrompts",
    "CoordinateSpace",
    "DisplayVolume",
    "ImageEmbedding",
    "IntensityConfig",
    "IntensityMode",
    "ObjectPrompt",
    "ObjectPromptSpec",
    "Precision",
    "PromptFile",
    "PropagationConfig",
    "PropagationResult",
    "SamPrediction",
    "SamPrompt",
    "SamSegmentConfig",
    "SliceStack",
    "box_from_mask",
    "build_slice_stack",
    "display_axis_codes",
    "embed_image",
    "generate_masks",
    "labels_to_file_grid",
    "load_prompt_file",
    "mask_to_prompt_logits",
    "predict_box_logits",
    "predict_box_mask",
    "predict_prompts",
    "propagate_prompt",
    "resolve_intensity_mode",
    "resolve_object_prompts",
    "scale_intensity",
    "segment_automatically",
    "segment_everything",
    "segment_with_prompts",
    "to_display_volume",
    "upsample_logits",
]
