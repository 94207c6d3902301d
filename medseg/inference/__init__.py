"""Inference: sliding-window segmentation from checkpoints, postprocessing, prompted SAM.

The SAM names (prompts, embeddings, 3D propagation, automatic mode) are imported on first
use (module ``__getattr__``), so ``import medseg.inference`` for the sliding-window engine
does not load medseg's SAM modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from medseg.inference._allocator import retain_freed_memory
from medseg.inference._fast_layers import FastInstanceNorm, SubPixelConvTranspose, prepare_network
from medseg.inference._instance_predict import is_instance_detector, predict_instances
from medseg.inference._instances import InstanceConfig, label_instances, resolve_instance_config
from medseg.inference._postprocess import LabelPostprocess, postprocess_labels
from medseg.inference._predict import (
    InferConfig,
    Prediction,
    predict_volume,
    predict_with_checkpoint,
    write_probabilities,
)
from medseg.inference._sliding_window import (
    ComputePrecision,
    SlidingWindowConfig,
    compute_window_starts,
    predict_sliding_window,
    resolve_precision,
    softmax_,
)
from medseg.inference._subregions import (
    SubregionResult,
    TumourSubregionConfig,
    split_tumour_subregions,
)

if TYPE_CHECKING:
    from medseg.inference._sam_3d import (
        PointStrategy,
        PropagationConfig,
        PropagationResult,
        SliceStack,
        box_from_mask,
        clip_box,
        predict_object,
        propagate_prompt,
        resolve_point_strategy,
    )
    from medseg.inference._sam_auto import AutoMaskConfig, generate_masks, segment_everything
    from medseg.inference._sam_predict import (
        ClickSearchConfig,
        ImageEmbedding,
        Precision,
        SamPrediction,
        SamPrompt,
        box_around_points,
        embed_image,
        mask_to_prompt_logits,
        predict_box_logits,
        predict_box_mask,
        predict_prompts,
        predict_with_box_growing,
        search_box_for_clicks,
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
    from medseg.inference._sam_text import (
        TextSegmentation,
        TextSegmentConfig,
        locate_concepts,
        prompts_from_boxes,
        segment_named_structures,
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

_LAZY_SAM_NAMES: dict[str, str] = {
    "AutoMaskConfig": "medseg.inference._sam_auto",
    "CasePrompts": "medseg.inference._sam_prompts",
    "ClickSearchConfig": "medseg.inference._sam_predict",
    "CoordinateSpace": "medseg.inference._sam_prompts",
    "DisplayVolume": "medseg.inference._sam_volume",
    "ImageEmbedding": "medseg.inference._sam_predict",
    "IntensityConfig": "medseg.inference._sam_preprocess",
    "IntensityMode": "medseg.inference._sam_preprocess",
    "ObjectPrompt": "medseg.inference._sam_prompts",
    "ObjectPromptSpec": "medseg.inference._sam_prompts",
    "PointStrategy": "medseg.inference._sam_3d",
    "Precision": "medseg.inference._sam_predict",
    "PromptFile": "medseg.inference._sam_prompts",
    "PropagationConfig": "medseg.inference._sam_3d",
    "PropagationResult": "medseg.inference._sam_3d",
    "SamPrediction": "medseg.inference._sam_predict",
    "SamPrompt": "medseg.inference._sam_predict",
    "SamSegmentConfig": "medseg.inference._sam_volume",
    "SliceStack": "medseg.inference._sam_3d",
    "TextSegmentConfig": "medseg.inference._sam_text",
    "TextSegmentation": "medseg.inference._sam_text",
    "locate_concepts": "medseg.inference._sam_text",
    "prompts_from_boxes": "medseg.inference._sam_text",
    "segment_named_structures": "medseg.inference._sam_text",
    "box_around_points": "medseg.inference._sam_predict",
    "box_from_mask": "medseg.inference._sam_3d",
    "clip_box": "medseg.inference._sam_3d",
    "build_slice_stack": "medseg.inference._sam_volume",
    "display_axis_codes": "medseg.inference._sam_volume",
    "embed_image": "medseg.inference._sam_predict",
    "generate_masks": "medseg.inference._sam_auto",
    "labels_to_file_grid": "medseg.inference._sam_volume",
    "load_prompt_file": "medseg.inference._sam_prompts",
    "mask_to_prompt_logits": "medseg.inference._sam_predict",
    "predict_box_logits": "medseg.inference._sam_predict",
    "predict_box_mask": "medseg.inference._sam_predict",
    "predict_object": "medseg.inference._sam_3d",
    "predict_prompts": "medseg.inference._sam_predict",
    "predict_with_box_growing": "medseg.inference._sam_predict",
    "propagate_prompt": "medseg.inference._sam_3d",
    "resolve_intensity_mode": "medseg.inference._sam_preprocess",
    "resolve_object_prompts": "medseg.inference._sam_prompts",
    "resolve_point_strategy": "medseg.inference._sam_3d",
    "scale_intensity": "medseg.inference._sam_preprocess",
    "search_box_for_clicks": "medseg.inference._sam_predict",
    "segment_automatically": "medseg.inference._sam_volume",
    "segment_everything": "medseg.inference._sam_auto",
    "segment_with_prompts": "medseg.inference._sam_volume",
    "to_display_volume": "medseg.inference._sam_volume",
    "upsample_logits": "medseg.inference._sam_predict",
}

__all__ = [
    "AutoMaskConfig",
    "CasePrompts",
    "ClickSearchConfig",
    "ComputePrecision",
    "CoordinateSpace",
    "DisplayVolume",
    "FastInstanceNorm",
    "ImageEmbedding",
    "InferConfig",
    "InstanceConfig",
    "IntensityConfig",
    "IntensityMode",
    "LabelPostprocess",
    "ObjectPrompt",
    "ObjectPromptSpec",
    "PointStrategy",
    "Precision",
    "Prediction",
    "PromptFile",
    "PropagationConfig",
    "PropagationResult",
    "SamPrediction",
    "SamPrompt",
    "SamSegmentConfig",
    "SliceStack",
    "SlidingWindowConfig",
    "SubPixelConvTranspose",
    "SubregionResult",
    "TextSegmentConfig",
    "TextSegmentation",
    "TumourSubregionConfig",
    "box_around_points",
    "box_from_mask",
    "build_slice_stack",
    "clip_box",
    "compute_window_starts",
    "display_axis_codes",
    "embed_image",
    "generate_masks",
    "is_instance_detector",
    "label_instances",
    "labels_to_file_grid",
    "load_prompt_file",
    "locate_concepts",
    "mask_to_prompt_logits",
    "postprocess_labels",
    "predict_box_logits",
    "predict_box_mask",
    "predict_instances",
    "predict_object",
    "predict_prompts",
    "predict_sliding_window",
    "predict_volume",
    "predict_with_box_growing",
    "predict_with_checkpoint",
    "prepare_network",
    "prompts_from_boxes",
    "propagate_prompt",
    "resolve_instance_config",
    "resolve_intensity_mode",
    "resolve_object_prompts",
    "resolve_point_strategy",
    "resolve_precision",
    "retain_freed_memory",
    "scale_intensity",
    "search_box_for_clicks",
    "segment_automatically",
    "segment_everything",
    "segment_named_structures",
    "segment_with_prompts",
    "softmax_",
    "split_tumour_subregions",
    "to_display_volume",
    "upsample_logits",
    "write_probabilities",
]


def __getattr__(name: str) -> Any:
    module = _LAZY_SAM_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
