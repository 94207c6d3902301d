"""Prompted inference with SAM-family models on 2D images.

Pre/post-processing follows upstream MedSAM (LiteMedSAM) and SAM: resize the longest side
to the encoder size, normalise (MedSAM: min-max to [0, 1]; SAM: ImageNet mean/std on the
0-255 scale), pad bottom/right, scale the prompt coordinates by the same per-axis factors;
upsample the low-resolution logits to the padded encoder frame, crop the unpadded part and
upsample it bilinearly to the original pixel grid (SAM's ``postprocess_masks``).

Coordinates are pixel indices of the 2D image as displayed: x is the column, y the row.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from medseg.core import ConfigModel, InputError
from medseg.sam._model import SAM_PIXEL_MEAN, SAM_PIXEL_STD, InputNormalization, SamModel

logger = logging.getLogger(__name__)


class Precision(str, enum.Enum):
    """Numeric precision of the image encoder."""

    FP32 = "fp32"
    BF16 = "bf16"


@dataclass(frozen=True)
class ImageEmbedding:
    """An encoded image plus what is needed to map prompts and masks back.

    Attributes
    ----------
    features
        Encoder output, ``(1, 256, 64, 64)`` float32.
    original_size
        ``(rows, columns)`` of the image as given.
    resized_size
        ``(rows, columns)`` after resizing the longest side to the encoder size.
    """

    features: torch.Tensor
    original_size: tuple[int, int]
    resized_size: tuple[int, int]

    @property
    def scale(self) -> float:
        """Factor from original pixel coordinates to encoder-input coordinates (rows)."""
        return self.resized_size[0] / self.original_size[0]

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Per-axis factors ``(x, y)`` from original pixels to encoder-input pixels."""
        return (
            self.resized_size[1] / self.original_size[1],
            self.resized_size[0] / self.original_size[0],
        )


@dataclass(frozen=True, eq=False)
class SamPrompt:
    """One object's prompt on one 2D image.

    LiteMedSAM's decoder was trained on boxes only: with it, give a box (clicks alone give
    no usable mask, and clicks added to a box lowered Dice in this project's tests); SAM
    checkpoints take every kind.

    Attributes
    ----------
    box_xyxy
        ``(x0, y0, x1, y1)`` in pixels (x = column, y = row), inclusive corners.
    points_xy
        ``(N, 2)`` point coordinates ``(x, y)`` in pixels.
    point_labels
        ``(N,)`` 1 for a foreground click, 0 for a background click.
    mask_logits
        Low-resolution logits ``(256, 256)`` float32 in the model's padded encoder frame,
        as returned in :attr:`SamPrediction.low_res_logits` (SAM's ``mask_input``).
    """

    box_xyxy: tuple[float, float, float, float] | None = None
    points_xy: tuple[tuple[float, float], ...] = ()
    point_labels: tuple[int, ...] = ()
    mask_logits: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.box_xyxy is None and not self.points_xy and self.mask_logits is None:
            raise InputError("a prompt needs a box, points or a mask; found none")
        if self.box_xyxy is not None:
            if len(self.box_xyxy) != 4:
                raise InputError(f"box must be (x0, y0, x1, y1), not {self.box_xyxy}")
            x0, y0, x1, y1 = self.box_xyxy
            if not (x1 >= x0 and y1 >= y0):
                raise InputError(f"box must satisfy x0 <= x1 and y0 <= y1, not {self.box_xyxy}")
        if len(self.points_xy) != len(self.point_labels):
            raise InputError(
                f"each point needs a label: {len(self.points_xy)} points, "
                f"{len(self.point_labels)} labels"
            )
        if any(len(p) != 2 for p in self.points_xy):
            raise InputError("points must be (x, y) pairs")
        bad = sorted({int(v) for v in self.point_labels} - {0, 1})
        if bad:
            raise InputError(f"point labels must be 1 (foreground) or 0 (background), not {bad[0]}")
        if self.mask_logits is not None and np.asarray(self.mask_logits).ndim != 2:
            raise InputError(
                f"mask prompt must be 2D low-res logits, not shape {np.shape(self.mask_logits)}"
            )

    @property
    def structure(self) -> tuple[bool, int, bool]:
        """What the prompt holds (box?, number of points, mask?): equal ones batch together."""
        return (self.box_xyxy is not None, len(self.points_xy), self.mask_logits is not None)


