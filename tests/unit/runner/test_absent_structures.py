"""A structure the segmenter found absent is marked so in the pipeline's label sidecar."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.io import Case, Volume
from medseg.runner._stages import CaseContext, _sidecar_entries


def test_absent_structures_are_marked_in_the_sidecar_entries(tmp_path: Path) -> None:
    prediction = np.zeros((4, 4, 4), dtype=np.uint16)
    prediction[1:3, 1:3, 1:3] = 5
    context = CaseContext(
        case=Case(id="c1", image="c1.nii.gz"),
        labels={},
        root=tmp_path,
        out_dir=tmp_path,
        prediction=Volume(array=prediction, affine=np.eye(4)),
        structures={5: "liver", 2: "kidney_right", 10: "lungs"},
        absent=("kidney_right", "lung_left", "lung_right", "lungs"),
    )
    entries = _sidecar_entries(context)
    assert entries is not None
    assert [(e["label"], e["name"], e.get("absent", False)) for e in entries] == [
        (2, "kidney_right", True),
        (5, "liver", False),
        (10, "lungs", True),
    ]
