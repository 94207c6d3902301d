"""Inference: prompted SAM prediction (sliding-window U-Net inference comes here too)."""

from __future__ import annotations

from medseg.inference._sam_predict import (
    ImageEmbedding,
    Precision,
    embed_image,
    predict_box_logits,
    predict_box_mask,
)

__all__ = [
    "ImageEmbedding",
    "Precision",
    "embed_image",
    "predict_box_logits",
    "predict_box_mask",
]
