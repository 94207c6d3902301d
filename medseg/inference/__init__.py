"""Inference: sliding-window segmentation from checkpoints, postprocessing, prompted SAM.

The SAM names (prompts, embeddings, 3D propagation, automatic mode) are imported on first
use (module ``__getattr__``), so ``import medseg.inference`` for the sliding-window engine
does not load medseg's SAM modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from medseg.inference._allocator import retain_freed_memory
from medseg.inference._channels_predict import (
    decide_nested_regions,
    keep_foreground_components,
    keep_largest_foreground,
    parse_channel_arguments,
    predict_channel_volume,
    predict_channels,
)
from medseg.inference._fast_layers import FastInstanceNorm, SubPixelConvTranspose, prepare_network
from medseg.inference._instance_predict import is_instance_detector, predict_instances
from medseg.inference._instances import (
    InstanceConfig,
    choose_instance_zoom,
    is_stained_image,
    label_instances,
    resolve_instance_config,
    select_instance_config,
    split_merged_seeds,
)
from medseg.inference._postprocess import LabelPostprocess, postprocess_labels
from medseg.inference._predict import (
    predict_volume,
    predict_with_checkpoint,
    relabel_instances,
    resolve_infer_config,
    write_probabilities,
    zoom_image,
)
from medseg.inference._sliding_window import (
    ComputePrecision,
    SlidingWindowConfig,
    compute_window_starts,
    predict_sliding_window,
    predict_sliding_window_with_disagreement,
    softmax_,
)
from medseg.inference._subregions import (
    SubregionResult,
    TumourSubregionConfig,
    split_tumour_subregions,
)
from medseg.inference._types import InferConfig, NestedRegion, Prediction
from medseg.models import resolve_precision

if TYPE_CHECKING:
    from medseg.sam._auto import AutoMaskConfig, generate_masks, segment_everything
    from medseg.sam._clicks import ClickSearchConfig, box_around_points, search_box_for_clicks
    from medseg.sam._predict import (
        ImageEmbedding,
        Precision,
        SamPrediction,
        SamPrompt,
        embed_image,
        mask_to_prompt_logits,
        predict_box_logits,
        predict_box_mask,
        predict_prompts,
        predict_with_box_growing,
        upsample_logits,
    )
    from medseg.sam._preprocess import (
        IntensityConfig,
        IntensityMode,
        looks_like_hu,
        resolve_intensity_mode,
        scale_intensity,
    )
    from medseg.sam._prompts import (
        CasePrompts,
        CoordinateSpace,
        ObjectPrompt,
        ObjectPromptSpec,
        PromptFile,
        load_prompt_file,
        resolve_object_prompts,
    )
    from medseg.sam._propagate import (
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
    from medseg.sam._volume import (
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
    "AutoMaskConfig": "medseg.sam._auto",
    "CasePrompts": "medseg.sam._prompts",
    "ClickSearchConfig": "medseg.sam._clicks",
    "CoordinateSpace": "medseg.sam._prompts",
    "DisplayVolume": "medseg.sam._volume",
    "ImageEmbedding": "medseg.sam._predict",
    "IntensityConfig": "medseg.sam._preprocess",
    "IntensityMode": "medseg.sam._preprocess",
    "ObjectPrompt": "medseg.sam._prompts",
    "ObjectPromptSpec": "medseg.sam._prompts",
    "PointStrategy": "medseg.sam._propagate",
    "Precision": "medseg.sam._predict",
    "PromptFile": "medseg.sam._prompts",
    "PropagationConfig": "medseg.sam._propagate",
    "PropagationResult": "medseg.sam._propagate",
    "SamPrediction": "medseg.sam._predict",
    "SamPrompt": "medseg.sam._predict",
    "SamSegmentConfig": "medseg.sam._volume",
    "SliceStack": "medseg.sam._propagate",
    "box_around_points": "medseg.sam._clicks",
    "box_from_mask": "medseg.sam._propagate",
    "clip_box": "medseg.sam._propagate",
    "build_slice_stack": "medseg.sam._volume",
    "display_axis_codes": "medseg.sam._volume",
    "embed_image": "medseg.sam._predict",
    "generate_masks": "medseg.sam._auto",
    "labels_to_file_grid": "medseg.sam._volume",
    "load_prompt_file": "medseg.sam._prompts",
    "mask_to_prompt_logits": "medseg.sam._predict",
    "predict_box_logits": "medseg.sam._predict",
    "predict_box_mask": "medseg.sam._predict",
    "predict_object": "medseg.sam._propagate",
    "predict_prompts": "medseg.sam._predict",
    "predict_with_box_growing": "medseg.sam._predict",
    "propagate_prompt": "medseg.sam._propagate",
    "looks_like_hu": "medseg.sam._preprocess",
    "resolve_intensity_mode": "medseg.sam._preprocess",
    "resolve_object_prompts": "medseg.sam._prompts",
    "resolve_point_strategy": "medseg.sam._propagate",
    "scale_intensity": "medseg.sam._preprocess",
    "search_box_for_clicks": "medseg.sam._clicks",
    "segment_automatically": "medseg.sam._volume",
    "segment_everything": "medseg.sam._auto",
    "segment_with_prompts": "medseg.sam._volume",
    "to_display_volume": "medseg.sam._volume",
    "upsample_logits": "medseg.sam._predict",
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
    "NestedRegion",
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
    "TumourSubregionConfig",
    "box_around_points",
    "box_from_mask",
    "build_slice_stack",
    "choose_instance_zoom",
    "clip_box",
    "compute_window_starts",
    "decide_nested_regions",
    "display_axis_codes",
    "embed_image",
    "generate_masks",
    "is_instance_detector",
    "is_stained_image",
    "keep_foreground_components",
    "keep_largest_foreground",
    "label_instances",
    "labels_to_file_grid",
    "load_prompt_file",
    "looks_like_hu",
    "mask_to_prompt_logits",
    "parse_channel_arguments",
    "postprocess_labels",
    "predict_box_logits",
    "predict_box_mask",
    "predict_channel_volume",
    "predict_channels",
    "predict_instances",
    "predict_object",
    "predict_prompts",
    "predict_sliding_window",
    "predict_sliding_window_with_disagreement",
    "predict_volume",
    "predict_with_box_growing",
    "predict_with_checkpoint",
    "prepare_network",
    "propagate_prompt",
    "relabel_instances",
    "resolve_infer_config",
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
    "segment_with_prompts",
    "select_instance_config",
    "softmax_",
    "split_merged_seeds",
    "split_tumour_subregions",
    "to_display_volume",
    "upsample_logits",
    "write_probabilities",
    "zoom_image",
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
