"""Inference: sliding-window segmentation from checkpoints, postprocessing, prompted SAM."""

from __future__ import annotations

from medseg.inference._postprocess import LabelPostprocess, postprocess_labels
from medseg.inference._predict import (
    InferConfig,
    Prediction,
    predict_volume,
    predict_with_checkpoint,
    write_probabilities,
)
from medseg.inference._sam_predict import (
    ImageEmbedding,
    Precision,
    embed_image,
    predict_box_logits,
    predict_box_mask,
)
from medseg.inference._sliding_window import (
    ComputePrecision,
    SlidingWindowConfig,
    compute_window_starts,
    predict_sliding_window,
    softmax_,
)

__all__ = [
    "ComputePrecision",
    "ImageEmbedding",
    "InferConfig",
    "LabelPostprocess",
    "Precision",
    "Prediction",
    "SlidingWindowConfig",
    "compute_window_starts",
    "embed_image",
    "postprocess_labels",
    "predict_box_logits",
    "predict_box_mask",
    "predict_sliding_window",
    "predict_volume",
    "predict_with_checkpoint",
    "softmax_",
    "write_probabilities",
]