@dataclass(frozen=True)
class SamPrediction:
    """Masks predicted for one prompt.

    Attributes
    ----------
    logits
        ``(M, rows, columns)`` float32 on the original pixel grid; a mask is ``logits > 0``.
        M is 1, or 3 with ``multimask_output``.
    iou_scores
        ``(M,)`` the decoder's predicted IoU of each mask.
    low_res_logits
        ``(M, 256, 256)`` float32 in the padded encoder frame, usable as a mask prompt.
    """

    logits: np.ndarray
    iou_scores: np.ndarray
    low_res_logits: np.ndarray

    @property
    def best_index(self) -> int:
        """Index of the mask with the highest predicted IoU."""
        return int(np.argmax(self.iou_scores))

    def best_mask(self) -> np.ndarray:
        """Boolean ``(rows, columns)`` mask with the highest predicted IoU."""
        return self.logits[self.best_index] > 0.0


def _autocast(model: SamModel, precision: Precision) -> contextlib.AbstractContextManager:
    if precision is Precision.BF16:
        return torch.autocast(device_type=model.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _resized_size(model: SamModel, rows: int, columns: int) -> tuple[int, int]:
    scale = model.image_size / max(rows, columns)
    return (max(1, int(rows * scale + 0.5)), max(1, int(columns * scale + 0.5)))


@torch.inference_mode()
def embed_image(
    model: SamModel, image: np.ndarray, *, precision: Precision = Precision.FP32
) -> ImageEmbedding:
    """Encode a 2D image for prompting.

    Parameters
    ----------
    image
        ``(rows, columns)`` grey or ``(rows, columns, 3)`` RGB, any real dtype, displayed
        orientation (row 0 at the top). LiteMedSAM min-max scales it to [0, 1] after
        resizing (upstream MedSAM); SAM expects it in [0, 1] (see
        :func:`medseg.inference.scale_intensity`) and applies its ImageNet mean/std.
    precision
        ``bf16`` runs the encoder in bfloat16 (autocast in PyTorch; OpenVINO's bf16 kernels,
        6× faster than PyTorch fp32 on CPUs with AMX, when the model's encoder backend is
        ``openvino``).
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise InputError(f"image must be (rows, columns) or (rows, columns, 3), not {image.shape}")
    rows, columns = image.shape[:2]
    if rows < 2 or columns < 2:
        raise InputError(f"image must be at least 2×2 pixels, not {rows}×{columns}")
    size = model.image_size
    resized = _resized_size(model, rows, columns)
    tensor = torch.as_tensor(np.ascontiguousarray(image, dtype=np.float32))
    tensor = tensor.permute(2, 0, 1)[None].to(model.device)
    tensor = F.interpolate(
        tensor, size=resized, mode="bilinear", align_corners=False, antialias=True
    )
    if model.normalization is InputNormalization.MIN_MAX:
        low, high = tensor.min(), tensor.max()
        tensor = (tensor - low) / torch.clamp(high - low, min=1e-8)
    else:
        mean = torch.tensor(SAM_PIXEL_MEAN, device=model.device).view(1, 3, 1, 1)
        std = torch.tensor(SAM_PIXEL_STD, device=model.device).view(1, 3, 1, 1)
        tensor = (tensor.clamp(0.0, 1.0) * 255.0 - mean) / std
    tensor = F.pad(tensor, (0, size - resized[1], 0, size - resized[0]))
    with _autocast(model, precision):
        features = model.encode(tensor)
    return ImageEmbedding(
        features=features.float(), original_size=(rows, columns), resized_size=resized
    )


def _decode_group(
    model: SamModel,
    embedding: ImageEmbedding,
    prompts: Sequence[SamPrompt],
    *,
    multimask_output: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run prompt encoder + decoder for prompts of one structure (one image).

    On CUDA the prompts run as one batch. On the CPU they run one at a time: the decoder
    repeats the image embedding per prompt, and batches of 8-32 cost 77-87 ms per prompt
    against 41 ms one by one (LiteMedSAM, 2 threads, measured here).
    """
    chunk = len(prompts) if model.device.type == "cuda" else 1
    if len(prompts) > chunk:
        parts = [
            _decode_group(
                model, embedding, prompts[i : i + chunk], multimask_output=multimask_output
            )
            for i in range(0, len(prompts), chunk)
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    device = model.device
    sx, sy = embedding.scale_xy
    scale = torch.tensor([sx, sy, sx, sy], dtype=torch.float32, device=device)
    boxes = None
    points = None
    masks = None
    if prompts[0].box_xyxy is not None:
        boxes = torch.tensor([p.box_xyxy for p in prompts], dtype=torch.float32, device=device)
        boxes = (boxes * scale)[:, None, :]
    if prompts[0].points_xy:
        coords = torch.tensor([p.points_xy for p in prompts], dtype=torch.float32, device=device)
        labels = torch.tensor([p.point_labels for p in prompts], dtype=torch.int64, device=device)
        points = (coords * scale[:2], labels)
    if prompts[0].mask_logits is not None:
        expected = model.mask_input_size
        stacked = np.stack([np.asarray(p.mask_logits, dtype=np.float32) for p in prompts])
        if stacked.shape[1:] != expected:
            raise InputError(
                f"mask prompt must be low-res logits of shape {expected}, not {stacked.shape[1:]}"
            )
        masks = torch.as_tensor(stacked, device=device)[:, None]
    sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=masks)
    # One image, B prompts: MaskDecoder repeats the embedding B times itself (it cannot
    # take several images at once, so callers loop over images).
    low_res, iou = model.mask_decoder(
        image_embeddings=embedding.features,
        image_pe=model.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask_output,
    )
    return low_res.float(), iou.float()


def upsample_logits(
    model: SamModel, embedding: ImageEmbedding, low_res: torch.Tensor
) -> torch.Tensor:
    """Map ``(B, M, 256, 256)`` low-res logits onto the original ``(rows, columns)`` grid."""
    size = model.image_size
    upsampled = F.interpolate(low_res, size=(size, size), mode="bilinear", align_corners=False)
    cropped = upsampled[..., : embedding.resized_size[0], : embedding.resized_size[1]]
    return F.interpolate(
        cropped, size=embedding.original_size, mode="bilinear", align_corners=False
    )


@torch.inference_mode()
def predict_prompts(
    model: SamModel,
    embedding: ImageEmbedding,
    prompts: Sequence[SamPrompt],
    *,
    multimask_output: bool = False,
) -> list[SamPrediction]:
    """Predict one mask set per prompt on one encoded image.

    Prompts of the same structure (box or not, number of points, mask or not) run as one
    batch through the decoder; the result keeps the input order.

    Parameters
    ----------
    prompts
        Prompts in the image's pixel coordinates (x = column, y = row).
    multimask_output
        Return SAM's three candidate masks with their predicted IoU (useful for ambiguous
        single clicks) instead of one.
    """
    results: list[SamPrediction | None] = [None] * len(prompts)
    groups: dict[tuple[bool, int, bool], list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(prompt.structure, []).append(index)
    for indices in groups.values():
        low_res, iou = _decode_group(
            model, embedding, [prompts[i] for i in indices], multimask_output=multimask_output
        )
        logits = upsample_logits(model, embedding, low_res).cpu().numpy()
        low_res_np = low_res.cpu().numpy()
        iou_np = iou.cpu().numpy()
        for row, index in enumerate(indices):
            results[index] = SamPrediction(
                logits=logits[row], iou_scores=iou_np[row], low_res_logits=low_res_np[row]
            )
    return [r for r in results if r is not None]


def predict_box_logits(
    model: SamModel, embedding: ImageEmbedding, box_xyxy: tuple[float, float, float, float]
) -> np.ndarray:
    """Mask logits on the original pixel grid for one box prompt.

    Parameters
    ----------
    box_xyxy
        ``(x0, y0, x1, y1)`` in original pixel coordinates: x is the column, y the row.

    Returns
    -------
    numpy.ndarray
        float32 logits of shape ``original_size``; the mask is ``logits > 0``.
    """
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    (prediction,) = predict_prompts(model, embedding, [SamPrompt(box_xyxy=(x0, y0, x1, y1))])
    return prediction.logits[0]


def predict_box_mask(
    model: SamModel,
    image: np.ndarray,
    box_xyxy: tuple[float, float, float, float],
    *,
    precision: Precision = Precision.FP32,
) -> np.ndarray:
    """Binary mask (bool, image's rows × columns) for one box prompt on one 2D image."""
    embedding = embed_image(model, image, precision=precision)
    return predict_box_logits(model, embedding, box_xyxy) > 0.0


def _touched_sides(
    mask: np.ndarray,
    box: tuple[float, ...],
    edge_px: float,
    limit: tuple[float, ...] | None = None,
) -> list[bool]:
    """Which sides of ``box`` the mask reaches, among those not on ``limit`` (default: the
    image border)."""
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    if limit is None:
        limit = (0.0, 0.0, mask.shape[1] - 1.0, mask.shape[0] - 1.0)
    x0, y0, x1, y1 = box
    return [
        x0 > limit[0] and columns[0] <= x0 + edge_px,
        y0 > limit[1] and rows[0] <= y0 + edge_px,
        x1 < limit[2] and columns[-1] >= x1 - edge_px,
        y1 < limit[3] and rows[-1] >= y1 - edge_px,
    ]


def predict_with_box_growing(
    model: SamModel,
    embedding: ImageEmbedding,
    prompt: SamPrompt,
    *,
    grow_fraction: float = 0.2,
    max_iterations: int = 4,
    edge_px: float = 1.0,
    limit_xyxy: tuple[float, float, float, float] | None = None,
) -> SamPrediction:
    """Predict from a box, widening each side the mask runs into, until it fits.

    A box-trained model (LiteMedSAM) cannot return more than its box holds, so a box that is
    too tight (derived from a neighbouring slice, or drawn around clicks) truncates the
    object. Whenever the mask reaches a side of the box (within ``edge_px``) that is not the
    image border, that side moves out by ``grow_fraction`` of the box size and the decoder
    runs again (cheap: the embedding is reused), at most ``max_iterations`` times.
    Hand-written because neither SAM nor MedSAM ships this step.

    Parameters
    ----------
    prompt
        Must hold a box (pixels, x = column, y = row); its points and mask are kept.
    limit_xyxy
        Sides never move beyond this box (e.g. a 3D box's in-plane extent); default: the
        image.
    """
    if prompt.box_xyxy is None:
        raise InputError("box growing needs a prompt with a box")
    rows, columns = embedding.original_size
    limit = (0.0, 0.0, columns - 1.0, rows - 1.0)
    if limit_xyxy is not None:
        limit = (
            max(limit[0], float(limit_xyxy[0])),
            max(limit[1], float(limit_xyxy[1])),
            min(limit[2], float(limit_xyxy[2])),
            min(limit[3], float(limit_xyxy[3])),
        )
    box = tuple(float(v) for v in prompt.box_xyxy)
    current = prompt
    (prediction,) = predict_prompts(model, embedding, [current])
    for _ in range(max_iterations):
        mask = prediction.logits[0] > 0.0
        if not mask.any():
            break
        touched = _touched_sides(mask, box, edge_px, limit)
        if not any(touched):
            break
        width, height = box[2] - box[0] + 1, box[3] - box[1] + 1
        step_x, step_y = max(2.0, grow_fraction * width), max(2.0, grow_fraction * height)
        grown = (
            max(limit[0], box[0] - step_x) if touched[0] else box[0],
            max(limit[1], box[1] - step_y) if touched[1] else box[1],
            min(limit[2], box[2] + step_x) if touched[2] else box[2],
            min(limit[3], box[3] + step_y) if touched[3] else box[3],
        )
        if grown == box:
            break
        box = grown
        current = SamPrompt(
            box_xyxy=box,
            points_xy=prompt.points_xy,
            point_labels=prompt.point_labels,
            mask_logits=prompt.mask_logits,
        )
        (prediction,) = predict_prompts(model, embedding, [current])
    return prediction


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


@torch.inference_mode()
def mask_to_prompt_logits(
    model: SamModel, embedding: ImageEmbedding, mask: np.ndarray, *, magnitude: float = 8.0
) -> np.ndarray:
    """Turn a binary mask on the original grid into a ``(256, 256)`` mask prompt.

    The mask is resized like the image, padded and brought to the decoder's low-resolution
    frame; inside becomes ``+magnitude``, outside ``-magnitude`` (logit-like values, as SAM
    expects for ``mask_input``).
    """
    mask = np.asarray(mask)
    if mask.shape != embedding.original_size:
        raise InputError(
            f"mask must have the image's shape {embedding.original_size}, not {mask.shape}"
        )
    tensor = torch.as_tensor(mask.astype(np.float32))[None, None]
    tensor = F.interpolate(tensor, size=embedding.resized_size, mode="bilinear")
    size = model.image_size
    tensor = F.pad(
        tensor, (0, size - embedding.resized_size[1], 0, size - embedding.resized_size[0])
    )
    tensor = F.interpolate(tensor, size=model.mask_input_size, mode="bilinear")
    return ((tensor[0, 0] * 2.0 - 1.0) * magnitude).numpy().astype(np.float32)
