"""Error kinds of unmatched instances, worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.core import GeometryError
from medseg.evaluation import compute_instance_errors


def _scene() -> tuple[np.ndarray, np.ndarray]:
    reference = np.zeros((40, 40), np.uint16)
    reference[0:10, 0:10] = 1  # split in two halves by the prediction
    reference[20:24, 0:4] = 2  # merged with 3 into one prediction
    reference[20:24, 5:9] = 3
    reference[30:34, 30:34] = 4  # missed
    reference[0:6, 30:36] = 5  # found exactly
    prediction = np.zeros_like(reference)
    prediction[0:10, 0:5] = 1  # half of reference 1 (IoU 0.5: matches it)
    prediction[0:10, 5:10] = 2  # the other half: a fragment
    prediction[20:24, 0:9] = 3  # holds references 2 and 3
    prediction[0:6, 30:36] = 4
    prediction[12:16, 20:24] = 5  # spurious
    return prediction, reference


def test_error_kinds_by_hand() -> None:
    prediction, reference = _scene()
    errors = compute_instance_errors(prediction, reference)
    # reference 1 matches prediction 1 (IoU 50/100 = 0.5); 2 and 3 are lost to a merge
    assert (errors.fn_merged, errors.fn_split, errors.fn_missed, errors.fn_misshapen) == (
        2,
        0,
        1,
        0,
    )
    assert (errors.fp_fragment, errors.fp_merge, errors.fp_spurious, errors.fp_other) == (
        1,
        1,
        1,
        0,
    )
    # sizes: 100 px (80-400), 16, 16, 16 (<80), 36 (<80); matched: 1 and 5
    assert errors.by_size == {
        "<80 px": [4, 1],
        "80-400 px": [1, 1],
        "400-1500 px": [0, 0],
        ">=1500 px": [0, 0],
    }
    assert errors.recall_by_size()["<80 px"] == pytest.approx(0.25)


def test_split_nucleus_in_three() -> None:
    reference = np.zeros((12, 12), np.uint16)
    reference[0:12, 0:12] = 1
    prediction = np.zeros_like(reference)
    prediction[0:12, 0:4] = 1
    prediction[0:12, 4:8] = 2
    prediction[0:12, 8:12] = 3
    errors = compute_instance_errors(prediction, reference)
    assert errors.fn_split == 1
    assert errors.fp_fragment == 3


def test_sum_over_images_and_shape_check() -> None:
    prediction, reference = _scene()
    one = compute_instance_errors(prediction, reference)
    two = one + one
    assert two.fn_merged == 4
    assert two.by_size["<80 px"] == [8, 2]
    assert one.by_size["<80 px"] == [4, 1]  # the sum leaves its terms alone
    with pytest.raises(GeometryError, match="must equal"):
        compute_instance_errors(prediction[:10], reference)
