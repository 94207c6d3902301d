"""Overlap metrics on binary masks."""

from __future__ import annotations

import numpy as np

from medseg.core import GeometryError


def _as_binary_pair(prediction: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, ...]:
    if prediction.shape != reference.shape:
        raise GeometryError(
            f"prediction and reference must have the same shape, not {prediction.shape} "
            f"and {reference.shape}"
        )
    return np.asarray(prediction, dtype=bool), np.asarray(reference, dtype=bool)


def compute_dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice coefficient ``2|P∩R| / (|P|+|R|)`` of two binary masks.

    Returns NaN when both masks are empty (the score is undefined there; the evaluation
    layer reports that case with an explicit flag rather than inventing a value).
    """
    pred, ref = _as_binary_pair(prediction, reference)
    total = int(pred.sum()) + int(ref.sum())
    if total == 0:
        return float("nan")
    return 2.0 * int(np.logical_and(pred, ref).sum()) / total
