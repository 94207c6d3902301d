"""SAM-family segmentation: model loading, intensity preprocessing, prompts, 2D prediction,
3D propagation, automatic ("segment everything") mode and volume-level segmentation.

Modules, in dependency order: ``_model`` (LiteMedSAM / SAM ViT loaders), ``_preprocess``
(intensity scaling to 8-bit RGB), ``_prompts`` (prompt files, voxel/mm coordinates),
``_predict`` (one slice: embeddings, boxes, clicks), ``_clicks`` (boxes searched around
clicks), ``_propagate`` (one object through a volume's slices), ``_auto`` (automatic mask
generation), ``_volume`` (a whole image: display orientation, several objects, the label map
on the file's grid).
"""

from __future__ import annotations

from medseg.sam._auto import (
    AutoMaskConfig,
    generate_masks,
    segment_everything,
)
from medseg.sam._clicks import ClickSearchConfig, box_around_points, search_box_for_clicks
from medseg.sam._model import (
    LITEMEDSAM_SHA256,
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    InputNormalization,
    SamModel,
    SamModelName,
    litemedsam_checkpoint_path,
    load_sam_model,
)
from medseg.sam._openvino import EncoderBackend, default_cache_dir, openvino_available
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
    logits_to_probability,
    predict_object,
    predict_object_logits,
    propagate_prompt,
    resolve_point_strategy,
)
from medseg.sam._text import (
    TextSegmentation,
    TextSegmentConfig,
    locate_concepts,
    prompts_from_boxes,
    segment_named_structures,
)
from medseg.sam._volume import (
    DisplayVolume,
    PromptedSegmentation,
    SamSegmentConfig,
    assign_claimed_voxels,
    build_slice_stack,
    display_axis_codes,
    labels_to_file_grid,
    region_to_display,
    segment_automatically,
    segment_prompts_with_confidence,
    segment_with_prompts,
    to_display_volume,
)

__all__ = [
    "LITEMEDSAM_SHA256",
    "SAM_PIXEL_MEAN",
    "SAM_PIXEL_STD",
    "AutoMaskConfig",
    "CasePrompts",
    "ClickSearchConfig",
    "CoordinateSpace",
    "DisplayVolume",
    "EncoderBackend",
    "ImageEmbedding",
    "InputNormalization",
    "IntensityConfig",
    "IntensityMode",
    "ObjectPrompt",
    "ObjectPromptSpec",
    "PointStrategy",
    "Precision",
    "PromptFile",
    "PromptedSegmentation",
    "PropagationConfig",
    "PropagationResult",
    "SamModel",
    "SamModelName",
    "SamPrediction",
    "SamPrompt",
    "SamSegmentConfig",
    "SliceStack",
    "TextSegmentConfig",
    "TextSegmentation",
    "assign_claimed_voxels",
    "box_around_points",
    "box_from_mask",
    "build_slice_stack",
    "clip_box",
    "default_cache_dir",
    "display_axis_codes",
    "embed_image",
    "generate_masks",
    "labels_to_file_grid",
    "litemedsam_checkpoint_path",
    "load_prompt_file",
    "load_sam_model",
    "locate_concepts",
    "logits_to_probability",
    "looks_like_hu",
    "mask_to_prompt_logits",
    "openvino_available",
    "predict_box_logits",
    "predict_box_mask",
    "predict_object",
    "predict_object_logits",
    "predict_prompts",
    "predict_with_box_growing",
    "prompts_from_boxes",
    "propagate_prompt",
    "region_to_display",
    "resolve_intensity_mode",
    "resolve_object_prompts",
    "resolve_point_strategy",
    "scale_intensity",
    "search_box_for_clicks",
    "segment_automatically",
    "segment_everything",
    "segment_named_structures",
    "segment_prompts_with_confidence",
    "segment_with_prompts",
    "to_display_volume",
    "upsample_logits",
]
