"""``vessel`` evaluation of the runner (retina: pixel and topology metrics inside the case's
field-of-view mask). The ``trained_model`` segmenter lives in :mod:`medseg.segment`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medseg.evaluation import compute_vessel_metrics
from medseg.io import Case, Volume, collapse_grey_channels, read_image, reorient_like

logger = logging.getLogger(__name__)

#: Vessel metrics written per case and averaged over the run.
VESSEL_LOGGED = ("f1", "auc_roc", "sensitivity", "specificity", "accuracy", "cldice")


def read_field_of_view(case: Case, *, root: Path, image: Volume) -> Volume | None:
    """The case's ROI/FOV mask (manifest ``roi``) on the image's grid, or None."""
    if case.roi is None:
        return None
    path = root / case.roi
    fov = read_image(path)
    fov = fov.with_array(collapse_grey_channels(fov.array, what="field-of-view mask", path=path))
    return reorient_like(fov, image, what="field-of-view mask")


def _squeeze_2d(array: np.ndarray, image: Volume) -> np.ndarray:
    """2D images are one-slice volumes; metrics (clDice skeletons) need the 2D plane."""
    return array[:, :, 0] if image.spatial_shape[2] == 1 else array


def compute_case_vessel_metrics(
    prediction: Volume,
    reference: Volume,
    *,
    image: Volume,
    fov: Volume | None,
    probabilities: Volume | None,
) -> dict[str, float]:
    """Vessel metrics of one case: every non-zero label is vessel, scored inside the FOV.

    The vessel probability is ``1 - p(background)`` of ``probabilities`` (channel 0 is
    background), so AUC-ROC works for two-class and multi-class models alike; without
    probabilities AUC is NaN. A case without a FOV mask is scored over the whole image.
    """
    vessel_probability = None
    if probabilities is not None:
        channels = np.asarray(probabilities.array)
        vessel_probability = _squeeze_2d(1.0 - channels[..., 0].astype(np.float32), image)
    metrics = compute_vessel_metrics(
        _squeeze_2d(np.asarray(prediction.array) > 0, image),
        _squeeze_2d(np.asarray(reference.array) > 0, image),
        fov=_squeeze_2d(np.asarray(fov.array) > 0, image) if fov is not None else None,
        probabilities=vessel_probability,
    )
    return metrics.to_dict()
