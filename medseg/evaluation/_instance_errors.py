"""Why instances fail: split, merged, missed and spurious nuclei, and recall by nucleus size.

The IoU ≥ 0.5 matching of :mod:`medseg.evaluation._instance` says how many instances are wrong;
this module says what kind of wrong, from the pixel overlaps of the unmatched ones:

- a reference instance left unmatched (FN) is **merged** when at least half of it lies in one
  predicted instance that also holds at least half of another reference instance; **split**
  when no predicted instance covers half of it but predicted instances together do (it was
  cut into pieces); **missed** when predicted instances cover less than half of it; otherwise
  **misshapen** (one prediction covers most of it, but with IoU < 0.5);
- a predicted instance left unmatched (FP) is a **fragment** when at least half of it lies in
  one reference instance (a piece of a split nucleus, or a second detection), **merge** when it
  holds at least half of two or more reference instances, **spurious** when at least half of
  it is reference background, otherwise **other**.

Recall at IoU 0.5 is also given per reference size class (area in pixels), which shows whether
small or large nuclei are lost.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from medseg.core import GeometryError
from medseg.evaluation._instance import compute_instance_iou, match_instances

#: Upper bounds (exclusive) of the reference size classes, in pixels; the last is open.
SIZE_CLASSES_PX: tuple[int, ...] = (80, 400, 1500)


def _size_class_names(bounds: Sequence[int]) -> list[str]:
    names = [f"<{bounds[0]} px"]
    names += [f"{lo}-{hi} px" for lo, hi in itertools.pairwise(bounds)]
    return [*names, f">={bounds[-1]} px"]


@dataclass
class InstanceErrors:
    """Error kinds of one image (or summed over images) at IoU 0.5; counts of instances."""

    fn_merged: int = 0
    fn_split: int = 0
    fn_missed: int = 0
    fn_misshapen: int = 0
    fp_fragment: int = 0
    fp_merge: int = 0
    fp_spurious: int = 0
    fp_other: int = 0
    #: size class name → [reference instances, of which matched]
    by_size: dict[str, list[int]] = field(default_factory=dict)

    def __add__(self, other: InstanceErrors) -> InstanceErrors:
        by_size = {k: list(v) for k, v in self.by_size.items()}
        for name, (n, tp) in other.by_size.items():
            counts = by_size.setdefault(name, [0, 0])
            counts[0] += n
            counts[1] += tp
        fields = [
            "fn_merged",
            "fn_split",
            "fn_missed",
            "fn_misshapen",
            "fp_fragment",
            "fp_merge",
            "fp_spurious",
            "fp_other",
        ]
        values = {name: getattr(self, name) + getattr(other, name) for name in fields}
        return InstanceErrors(**values, by_size=by_size)

    def recall_by_size(self) -> dict[str, float]:
        """Size class → matched / reference instances (NaN for an empty class)."""
        return {k: (tp / n if n else float("nan")) for k, (n, tp) in self.by_size.items()}


def compute_instance_errors(
    prediction: np.ndarray,
    reference: np.ndarray,
    *,
    size_classes_px: Sequence[int] = SIZE_CLASSES_PX,
) -> InstanceErrors:
    """Classify the unmatched instances of one image (see the module docstring).

    Parameters
    ----------
    prediction, reference
        Instance label maps (0 background), same shape.
    size_classes_px
        Increasing upper bounds of the reference size classes, in pixels.

    Raises
    ------
    GeometryError
        If the maps differ in shape.
    """
    if prediction.shape != reference.shape:
        raise GeometryError(
            f"prediction shape {prediction.shape} must equal reference shape {reference.shape}"
        )
    iou, ref_ids, pred_ids = compute_instance_iou(prediction, reference)
    rows, cols, _ = match_instances(iou, iou_threshold=0.5)
    ref_index = {int(v): i for i, v in enumerate(ref_ids)}
    pred_index = {int(v): i for i, v in enumerate(pred_ids)}
    n_ref, n_pred = len(ref_ids), len(pred_ids)
    # overlap[i, j]: pixels of reference i (row 0: background) in prediction j (col 0: none)
    ref_pos = np.zeros(int(reference.max(initial=0)) + 1, np.int64)
    for value, i in ref_index.items():
        ref_pos[value] = i + 1
    pred_pos = np.zeros(int(prediction.max(initial=0)) + 1, np.int64)
    for value, j in pred_index.items():
        pred_pos[value] = j + 1
    flat = (
        ref_pos[reference.ravel().astype(np.int64)] * (n_pred + 1)
        + pred_pos[prediction.ravel().astype(np.int64)]
    )
    overlap = np.bincount(flat, minlength=(n_ref + 1) * (n_pred + 1)).reshape(n_ref + 1, n_pred + 1)
    ref_area = overlap[1:].sum(axis=1)
    pred_area = overlap[:, 1:].sum(axis=0)
    inside = overlap[1:, 1:]  # (n_ref, n_pred)
    half_of_ref = inside * 2 >= ref_area[:, None]  # pred j holds at least half of ref i
    refs_held = half_of_ref.sum(axis=0)  # per prediction: references it holds half of
    errors = InstanceErrors()
    matched_refs, matched_preds = set(rows.tolist()), set(cols.tolist())
    for i in range(n_ref):
        if i in matched_refs:
            continue
        holders = np.flatnonzero(half_of_ref[i])
        covered = inside[i].sum()
        if holders.size and refs_held[holders].max() >= 2:
            errors.fn_merged += 1
        elif not holders.size and covered * 2 >= ref_area[i]:
            errors.fn_split += 1
        elif covered * 2 < ref_area[i]:
            errors.fn_missed += 1
        else:
            errors.fn_misshapen += 1
    for j in range(n_pred):
        if j in matched_preds:
            continue
        if refs_held[j] >= 2:
            errors.fp_merge += 1
        elif inside[:, j].size and inside[:, j].max() * 2 >= pred_area[j]:
            errors.fp_fragment += 1
        elif overlap[0, j + 1] * 2 >= pred_area[j]:
            errors.fp_spurious += 1
        else:
            errors.fp_other += 1
    names = _size_class_names(size_classes_px)
    classes = np.searchsorted(np.asarray(size_classes_px), ref_area, side="right")
    matched = np.zeros(n_ref, bool)
    matched[list(matched_refs)] = True
    errors.by_size = {
        name: [int((classes == k).sum()), int((matched & (classes == k)).sum())]
        for k, name in enumerate(names)
    }
    return errors
