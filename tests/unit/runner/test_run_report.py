"""``medseg report RUN_DIR``: a run folder's report with the image under every contour and
the cases sorted by QC flags, with overlays of the flagged slices."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.cli import main
from medseg.evaluation import compute_segmentation_qc
from medseg.io import read_image, write_nifti
from medseg.runner import build_run_evaluation, write_run_report

MANIFEST = "data_manifests/ct_msd_spleen.yaml"
PIPELINE = "pipelines/ct_spleen_msd.yaml"


def _pngs(html: str, css_class: str) -> list[np.ndarray]:
    found = re.findall(
        rf"class='{css_class}'><img alt='[^']*' src='data:image/png;base64,([^']+)'", html
    )
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("L")) for b in found]


@pytest.fixture
def run_dir(repo_root: Path, tmp_path: Path) -> Path:
    """A finished one-case run: the reference cut by 3 slices as the 'prediction'."""
    run = tmp_path / "run"
    case_dir = run / "cases" / "spleen_02"
    case_dir.mkdir(parents=True)
    shutil.copy(repo_root / PIPELINE, run / "pipeline.yaml")
    reference = read_image(repo_root / "data/ct_msd_spleen/sub-spleen2_ct_seg-manual.nii.gz")
    labels = (np.asarray(reference.array) > 0).astype(np.uint8)
    ks = np.flatnonzero(labels.any(axis=(0, 1)))
    labels[:, :, ks[-3:]] = 0  # the top of the spleen missed
    mask = reference.with_array(labels)
    write_nifti(mask, case_dir / "mask.nii.gz")
    probability = np.where(labels > 0, 0.6, 0.0).astype(np.float32)[..., None]
    from medseg.segment import Confidence

    confidence = Confidence(
        probability=reference.with_array(probability),
        structure_ids=(1,),
        source="sam_sigmoid",
        stopped_early={1: f"mask_vanished at slice {ks[-4]} before the given slice {ks[-1]}"},
    )
    qc = compute_segmentation_qc(
        labels, {1: "spleen"}, spacing_mm=mask.spacing_mm, confidence=confidence
    )
    (case_dir / "qc.json").write_text(
        json.dumps({"structures": {n: q.to_dict() for n, q in qc.items()}}), encoding="utf-8"
    )
    (case_dir / "metrics.json").write_text(
        json.dumps({"case": "spleen_02", "metrics": {"spleen": {"dice": 0.9}}}), encoding="utf-8"
    )
    return run


def test_run_report_scores_the_run_with_flags_and_images(repo_root: Path, run_dir: Path) -> None:
    result = build_run_evaluation(run_dir, root=repo_root)
    assert result.case_ids == ["spleen_02"]
    assert list(result.labels.values()) == ["spleen"]
    (row,) = result.results
    assert 0.8 < row.metrics.dice < 1.0
    flags = {f["name"] for f in result.qc["spleen_02"]["spleen"]["flags"]}  # type: ignore[index, union-attr]
    assert flags == {"low_mean_confidence", "propagation_stopped_early"}

    path = write_run_report(run_dir, root=repo_root)
    html = path.read_text(encoding="utf-8")
    assert "id='qc-table'" in html
    assert "propagation stopped early" in html
    flagged = _pngs(html, "flagged-slice")
    assert len(flagged) >= 1
    worst = _pngs(html, "worst-case")
    assert len(worst) == 1
    for picture in [*flagged, *worst]:
        # the CT under the contours: many grey levels, not a mask on black
        assert len(np.unique(picture)) > 64
        assert (picture < 8).mean() < 0.5
    assert "no image was given" not in html


def test_report_command(repo_root: Path, run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(run_dir), "--root", str(repo_root)]) == 0
    assert (run_dir / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out
    assert main(["report", str(run_dir), "--root", str(repo_root)]) != 0  # exists
    assert main(["report", str(run_dir.parent), "--root", str(repo_root)]) != 0  # not a run
