"""Automatic ("segment everything") mode: a grid of point prompts to an instance label map.

The steps are those of ``segment_anything``'s ``SamAutomaticMaskGenerator`` (whose helpers
``build_point_grid``, ``calculate_stability_score`` and ``batched_mask_to_box`` are reused):
one foreground click per grid point with SAM's three masks per click (for LiteMedSAM, which
was trained on boxes only, boxes of a few sizes centred on each grid point instead), masks
kept when their predicted IoU and stability score pass thresholds, box non-maximum suppression
(``torchvision.ops.batched_nms``), then painting from the best score down into a label map
(pixels already taken are not overwritten; fragments smaller than ``min_area_px`` are
dropped). SAM's generator returns overlapping masks and works on crops; this one works on
the whole image and returns one label per pixel, which is what cell counting needs.
"""

from __future__ import annotations

import enum
import logging

import numpy as np
import torch
from pydantic import Field
from segment_anything.utils.amg import (
    batched_mask_to_box,
    build_point_grid,
    calculate_stability_score,
)
from torchvision.ops import batched_nms

from medseg.core import ConfigModel
from medseg.sam._model import SamModel
from medseg.sam._predict import (
    ImageEmbedding,
    SamPrompt,
    _decode_group,
    _touched_sides,
    upsample_logits,
)

logger = logging.getLogger(__name__)


class GridPrompt(str, enum.Enum):
    """What each grid point becomes: a click (SAM) or boxes centred on it (box-trained
    models such as LiteMedSAM, whose decoder was never trained on clicks alone)."""

    AUTO = "auto"
    POINTS = "points"
    BOXES = "boxes"


class AutoMaskConfig(ConfigModel):
    """Parameters of the automatic mode (names follow SAM's mask generator).

    ``box_sizes_fraction``: side lengths of the boxes centred on each grid point, as
    fractions of the longer image side (``boxes`` grid prompts only).
    """

    grid_prompt: GridPrompt = GridPrompt.AUTO
    box_sizes_fraction: tuple[float, ...] = (0.06, 0.12)
    points_per_side: int = Field(default=32, ge=1, le=128)
    points_per_batch: int = Field(default=64, ge=1)
    pred_iou_thresh: float = Field(default=0.88, ge=0.0, le=1.0)
    stability_score_thresh: float = Field(default=0.95, ge=0.0, le=1.0)
    stability_score_offset: float = Field(default=1.0, ge=0.0)
    box_nms_thresh: float = Field(default=0.7, gt=0.0, le=1.0)
    min_area_px: int = Field(default=10, ge=0)
    max_area_fraction: float = Field(default=0.5, gt=0.0, le=1.0)


@torch.inference_mode()
def generate_masks(
    model: SamModel, embedding: ImageEmbedding, config: AutoMaskConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate masks for one encoded image, filtered and de-duplicated.

    Returns
    -------
    masks
        ``(N, rows, columns)`` bool, best score first.
    scores
        ``(N,)`` predicted IoU of each mask.
    """
    config = config or AutoMaskConfig()
    rows, columns = embedding.original_size
    grid = build_point_grid(config.points_per_side) * np.array([columns, rows])
    kind = config.grid_prompt
    if kind is GridPrompt.AUTO:
        kind = GridPrompt.BOXES if model.name == "litemedsam" else GridPrompt.POINTS
    prompts_all: list[SamPrompt] = []
    for x, y in grid:
        if kind is GridPrompt.POINTS:
            prompts_all.append(SamPrompt(points_xy=((float(x), float(y)),), point_labels=(1,)))
            continue
        for fraction in config.box_sizes_fraction:
            half = fraction * max(rows, columns) / 2.0
            prompts_all.append(
                SamPrompt(
                    box_xyxy=(
                        float(max(x - half, 0.0)),
                        float(max(y - half, 0.0)),
                        float(min(x + half, columns - 1.0)),
                        float(min(y + half, rows - 1.0)),
                    )
                )
            )
    kept_masks: list[torch.Tensor] = []
    kept_scores: list[torch.Tensor] = []
    max_area = config.max_area_fraction * rows * columns
    for start in range(0, len(prompts_all), config.points_per_batch):
        prompts = prompts_all[start : start + config.points_per_batch]
        low_res, iou = _decode_group(
            model, embedding, prompts, multimask_output=kind is GridPrompt.POINTS
        )
        logits = upsample_logits(model, embedding, low_res).flatten(0, 1)
        iou = iou.flatten()
        keep = iou > config.pred_iou_thresh
        if kind is GridPrompt.BOXES:
            # A mask that runs into a side of its box is truncated or is background filling
            # the box: only masks lying inside their box are objects the box enclosed.
            inside = [
                bool(mask.any()) and not any(_touched_sides(mask, prompt.box_xyxy or (), 1.0))
                for mask, prompt in zip((logits > 0).cpu().numpy(), prompts, strict=True)
            ]
            keep &= torch.tensor(inside, device=keep.device)
        logits, iou = logits[keep], iou[keep]
        stability = calculate_stability_score(logits, 0.0, config.stability_score_offset)
        keep = stability >= config.stability_score_thresh
        masks = logits[keep] > 0.0
        iou = iou[keep]
        area = masks.flatten(1).sum(dim=1)
        keep = (area >= max(config.min_area_px, 1)) & (area <= max_area)
        kept_masks.append(masks[keep].cpu())
        kept_scores.append(iou[keep].cpu())
    if not kept_masks or sum(len(m) for m in kept_masks) == 0:
        return np.zeros((0, rows, columns), dtype=bool), np.zeros(0, dtype=np.float32)
    masks = torch.cat(kept_masks)
    scores = torch.cat(kept_scores)
    boxes = batched_mask_to_box(masks).float()
    keep = batched_nms(
        boxes, scores, torch.zeros(len(boxes), dtype=torch.int64), config.box_nms_thresh
    )
    return masks[keep].numpy(), scores[keep].numpy()


def segment_everything(
    model: SamModel, embedding: ImageEmbedding, config: AutoMaskConfig | None = None
) -> np.ndarray:
    """Instance label map ``(rows, columns)`` int32 (0 background, 1..N objects).

    Masks are painted from the highest predicted IoU down; a later mask only takes pixels
    still free, and is dropped if fewer than ``min_area_px`` remain.
    """
    config = config or AutoMaskConfig()
    masks, scores = generate_masks(model, embedding, config)
    labels = np.zeros(embedding.original_size, dtype=np.int32)
    next_label = 1
    for index in np.argsort(-scores, kind="stable"):
        free = masks[index] & (labels == 0)
        if int(free.sum()) < max(config.min_area_px, 1):
            continue
        labels[free] = next_label
        next_label += 1
    logger.info("automatic mode: %d objects from %d candidate masks", next_label - 1, len(masks))
    return labels
