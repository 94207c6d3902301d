"""Segmenters: one protocol, one registry keyed by ``segment.method``, one module per method.

A segmenter takes a case's images with their geometry (:class:`CaseImages`) and returns a
label or instance map on the image's grid with per-structure metadata
(:class:`Segmentation`). The pipeline runner builds the one its config names
(:meth:`SegmentConfig.build`) and knows no method by name. Built-in methods:
``sam_reference_box`` (SAM, one box per 2D slice), ``sam_box_3d`` (SAM propagated from a 3D
box), ``otsu_watershed`` (classical nuclei), ``trained_model`` (a semantic checkpoint) and
``nuclei_model`` (an instance checkpoint), ``channel_model`` (a multi-channel
checkpoint such as the shipped ``brain-tumour``) and ``sam_text`` (structures named in text:
CT organs located without a reference and drawn by SAM, other concepts routed to the
segmenter that knows them). To add one, see ``docs/architecture.md``.
"""

from __future__ import annotations

from medseg.segment._base import (
    CaseImages,
    Confidence,
    MapKind,
    Segmentation,
    Segmenter,
    SegmenterSpec,
    label_ids_for,
)
from medseg.segment._channel_model import (
    ChannelModelConfig,
    ChannelModelSegmenter,
    stack_case_channels,
)
from medseg.segment._checkpoint_instance import (
    CheckpointInstanceSegmenter,
    NucleiModelConfig,
    segment_nuclei_with_model,
)
from medseg.segment._checkpoint_semantic import (
    CheckpointSemanticSegmenter,
    TrainedModelConfig,
    resolve_pipeline_model,
    segment_with_trained_model,
)
from medseg.segment._config import SegmentConfig, SegmentMethod
from medseg.segment._display import DISPLAY_CODES, display_image, display_slices
from medseg.segment._registry import (
    build_segmenter,
    list_segmenters,
    register_segmenter,
    segmenter_spec,
)
from medseg.segment._sam_box_3d import (
    PromptedStructure,
    PromptSource,
    SamBox3DConfig,
    SamBox3DSegmenter,
    segment_with_3d_boxes,
    simulate_box_prompts,
)
from medseg.segment._sam_slices import (
    SamBoxConfig,
    SamSlicesSegmenter,
    segment_with_reference_boxes,
)
from medseg.segment._sam_text import (
    SamTextConfig,
    SamTextSegmenter,
    TextResult,
    TextStructure,
    output_labels,
)
from medseg.segment._watershed import (
    WatershedConfig,
    WatershedSegmenter,
    segment_nuclei_watershed,
)

__all__ = [
    "DISPLAY_CODES",
    "CaseImages",
    "ChannelModelConfig",
    "ChannelModelSegmenter",
    "CheckpointInstanceSegmenter",
    "CheckpointSemanticSegmenter",
    "Confidence",
    "MapKind",
    "NucleiModelConfig",
    "PromptSource",
    "PromptedStructure",
    "SamBox3DConfig",
    "SamBox3DSegmenter",
    "SamBoxConfig",
    "SamSlicesSegmenter",
    "SamTextConfig",
    "SamTextSegmenter",
    "SegmentConfig",
    "SegmentMethod",
    "Segmentation",
    "Segmenter",
    "SegmenterSpec",
    "TextResult",
    "TextStructure",
    "TrainedModelConfig",
    "WatershedConfig",
    "WatershedSegmenter",
    "build_segmenter",
    "display_image",
    "display_slices",
    "label_ids_for",
    "list_segmenters",
    "output_labels",
    "register_segmenter",
    "resolve_pipeline_model",
    "segment_nuclei_watershed",
    "segment_nuclei_with_model",
    "segment_with_3d_boxes",
    "segment_with_reference_boxes",
    "segment_with_trained_model",
    "segmenter_spec",
    "simulate_box_prompts",
    "stack_case_channels",
]
