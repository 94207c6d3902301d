"""Prompted SAM segmentation of whole images and volumes with exact geometry.

The work happens in a display orientation: axes are permuted/flipped (no resampling) so that
each slice along k shows as a radiologist's viewer shows it (axial: ``LP`` in-plane, row 0
anterior, column 0 patient right; coronal ``LI``; sagittal ``PI``), keeping the file's k
axis and its direction, so slice k of the file is slice k of the display. Prompts given in
the file's voxel indices are mapped through the two affines; the label map is mapped back
and carries the input's affine exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from medseg.core import ConfigModel, InputError, progress
from medseg.io import Volume, axis_codes, check_same_grid, reorient
from medseg.models import EncoderPrecision
from medseg.sam._auto import AutoMaskConfig, segment_everything
from medseg.sam._model import SamModel
from medseg.sam._openvino import EncoderBackend
from medseg.sam._predict import Precision, SamPrompt
from medseg.sam._preprocess import IntensityConfig, scale_intensity
from medseg.sam._prompts import ObjectPrompt
from medseg.sam._propagate import (
    PropagationConfig,
    PropagationResult,
    SliceStack,
    logits_to_probability,
    predict_object_logits,
    propagate_prompt,
)
from medseg.transforms import from_display_slice, to_display_slice

logger = logging.getLogger(__name__)

_IN_PLANE_CODES = {"S": "LP", "I": "LP", "A": "LI", "P": "LI", "L": "PI", "R": "PI"}


class SamSegmentConfig(ConfigModel):
    """How ``medseg sam`` runs a SAM-family model on an image."""

    model: str = "litemedsam"
    checkpoint: str | None = None
    device: str = "auto"
    precision: EncoderPrecision = Precision.BF16
    encoder_backend: EncoderBackend = EncoderBackend.AUTO
    intensity: IntensityConfig = IntensityConfig()
    propagation: PropagationConfig = PropagationConfig()
    auto: AutoMaskConfig = AutoMaskConfig()
    max_cached_slices: int = Field(default=32, ge=1)


def display_axis_codes(volume: Volume) -> str:
    """Display orientation codes for ``volume`` that keep its k axis and direction."""
    slice_code = axis_codes(volume)[2]
    return _IN_PLANE_CODES[slice_code] + slice_code


@dataclass(frozen=True)
class DisplayVolume:
    """A volume in display orientation plus the map from file voxels to display voxels.

    Attributes
    ----------
    volume
        The reoriented volume (axes i, j, k: display column, display row, slice).
    file_to_display
        4×4 matrix taking file voxel indices ``(i, j, k, 1)`` to display voxel indices.
    """

    volume: Volume
    file_to_display: np.ndarray

    def map_points(self, points_ijk: np.ndarray) -> np.ndarray:
        """File voxel coordinates ``(N, 3)`` → display voxel coordinates ``(N, 3)``."""
        points = np.atleast_2d(np.asarray(points_ijk, dtype=np.float64))
        homogeneous = np.c_[points, np.ones(len(points))]
        return (self.file_to_display @ homogeneous.T).T[:, :3]


def to_display_volume(volume: Volume) -> DisplayVolume:
    """Reorient ``volume`` for display (see :func:`display_axis_codes`)."""
    display = reorient(volume, display_axis_codes(volume))
    mapping = np.linalg.inv(display.affine) @ volume.affine
    return DisplayVolume(volume=display, file_to_display=np.round(mapping, 6))


def build_slice_stack(
    model: SamModel,
    display: DisplayVolume,
    intensity: IntensityConfig,
    *,
    precision: Precision = Precision.FP32,
    max_cached: int = 32,
) -> SliceStack:
    """Scale intensities over the whole volume and stack its display slices."""
    array = display.volume.array
    is_rgb = array.ndim == 4
    if array.ndim == 4 and array.shape[-1] not in (3, 4):
        raise InputError(
            f"multi-channel images must be RGB(A), found {array.shape[-1]} channels; "
            "pick one channel first"
        )
    modality = display.volume.metadata.get("modality")
    scaled = scale_intensity(
        array, intensity, is_rgb=is_rgb, modality=modality if isinstance(modality, str) else None
    )
    slices = np.stack([to_display_slice(scaled[:, :, k]) for k in range(scaled.shape[2])]).astype(
        np.float32
    )
    return SliceStack(model, slices, precision=precision, max_cached=max_cached)


@dataclass(frozen=True)
class _DisplayPrompt:
    key_slice: int
    prompt: SamPrompt
    first_slice: int | None
    last_slice: int | None
    propagate: bool
    bounding_box_xyxy: tuple[float, float, float, float] | None = None


def _display_prompt(obj: ObjectPrompt, display: DisplayVolume, n_slices: int) -> _DisplayPrompt:
    rows, columns = display.volume.spatial_shape[1], display.volume.spatial_shape[0]
    box_xyxy = None
    box_slices: tuple[int, int] | None = None
    if obj.box_ijk is not None:
        corners = display.map_points(np.array([obj.box_ijk[:3], obj.box_ijk[3:]]))
        low, high = corners.min(axis=0), corners.max(axis=0)
        box_slices = (int(np.floor(low[2] + 0.5)), int(np.floor(high[2] + 0.5)))
        box_xyxy = (
            float(np.clip(low[0], 0, columns - 1)),
            float(np.clip(low[1], 0, rows - 1)),
            float(np.clip(high[0], 0, columns - 1)),
            float(np.clip(high[1], 0, rows - 1)),
        )
    points_xy: tuple[tuple[float, float], ...] = ()
    point_slice = None
    if obj.points_ijk:
        mapped = display.map_points(np.array(obj.points_ijk))
        point_slices = {int(np.floor(z + 0.5)) for z in mapped[:, 2]}
        if len(point_slices) != 1:
            raise InputError(
                f"object {obj.label}: all points must lie on one slice, found slices "
                f"{sorted(point_slices)}"
            )
        point_slice = point_slices.pop()
        points_xy = tuple((float(x), float(y)) for x, y in mapped[:, :2])
    if box_slices is not None:
        first, last = box_slices
        key = point_slice if point_slice is not None else (first + last) // 2
        if not first <= key <= last:
            raise InputError(
                f"object {obj.label}: the points lie on slice {key}, outside the box's "
                f"slices {first}-{last}"
            )
        propagate = obj.propagate or last > first
    else:
        key = int(point_slice)  # type: ignore[arg-type]
        first, last = None, None  # type: ignore[assignment]
        propagate = obj.propagate
    # The display orientation keeps the file's k axis and direction: slice k is slice k.
    if obj.first_slice is not None:
        first = obj.first_slice
    if obj.last_slice is not None:
        last = obj.last_slice
    if not 0 <= key < n_slices:
        raise InputError(
            f"object {obj.label}: prompt slice {key} is outside the image (0-{n_slices - 1})"
        )
    for point in points_xy:
        if not (0 <= point[0] <= columns - 1 and 0 <= point[1] <= rows - 1):
            raise InputError(
                f"object {obj.label}: point {point} is outside the slice "
                f"({columns} columns × {rows} rows)"
            )
    if first is not None:
        first = max(first, 0)
    if last is not None:
        last = min(last, n_slices - 1)
    prompt = SamPrompt(box_xyxy=box_xyxy, points_xy=points_xy, point_labels=obj.point_labels)
    # A box spanning several slices bounds the object's in-plane extent on all of them.
    spans_slices = box_slices is not None and box_slices[1] > box_slices[0]
    return _DisplayPrompt(key, prompt, first, last, propagate, box_xyxy if spans_slices else None)


@dataclass(frozen=True)
class PromptedSegmentation:
    """A prompted segmentation with the decoder's confidence, on the input's grid.

    Attributes
    ----------
    labels
        uint16 label map ``(i, j, k)`` with the input's affine; 0 is background.
    probability
        ``(i, j, k, S)`` float16: sigmoid of the mask decoder's logits of object
        ``label_ids[s]`` on the slices it was segmented on (0 elsewhere).
    label_ids
        The label value of each channel of ``probability`` (one per object).
    slice_iou
        Label value → {slice k → the decoder's predicted IoU}.
    stop_reasons
        Label value → {direction (1: towards higher k, -1: lower) → why propagation ended}.
    stopped_early
        Label value → reason, for objects whose propagation ended before the slice range
        its prompt gave (a 3D box or first/last slices): the mask vanished or the decoder's
        predicted IoU fell below the stop rule.
    """

    labels: Volume
    probability: Volume
    label_ids: tuple[int, ...]
    slice_iou: dict[int, dict[int, float]]
    stop_reasons: dict[int, dict[int, str]]
    stopped_early: dict[int, str]


def segment_with_prompts(
    model: SamModel,
    volume: Volume,
    objects: list[ObjectPrompt],
    config: SamSegmentConfig | None = None,
) -> Volume:
    """Segment each prompted object and return a label map on ``volume``'s grid.

    See :func:`segment_prompts_with_confidence` (this is its ``labels``).
    """
    return _segment_prompts(model, volume, objects, config, keep_probabilities=False).labels


def segment_prompts_with_confidence(
    model: SamModel,
    volume: Volume,
    objects: list[ObjectPrompt],
    config: SamSegmentConfig | None = None,
) -> PromptedSegmentation:
    """:func:`segment_with_prompts` plus each object's sigmoid probability, predicted IoU per
    slice and why its propagation stopped."""
    return _segment_prompts(model, volume, objects, config, keep_probabilities=True)


def assign_claimed_voxels(
    labels: np.ndarray,
    best: np.ndarray,
    masks: np.ndarray,
    probability: np.ndarray,
    label: int,
) -> None:
    """Give ``label`` the voxels of ``masks`` that are unlabelled or where its probability
    beats that of the object holding them; ``labels`` and ``best`` (the holder's
    probability) are updated in place. Painting in prompt order instead let a later organ
    (lungs) overwrite an earlier one (the liver dome: IRCAD liver Dice 0.962 -> 0.885)."""
    claim = masks & ((labels == 0) | (probability > best))
    labels[claim] = label
    best[claim] = probability[claim]


def _segment_prompts(
    model: SamModel,
    volume: Volume,
    objects: list[ObjectPrompt],
    config: SamSegmentConfig | None,
    *,
    keep_probabilities: bool,
) -> PromptedSegmentation:
    """Segment each prompted object and return a label map on ``volume``'s grid.

    Parameters
    ----------
    model
        A loaded SAM-family model.
    volume
        Image as read (``medseg.io.read_image``): a 3D volume or a one-slice 2D image,
        grey or RGB(A) (channels last).
    objects
        Prompts in the file's voxel indices; a voxel two objects claim goes to the one
        with the higher SAM probability there (:func:`assign_claimed_voxels`).
    config
        Intensity, precision and propagation settings.

    Returns
    -------
    Volume
        uint16 label map ``(i, j, k)`` with ``volume``'s affine; 0 is background.
    """
    config = config or SamSegmentConfig()
    if not objects:
        raise InputError("no prompts: give a box, points or a prompt file (or use --auto)")
    display = to_display_volume(volume)
    stack = build_slice_stack(
        model,
        display,
        config.intensity,
        precision=config.precision,
        max_cached=config.max_cached_slices,
    )
    labels = np.zeros((stack.n_slices, *stack.slice_shape), dtype=np.uint16)
    # overlaps between objects are settled by probability, so several objects need theirs
    resolve_overlaps = len(objects) > 1
    best = np.zeros(labels.shape, dtype=np.float16) if resolve_overlaps else None
    return_probabilities = keep_probabilities
    keep_probabilities = keep_probabilities or resolve_overlaps
    probabilities: list[np.ndarray] = []
    slice_iou: dict[int, dict[int, float]] = {}
    stop_reasons: dict[int, dict[int, str]] = {}
    stopped_early: dict[int, str] = {}
    for obj in (
        progress(objects, description="sam structures", unit="structure")
        if len(objects) > 1
        else objects
    ):
        prompt = _display_prompt(obj, display, stack.n_slices)
        if prompt.propagate:
            result = _propagate(stack, prompt, config.propagation, keep_probabilities)
            drawn = int(result.masks.sum())
            if drawn < obj.min_voxels and not config.propagation.use_mask_prompt:
                with_masks = config.propagation.model_copy(update={"use_mask_prompt": True})
                again = _propagate(stack, prompt, with_masks, keep_probabilities)
                logger.info(
                    "object %d: %d voxels, fewer than the %d expected; drawn again with the "
                    "previous slice's mask as prompt: %d voxels",
                    obj.label,
                    drawn,
                    obj.min_voxels,
                    int(again.masks.sum()),
                )
                if again.masks.sum() > drawn:
                    result = again
            masks = result.masks
            probability = result.probabilities
            scores, reasons = result.iou_scores, dict(result.stop_reasons)
            bounded = {1: prompt.last_slice is not None, -1: prompt.first_slice is not None}
            early = [
                f"{reason} at slice {result.last_slice if step > 0 else result.first_slice} "
                f"before the given slice {prompt.last_slice if step > 0 else prompt.first_slice}"
                for step, reason in sorted(reasons.items(), reverse=True)
                if bounded[step] and reason != "bound"
            ]
            if early:
                stopped_early[obj.label] = "; ".join(early)
        else:
            logits, _, iou = predict_object_logits(
                stack, prompt.key_slice, prompt.prompt, config=config.propagation
            )
            masks = np.zeros_like(labels, dtype=bool)
            masks[prompt.key_slice] = logits > 0.0
            probability = None
            if keep_probabilities:
                probability = np.zeros(labels.shape, dtype=np.float16)
                probability[prompt.key_slice] = logits_to_probability(logits)
            scores, reasons = {prompt.key_slice: iou}, {1: "not_propagated", -1: "not_propagated"}
        if obj.region_ijk is not None:
            region = region_to_display(obj.region_ijk, display, volume)
            logger.info(
                "object %d: %d of its %d voxels lie outside its region; dropped",
                obj.label,
                int((masks & ~region).sum()),
                int(masks.sum()),
            )
            masks = masks & region
        logger.info("object %d: %d voxels", obj.label, int(masks.sum()))
        if best is not None and probability is not None:
            assign_claimed_voxels(labels, best, masks, probability, obj.label)
        else:
            labels[masks] = obj.label
        slice_iou[obj.label] = {int(k): float(v) for k, v in sorted(scores.items())}
        stop_reasons[obj.label] = reasons
        if probability is not None and return_probabilities:
            probabilities.append(probability)
    label_volume = labels_to_file_grid(labels, display, volume)
    if probabilities:
        channels = [
            _float_to_file_grid(probability, display, volume) for probability in probabilities
        ]
        probability_array = np.stack(channels, axis=-1)
    else:
        probability_array = np.zeros((*label_volume.spatial_shape[:3], 0), dtype=np.float16)
    return PromptedSegmentation(
        labels=label_volume,
        probability=Volume(
            array=probability_array,
            affine=volume.affine.copy(),
            metadata={"kind": "probability"},
        ),
        label_ids=tuple(obj.label for obj in objects) if probabilities else (),
        slice_iou=slice_iou,
        stop_reasons=stop_reasons,
        stopped_early=stopped_early,
    )


def _propagate(
    stack: SliceStack, prompt: _DisplayPrompt, config: PropagationConfig, keep: bool
) -> PropagationResult:
    return propagate_prompt(
        stack,
        key_slice=prompt.key_slice,
        prompt=prompt.prompt,
        first_slice=prompt.first_slice,
        last_slice=prompt.last_slice,
        bounding_box_xyxy=prompt.bounding_box_xyxy,
        config=config,
        keep_probabilities=keep,
    )


def region_to_display(region_ijk: np.ndarray, display: DisplayVolume, volume: Volume) -> np.ndarray:
    """A bool mask on ``volume``'s grid ``(i, j, k)`` → ``(n_slices, rows, columns)`` display.

    Raises
    ------
    InputError
        If the mask's shape is not the volume's.
    """
    shape = tuple(volume.spatial_shape[:3])
    if region_ijk.shape != shape:
        raise InputError(
            f"a prompt's region must have the image's shape {shape}, not {region_ijk.shape}"
        )
    moved = reorient(volume.with_array(region_ijk.astype(np.uint8)), axis_codes(display.volume))
    return np.stack([to_display_slice(s) for s in np.moveaxis(moved.array, 2, 0)]) > 0


def _float_to_file_grid(array: np.ndarray, display: DisplayVolume, volume: Volume) -> np.ndarray:
    """``(n_slices, rows, columns)`` display values → ``(i, j, k)`` on ``volume``'s grid."""
    display_array = np.stack([from_display_slice(s) for s in array], axis=2)
    moved = reorient(display.volume.with_array(display_array), axis_codes(volume))
    return np.ascontiguousarray(moved.array)


def labels_to_file_grid(labels: np.ndarray, display: DisplayVolume, volume: Volume) -> Volume:
    """Map ``(n_slices, rows, columns)`` display labels back onto ``volume``'s grid."""
    display_array = np.stack([from_display_slice(s) for s in labels], axis=2)
    moved = reorient(display.volume.with_array(display_array), axis_codes(volume))
    check_same_grid(volume, moved, what="label map")
    return Volume(
        array=np.ascontiguousarray(moved.array),
        affine=volume.affine.copy(),
        metadata={"kind": "label_map"},
    )


def segment_automatically(
    model: SamModel,
    volume: Volume,
    config: SamSegmentConfig | None = None,
    *,
    slices: list[int] | None = None,
) -> Volume:
    """Automatic mode on every slice (or the given ones): an instance label map.

    Each slice is segmented on its own (objects are not linked across slices); labels are
    numbered 1..N over the whole volume, slice by slice.

    Returns
    -------
    Volume
        uint32 label map ``(i, j, k)`` with ``volume``'s affine.
    """
    config = config or SamSegmentConfig()
    display = to_display_volume(volume)
    stack = build_slice_stack(
        model, display, config.intensity, precision=config.precision, max_cached=1
    )
    labels = np.zeros((stack.n_slices, *stack.slice_shape), dtype=np.uint32)
    offset = 0
    indices = list(range(stack.n_slices)) if slices is None else list(slices)
    for index in progress(indices, description="sam --auto", unit="slice"):
        slice_labels = segment_everything(model, stack.embedding(index), config.auto)
        labels[index] = np.where(slice_labels > 0, slice_labels + offset, 0)
        offset += int(slice_labels.max())
    return labels_to_file_grid(labels, display, volume)
