"""Per-structure quality-control flags: where a reviewer should look first.

Each flag is computed from the prediction alone (no reference) and carries the value that
raised it, the threshold and a one-line reason:

- ``low_mean_confidence``: the mean probability inside the mask (softmax of the class, or
  SAM's sigmoid of the mask logit) is below ``min_mean_confidence``;
- ``tta_disagreement``: the mean share of mirrored TTA passes that disagree with the
  averaged prediction, inside the mask, is above ``max_tta_disagreement``;
- ``low_predicted_iou``: SAM's decoder predicted a mean IoU below ``min_predicted_iou``
  over the slices it kept;
- ``volume_out_of_range``: the volume (mL) lies outside the plausible adult range of that
  structure (``volume_range_ml``; structures without a range are not checked);
- ``empty``: the structure was asked for but no voxel was predicted;
- ``fragmented``: the largest connected component (26-connected in 3D, 8 in 2D) holds less
  than ``min_largest_component_fraction`` of the mask;
- ``touches_image_border``: mask voxels lie on the outer faces of the image (the object may
  continue outside the field of view);
- ``touches_box_border``: on at least ``max_box_border_slice_fraction`` of the mask's slices
  the mask reaches the in-plane sides of its prompt box (the box may cut the object);
- ``propagation_stopped_early``: SAM's slice-to-slice propagation ended before the slice
  range the prompt gave.

Every flag names a slice ``k`` (file axis 2) where it shows most, for overlays.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field
from scipy import ndimage

from medseg.core import ConfigModel, InputError
from medseg.segment import Confidence

#: Plausible adult volumes in mL (wide bounds around published CT volumetry: liver
#: ~1.0-2.5 L, spleen ~0.1-0.5 L, kidney ~0.1-0.25 L each), so that a flag means a gross
#: error (a missed half, a leak into a neighbour), not an unusual patient.
PLAUSIBLE_VOLUME_ML: dict[str, tuple[float, float]] = {
    "liver": (600.0, 4000.0),
    "spleen": (40.0, 1500.0),
    "kidney_left": (50.0, 450.0),
    "kidney_right": (50.0, 450.0),
    "pancreas": (20.0, 200.0),
    "gallbladder": (5.0, 200.0),
    "stomach": (50.0, 2500.0),
    "aorta": (20.0, 600.0),
    "brain": (800.0, 1900.0),
}


class QCFlagName(str, enum.Enum):
    """The closed vocabulary of QC flags (see the module docstring)."""

    LOW_MEAN_CONFIDENCE = "low_mean_confidence"
    TTA_DISAGREEMENT = "tta_disagreement"
    LOW_PREDICTED_IOU = "low_predicted_iou"
    VOLUME_OUT_OF_RANGE = "volume_out_of_range"
    EMPTY = "empty"
    FRAGMENTED = "fragmented"
    TOUCHES_IMAGE_BORDER = "touches_image_border"
    TOUCHES_BOX_BORDER = "touches_box_border"
    PROPAGATION_STOPPED_EARLY = "propagation_stopped_early"


class QCThresholds(ConfigModel):
    """Thresholds of the QC flags (``evaluate.qc`` in a pipeline)."""

    min_mean_confidence: float = Field(default=0.9, ge=0.0, le=1.0)
    max_tta_disagreement: float = Field(default=0.05, ge=0.0, le=1.0)
    min_predicted_iou: float = Field(default=0.8, ge=0.0, le=1.0)
    min_largest_component_fraction: float = Field(default=0.9, ge=0.0, le=1.0)
    max_box_border_slice_fraction: float = Field(default=0.25, ge=0.0, le=1.0)
    volume_range_ml: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(PLAUSIBLE_VOLUME_ML)
    )


@dataclass(frozen=True)
class QCFlag:
    """One raised flag: what, the value that raised it, its threshold and why."""

    name: QCFlagName
    value: float
    threshold: float | str
    reason: str
    slice_k: int | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``name`` as its string value)."""
        return {
            "name": self.name.value,
            "value": _finite_or_none(self.value),
            "threshold": self.threshold,
            "reason": self.reason,
            "slice_k": self.slice_k,
        }


