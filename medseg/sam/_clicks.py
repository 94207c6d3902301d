"""Boxes from clicks for box-trained SAM models (LiteMedSAM): one box around the clicks, or
the best of a search over candidate boxes of several sizes, shapes and offsets.

Coordinates are pixel indices of the 2D image as displayed: x is the column, y the row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from pydantic import Field, model_validator

from medseg.core import ConfigModel, InputError
from medseg.sam._model import SamModel
from medseg.sam._predict import (
    ImageEmbedding,
    SamPrediction,
    SamPrompt,
    _decode_group,
    upsample_logits,
)

logger = logging.getLogger(__name__)


def _foreground_clicks(
    points_xy: Sequence[tuple[float, float]], point_labels: Sequence[int]
) -> np.ndarray:
    """``(N, 2)`` foreground (label 1) clicks; a points-only prompt needs at least one."""
    foreground = np.array([p for p, label in zip(points_xy, point_labels, strict=True) if label])
    if foreground.size == 0:
        raise InputError("points-only prompts need at least one foreground (label 1) click")
    return foreground


def box_around_points(
    points_xy: Sequence[tuple[float, float]],
    point_labels: Sequence[int],
    image_size: tuple[int, int],
    *,
    half_size_fraction: float = 0.04,
) -> tuple[float, float, float, float]:
    """A starting box around the foreground clicks: their extent plus a margin of
    ``half_size_fraction`` of the longer image side, clipped to the image."""
    foreground = _foreground_clicks(points_xy, point_labels)
    rows, columns = image_size
    half = max(3.0, half_size_fraction * max(rows, columns))
    low = foreground.min(axis=0) - half
    high = foreground.max(axis=0) + half
    return (
        float(max(low[0], 0.0)),
        float(max(low[1], 0.0)),
        float(min(high[0], columns - 1.0)),
        float(min(high[1], rows - 1.0)),
    )


class ClickSearchConfig(ConfigModel):
    """Candidate boxes tried around clicks by :func:`search_box_for_clicks`.

    Sizes run geometrically from ``min_size_fraction`` to ``max_size_fraction`` of the
    image's longer side, each with every aspect ratio (width / height).
    """

    min_size_fraction: float = Field(default=0.04, gt=0.0, le=1.0)
    max_size_fraction: float = Field(default=0.8, gt=0.0, le=2.0)
    n_sizes: int = Field(default=10, ge=1, le=64)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    centre_offsets: tuple[float, ...] = Field(
        default=(-0.25, 0.0, 0.25),
        description="box centres moved by these fractions of the box size along x and y "
        "(every combination), for clicks away from the object's centre",
    )
    min_margin_px: float = Field(default=3.0, ge=0.0)

    @model_validator(mode="after")
    def _check(self) -> ClickSearchConfig:
        if self.max_size_fraction < self.min_size_fraction:
            raise ValueError("max_size_fraction must be >= min_size_fraction")
        if not self.aspect_ratios or any(r <= 0 for r in self.aspect_ratios):
            raise ValueError("aspect_ratios must be positive")
        return self


def click_search_boxes(
    points_xy: Sequence[tuple[float, float]],
    point_labels: Sequence[int],
    image_size: tuple[int, int],
    config: ClickSearchConfig,
) -> list[tuple[float, float, float, float]]:
    """Candidate boxes centred on the foreground clicks, each holding all of them."""
    foreground = _foreground_clicks(points_xy, point_labels)
    rows, columns = image_size
    low, high = foreground.min(axis=0), foreground.max(axis=0)
    centre = (low + high) / 2.0
    half_extent = (high - low) / 2.0 + config.min_margin_px
    longer = float(max(rows, columns))
    boxes: list[tuple[float, float, float, float]] = []
    sizes = np.geomspace(config.min_size_fraction, config.max_size_fraction, config.n_sizes)
    for size in sizes:
        for ratio in config.aspect_ratios:
            half_w = max(size * longer / 2.0 * np.sqrt(ratio), half_extent[0])
            half_h = max(size * longer / 2.0 / np.sqrt(ratio), half_extent[1])
            for offset_x in config.centre_offsets:
                for offset_y in config.centre_offsets:
                    x = centre[0] + 2.0 * offset_x * half_w
                    y = centre[1] + 2.0 * offset_y * half_h
                    if abs(x - centre[0]) + half_extent[0] > half_w + 1e-6:
                        continue  # the moved box would not hold every foreground click
                    if abs(y - centre[1]) + half_extent[1] > half_h + 1e-6:
                        continue
                    box = (
                        float(max(x - half_w, 0.0)),
                        float(max(y - half_h, 0.0)),
                        float(min(x + half_w, columns - 1.0)),
                        float(min(y + half_h, rows - 1.0)),
                    )
                    if box not in boxes:
                        boxes.append(box)
    return boxes


@torch.inference_mode()
def search_box_for_clicks(
    model: SamModel,
    embedding: ImageEmbedding,
    points_xy: Sequence[tuple[float, float]],
    point_labels: Sequence[int],
    config: ClickSearchConfig | None = None,
) -> tuple[SamPrediction, tuple[float, float, float, float]]:
    """Segment the clicked object with a box-trained model: try boxes, keep the best.

    LiteMedSAM's decoder was trained on boxes only and gives no usable mask for a click.
    Boxes of several sizes and shapes around the foreground clicks are decoded on the same
    image embedding (batched on CUDA, one by one on the CPU, see :func:`_decode_group`); a
    candidate counts when its mask holds every foreground click and no background click, and
    the one with the highest predicted IoU wins (the decoder is most confident when the box
    frames a whole object). Background clicks thus veto masks that leak into what they mark.
    Hand-written: neither SAM nor MedSAM ships a click path for box-only decoders.

    Returns
    -------
    tuple
        The winning prediction (one mask) and its box ``(x0, y0, x1, y1)``.
    """
    config = config or ClickSearchConfig()
    boxes = click_search_boxes(points_xy, point_labels, embedding.original_size, config)
    low_res, iou = _decode_group(
        model, embedding, [SamPrompt(box_xyxy=b) for b in boxes], multimask_output=False
    )
    # Click positions in the low-res frame (encoder input scaled to the logits' size).
    sx, sy = embedding.scale_xy
    factor = low_res.shape[-1] / model.image_size
    rows, columns = low_res.shape[-2:]
    points = np.asarray(points_xy, dtype=np.float64)
    lx = np.clip(np.floor((points[:, 0] + 0.5) * sx * factor), 0, columns - 1).astype(int)
    ly = np.clip(np.floor((points[:, 1] + 0.5) * sy * factor), 0, rows - 1).astype(int)
    inside = (low_res[:, 0, ly, lx] > 0.0).cpu().numpy()  # (candidates, points)
    labels = np.asarray(point_labels, dtype=bool)
    holds_foreground = inside[:, labels].all(axis=1)
    valid = holds_foreground & ~inside[:, ~labels].any(axis=1)
    scores = iou[:, 0].cpu().numpy()
    pool = np.flatnonzero(valid)
    if pool.size == 0:
        pool = np.flatnonzero(holds_foreground)
        logger.warning("no candidate box gave a mask that respects every click; using the best")
    if pool.size == 0:
        pool = np.arange(len(boxes))
    best = int(pool[np.argmax(scores[pool])])
    logits = upsample_logits(model, embedding, low_res[best : best + 1]).cpu().numpy()
    prediction = SamPrediction(
        logits=logits[0],
        iou_scores=iou[best].cpu().numpy(),
        low_res_logits=low_res[best].cpu().numpy(),
    )
    return prediction, boxes[best]
