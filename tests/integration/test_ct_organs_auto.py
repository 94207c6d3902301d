"""``pipelines/ct_organs_auto.yaml`` end to end on the bundled DICOM CT (never seen by the
atlas): text-named organs located without the reference, scored, tracked, exported as SEG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.core import load_config
from medseg.export import read_dicom_seg, read_source_series
from medseg.io import read_nifti
from medseg.runner import PipelineConfig, run_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Measured with this config on ct_dicom_01 (bf16, CPU; benchmarks/RESULTS.md "Text-prompted
# CT organs"); the floor leaves room for CPU/bf16 numeric differences.
FLOORS = {"liver": 0.93, "spleen": 0.90}


def test_ct_organs_auto_on_the_dicom_slab(repo_root: Path, tmp_path: Path) -> None:
    config = load_config(repo_root / "pipelines/ct_organs_auto.yaml", PipelineConfig)
    config = config.model_copy(
        update={"cases": config.cases.model_copy(update={"ids": ["ct_dicom_01"]})}
    )
    run_pipeline(config, root=repo_root, out_dir=tmp_path, workers=0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["done"] == 1, summary["failures"]
    metrics = summary["cases"]["ct_dicom_01"]["metrics"]
    for organ, floor in FLOORS.items():
        assert metrics[f"dice_{organ}"] >= floor, organ
    case_dir = tmp_path / "cases" / "ct_dicom_01"
    details = json.loads((case_dir / "metrics.json").read_text())["metrics"]
    assert set(details) == {"liver", "spleen", "kidney_left", "kidney_right", "lungs"}
    mask = read_nifti(case_dir / "mask.nii.gz")
    assert set(np.unique(mask.array).tolist()) <= {0, 1, 2, 3, 5, 10}
    # the SEG references the (UID-completed) series and holds each written label by name
    series = read_source_series(case_dir / "source_dicom")
    labels, names = read_dicom_seg(case_dir / "seg.dcm", series)
    assert {"liver", "spleen"} <= set(names.values())
    assert (labels.array > 0).sum() == (mask.array > 0).sum()
    assert (tmp_path / "mlflow.db").is_file()
