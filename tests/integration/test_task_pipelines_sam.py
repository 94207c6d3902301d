"""The brain-tumour and CT-organ pipelines end to end on the bundled real cases.

Floors are the figures measured with these exact configs (README "Brain tumour" and
"CT organs", benchmarks/RESULTS.md) minus a margin for CPU/bf16 numeric differences.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.core import load_config
from medseg.io import read_image, read_nifti
from medseg.runner import PipelineConfig, run_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLAIR = "data/tumor_brats2015/brats2015_brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz"

MARGIN = 0.03
# Measured with pipelines/tumour_sam_box.yaml (bf16, CPU): whole tumour, core, enhancing, oedema.
TUMOUR_DICE = {
    "whole_tumour": 0.893,
    "tumour_core": 0.938,
    "enhancing_tumour": 0.870,
    "oedema": 0.815,
}
# Measured with pipelines/ct_organs.yaml on ct_small_01 (silver-standard reference).
CT_SMALL_DICE = {"liver": 0.924, "spleen": 0.959, "kidney_right": 0.914, "kidney_left": 0.928}


def _case_metrics(out: Path, case_id: str) -> dict[str, float]:
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == 1, summary["failures"]
    return summary["cases"][case_id]["metrics"]


def test_tumour_pipeline_scores_the_brats_regions(repo_root: Path, tmp_path: Path) -> None:
    config = load_config(repo_root / "pipelines/tumour_sam_box.yaml", PipelineConfig)
    run_pipeline(config, root=repo_root, out_dir=tmp_path, workers=0)
    metrics = _case_metrics(tmp_path, "brats2013_pat0001")
    for region, measured in TUMOUR_DICE.items():
        assert metrics[f"dice_{region}"] >= measured - MARGIN, region
    assert np.isfinite(metrics["hd95_mm_whole_tumour"])
    case_dir = tmp_path / "cases/brats2013_pat0001"
    mask = read_nifti(case_dir / "mask.nii.gz")
    flair = read_image(repo_root / FLAIR)
    np.testing.assert_allclose(mask.affine, flair.affine)
    assert set(np.unique(mask.array).tolist()) <= {0, 1, 2, 4}
    details = json.loads((case_dir / "metrics.json").read_text())["metrics"]
    assert set(details) == {"whole_tumour", "tumour_core", "enhancing_tumour", "oedema"}


def test_ct_organs_pipeline_on_the_3_mm_case(repo_root: Path, tmp_path: Path) -> None:
    config = load_config(repo_root / "pipelines/ct_organs.yaml", PipelineConfig)
    config = config.model_copy(
        update={"cases": config.cases.model_copy(update={"ids": ["ct_small_01"]})}
    )
    run_pipeline(config, root=repo_root, out_dir=tmp_path, workers=0)
    metrics = _case_metrics(tmp_path, "ct_small_01")
    for organ, measured in CT_SMALL_DICE.items():
        assert metrics[f"dice_{organ}"] >= measured - MARGIN, organ