@dataclass(frozen=True)
class StructureQC:
    """QC of one structure: summary values and the flags they raised."""

    structure: str
    volume_ml: float
    n_components: int
    largest_component_fraction: float
    mean_confidence: float | None = None
    confidence_dice: float | None = None
    mean_tta_disagreement: float | None = None
    mean_predicted_iou: float | None = None
    flags: tuple[QCFlag, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "volume_ml": round(self.volume_ml, 3),
            "n_components": self.n_components,
            "largest_component_fraction": round(self.largest_component_fraction, 4),
            "mean_confidence": _rounded(self.mean_confidence),
            "confidence_dice": _rounded(self.confidence_dice),
            "mean_tta_disagreement": _rounded(self.mean_tta_disagreement),
            "mean_predicted_iou": _rounded(self.mean_predicted_iou),
            "flags": [flag.to_dict() for flag in self.flags],
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _slices_of(mask: np.ndarray) -> np.ndarray:
    """Per-slice voxel counts along the last axis (a 2D mask is one slice)."""
    return mask.reshape(-1, mask.shape[-1]).sum(axis=0) if mask.ndim == 3 else mask.sum()[None]


def _per_slice_mean(values: np.ndarray, mask: np.ndarray, *, min_voxels: int = 20) -> np.ndarray:
    """Mean of ``values`` inside ``mask`` on each slice (NaN where fewer than
    ``min_voxels``, or all slices if none reaches it)."""
    if mask.ndim == 2:
        mask, values = mask[..., None], values[..., None]
    counts = mask.sum(axis=(0, 1)).astype(np.float64)
    sums = np.where(mask, values, 0.0).sum(axis=(0, 1), dtype=np.float64)
    keep = counts >= min(min_voxels, counts.max(initial=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(keep & (counts > 0), sums / np.maximum(counts, 1), np.nan)


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    labelled, count = ndimage.label(mask, structure=structure)
    return labelled, int(count)


def _border_voxels(mask: np.ndarray) -> tuple[int, list[str], np.ndarray]:
    """Mask voxels on the outer faces (axes of size 1 ignored): count, axes, per slice."""
    border = np.zeros(mask.shape, dtype=bool)
    axes = []
    for axis, size in enumerate(mask.shape):
        if size <= 1:
            continue
        low = [slice(None)] * mask.ndim
        high = [slice(None)] * mask.ndim
        low[axis], high[axis] = slice(0, 1), slice(size - 1, size)
        touched = mask[tuple(low)].any() or mask[tuple(high)].any()
        border[tuple(low)] = True
        border[tuple(high)] = True
        if touched:
            axes.append("ijk"[axis])
    on_border = mask & border
    return int(on_border.sum()), axes, _slices_of(on_border)


def _box_border_slices(mask: np.ndarray, box_ijk: tuple[float, ...]) -> tuple[int, int]:
    """(slices where the mask reaches an in-plane side of the box, slices with mask)."""
    i0, j0 = math.floor(box_ijk[0] + 0.5), math.floor(box_ijk[1] + 0.5)
    i1, j1 = math.floor(box_ijk[3] + 0.5), math.floor(box_ijk[4] + 0.5)
    volume = mask if mask.ndim == 3 else mask[..., None]
    touching = 0
    present = 0
    for k in range(volume.shape[2]):
        plane = volume[:, :, k]
        if not plane.any():
            continue
        present += 1
        ii, jj = np.nonzero(plane)
        if ii.min() <= i0 or ii.max() >= i1 or jj.min() <= j0 or jj.max() >= j1:
            touching += 1
    return touching, present


def compute_structure_qc(
    mask: np.ndarray,
    *,
    structure: str,
    spacing_mm: tuple[float, ...],
    thresholds: QCThresholds | None = None,
    probability: np.ndarray | None = None,
    disagreement: np.ndarray | None = None,
    slice_iou: Mapping[int, float] | None = None,
    stopped_early: str | None = None,
    box_ijk: tuple[float, ...] | None = None,
) -> StructureQC:
    """QC values and flags of one structure's predicted mask.

    Parameters
    ----------
    mask
        Boolean mask ``(i, j)`` or ``(i, j, k)`` on the image grid (file axes).
    structure
        Structure name (looked up in ``thresholds.volume_range_ml``).
    spacing_mm
        Voxel size along the mask's axes in mm.
    probability
        The structure's probability on the same grid, float in [0, 1], or None.
    disagreement
        Mirror-TTA disagreement on the same grid in [0, 1], or None.
    slice_iou
        SAM: slice k → the decoder's predicted IoU.
    stopped_early
        SAM: why propagation stopped before its given slice range, or None.
    box_ijk
        The prompt's 3D box ``(i0, j0, k0, i1, j1, k1)`` in voxel indices, or None.

    Raises
    ------
    InputError
        If an array's shape differs from the mask's.
    """
    thresholds = thresholds or QCThresholds()
    mask = np.asarray(mask, dtype=bool)
    for name, array in (("probability", probability), ("disagreement", disagreement)):
        if array is not None and np.shape(array) != mask.shape:
            raise InputError(
                f"{structure}: {name} must have the mask's shape {mask.shape}, "
                f"not {np.shape(array)}"
            )
    voxel_ml = float(np.prod(spacing_mm[: mask.ndim])) / 1000.0
    n_voxels = int(mask.sum())
    volume_ml = n_voxels * voxel_ml
    per_slice = _slices_of(mask)
    biggest_slice = int(np.argmax(per_slice)) if n_voxels else None
    flags: list[QCFlag] = []
    if n_voxels == 0:
        flags.append(
            QCFlag(QCFlagName.EMPTY, 0.0, "> 0 voxels", f"no voxel of {structure} predicted")
        )
        return StructureQC(structure, 0.0, 0, 0.0, flags=tuple(flags))
    labelled, n_components = _components(mask)
    sizes = np.bincount(labelled.ravel())[1:]
    largest_fraction = float(sizes.max() / n_voxels)
    mean_confidence = confidence_dice = None
    if probability is not None:
        p = np.asarray(probability, dtype=np.float64)
        mean_confidence = float(p[mask].mean())
        confidence_dice = float(2.0 * p[mask].sum() / (p.sum() + n_voxels))
        if mean_confidence < thresholds.min_mean_confidence:
            means = _per_slice_mean(p, mask)
            flags.append(
                QCFlag(
                    QCFlagName.LOW_MEAN_CONFIDENCE,
                    mean_confidence,
                    thresholds.min_mean_confidence,
                    f"mean probability inside the mask {mean_confidence:.3f} < "
                    f"{thresholds.min_mean_confidence:g}",
                    _nan_arg(means, lowest=True),
                )
            )
    mean_disagreement = None
    if disagreement is not None:
        d = np.asarray(disagreement, dtype=np.float64)
        mean_disagreement = float(d[mask].mean())
        if mean_disagreement > thresholds.max_tta_disagreement:
            flags.append(
                QCFlag(
                    QCFlagName.TTA_DISAGREEMENT,
                    mean_disagreement,
                    thresholds.max_tta_disagreement,
                    f"mirrored TTA passes disagree on {100 * mean_disagreement:.1f} % of the "
                    f"mask on average (> {100 * thresholds.max_tta_disagreement:g} %)",
                    _nan_arg(_per_slice_mean(d, mask), lowest=False),
                )
            )
    mean_iou = None
    if slice_iou:
        mean_iou = float(np.mean(list(slice_iou.values())))
        if mean_iou < thresholds.min_predicted_iou:
            worst = min(slice_iou, key=lambda k: slice_iou[k])
            flags.append(
                QCFlag(
                    QCFlagName.LOW_PREDICTED_IOU,
                    mean_iou,
                    thresholds.min_predicted_iou,
                    f"SAM's mean predicted IoU {mean_iou:.3f} < {thresholds.min_predicted_iou:g} "
                    f"(lowest {slice_iou[worst]:.3f} on slice {worst})",
                    int(worst),
                )
            )
    volume_range = thresholds.volume_range_ml.get(structure)
    if volume_range is not None and mask.ndim == 3:
        low, high = volume_range
        if not low <= volume_ml <= high:
            flags.append(
                QCFlag(
                    QCFlagName.VOLUME_OUT_OF_RANGE,
                    volume_ml,
                    f"{low:g}-{high:g} mL",
                    f"volume {volume_ml:.1f} mL outside the plausible {low:g}-{high:g} mL",
                    biggest_slice,
                )
            )
    if largest_fraction < thresholds.min_largest_component_fraction:
        outside = mask & (labelled != int(np.argmax(sizes)) + 1)
        flags.append(
            QCFlag(
                QCFlagName.FRAGMENTED,
                largest_fraction,
                thresholds.min_largest_component_fraction,
                f"{n_components} components; the largest holds {100 * largest_fraction:.1f} % "
                f"of the mask (< {100 * thresholds.min_largest_component_fraction:g} %)",
                int(np.argmax(_slices_of(outside))),
            )
        )
    on_border, axes, border_slices = _border_voxels(mask)
    if on_border:
        flags.append(
            QCFlag(
                QCFlagName.TOUCHES_IMAGE_BORDER,
                float(on_border),
                "0 voxels",
                f"{on_border} mask voxels on the image border (axes {', '.join(axes)}): the "
                "object may continue outside the image",
                int(np.argmax(border_slices)),
            )
        )
    if box_ijk is not None:
        touching, present = _box_border_slices(mask, box_ijk)
        share = touching / present if present else 0.0
        if present and share >= thresholds.max_box_border_slice_fraction:
            flags.append(
                QCFlag(
                    QCFlagName.TOUCHES_BOX_BORDER,
                    share,
                    thresholds.max_box_border_slice_fraction,
                    f"the mask reaches its prompt box's sides on {touching} of {present} "
                    f"slices ({100 * share:.0f} % ≥ "
                    f"{100 * thresholds.max_box_border_slice_fraction:g} %): the box may cut "
                    "the object",
                    biggest_slice,
                )
            )
    if stopped_early:
        kept = sorted(slice_iou) if slice_iou else [biggest_slice or 0]
        flags.append(
            QCFlag(
                QCFlagName.PROPAGATION_STOPPED_EARLY,
                1.0,
                "reach the given slices",
                f"propagation stopped early: {stopped_early}",
                int(kept[-1] if "before the given slice" in stopped_early else kept[0]),
            )
        )
    return StructureQC(
        structure=structure,
        volume_ml=volume_ml,
        n_components=n_components,
        largest_component_fraction=largest_fraction,
        mean_confidence=mean_confidence,
        confidence_dice=confidence_dice,
        mean_tta_disagreement=mean_disagreement,
        mean_predicted_iou=mean_iou,
        flags=tuple(flags),
    )


def _nan_arg(values: np.ndarray, *, lowest: bool) -> int | None:
    if values.size == 0 or np.all(np.isnan(values)):
        return None
    return int(np.nanargmin(values) if lowest else np.nanargmax(values))


def compute_segmentation_qc(
    labels: np.ndarray,
    structures: Mapping[int, str],
    *,
    spacing_mm: tuple[float, ...],
    confidence: Confidence | None = None,
    thresholds: QCThresholds | None = None,
) -> dict[str, StructureQC]:
    """QC of every structure of a semantic label map (file axes, image grid).

    ``structures`` maps label values to names; each is checked, also when absent from
    ``labels`` (flag ``empty``). A 2D image stored as ``(i, j, 1)`` is checked in 2D.
    """
    labels = np.asarray(labels)
    squeeze = labels.ndim == 3 and labels.shape[2] == 1
    spacing = tuple(spacing_mm[:2]) if squeeze else tuple(spacing_mm[: labels.ndim])

    def _grid(array: np.ndarray | None) -> np.ndarray | None:
        if array is None:
            return None
        return array[..., 0] if squeeze and array.ndim == 3 else array

    disagreement = (
        _grid(np.asarray(confidence.disagreement.array, dtype=np.float32))
        if confidence is not None and confidence.disagreement is not None
        else None
    )
    results = {}
    for label_id, name in structures.items():
        probability = confidence.structure_probability(label_id) if confidence else None
        mask = _grid(labels == label_id)
        if mask is None:  # pragma: no cover - labels is an array
            continue
        results[name] = compute_structure_qc(
            mask,
            structure=name,
            spacing_mm=spacing,
            thresholds=thresholds,
            probability=_grid(probability),
            disagreement=disagreement,
            slice_iou=confidence.slice_iou.get(label_id) if confidence else None,
            stopped_early=confidence.stopped_early.get(label_id) if confidence else None,
            box_ijk=confidence.boxes_ijk.get(label_id) if confidence else None,
        )
    return results
