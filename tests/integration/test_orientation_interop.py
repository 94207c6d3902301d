"""Issue 24 item 1: masks on the same physical grid in another axis order compare exactly
(reorient, never resample), and what medseg writes from a DICOM series has dcm2niix's
array order, so it overlays dcm2niix's conversion and TotalSegmentator's masks."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import main
from medseg.core import ExitCode, load_config
from medseg.io import Case, Split, Volume, read_image, reorient, reorient_like, write_nifti
from medseg.runner import PipelineConfig
from medseg.runner._stages import CaseContext, export

pytestmark = pytest.mark.integration

DCM2NIIX = shutil.which("dcm2niix") or "/usr/bin/dcm2niix"
LIVER = 5


@pytest.fixture(scope="module")
def reference_path(repo_root: Path) -> Path:
    """TotalSegmentator's labels, made on dcm2niix's conversion of the series (LAS)."""
    return repo_root / "data/ct_totalsegmentator/example_seg_dicom.nii.gz"


@pytest.fixture(scope="module")
def dcm2niix_image(ct_dicom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> nib.Nifti1Image:
    out = tmp_path_factory.mktemp("dcm2niix")
    subprocess.run(
        [DCM2NIIX, "-z", "y", "-b", "n", "-f", "ref", "-o", str(out), str(ct_dicom_dir)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("ref*.nii.gz")
    return nib.load(str(path))


def _dice_rows(metrics_csv: Path) -> dict[str, float]:
    with metrics_csv.open() as handle:
        return {
            row["label"]: float(row["value"])
            for row in csv.DictReader(handle)
            if row["metric"] == "dice"
        }


def test_evaluate_matches_lps_prediction_to_las_reference_exactly(
    reference_path: Path, tmp_path: Path
) -> None:
    reference = read_image(reference_path)
    assert "".join(nib.aff2axcodes(reference.affine)) == "LAS"
    liver = reference.with_array((reference.array == LIVER).astype(np.uint8) * LIVER)
    lps = reorient(liver, "LPS")  # the order the demo used to write: DICOM (column, row, slice)
    assert not np.allclose(lps.affine, reference.affine, atol=1.0)
    pred = write_nifti(lps, tmp_path / "pred.nii.gz")
    code = main(
        ["evaluate", "--pred", str(pred), "--ref", str(reference_path), "--out",
         str(tmp_path / "eval"), "--labels", str(_labels_yaml(tmp_path)), "--no-tracking"]
    )  # fmt: skip
    assert code == ExitCode.OK
    assert _dice_rows(tmp_path / "eval" / "metrics.csv") == {"liver": 1.0}


def _labels_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "labels.yaml"
    path.write_text(f"labels: {{{LIVER}: liver}}\n")
    return path


def test_evaluate_names_a_real_resample(
    reference_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = read_image(reference_path)
    coarse = Volume(
        array=np.ascontiguousarray(reference.array[::2, ::2, :]),
        affine=reference.affine @ np.diag([2.0, 2.0, 1.0, 1.0]),
    )
    pred = write_nifti(coarse, tmp_path / "pred.nii.gz")
    code = main(
        ["evaluate", "--pred", str(pred), "--ref", str(reference_path), "--out",
         str(tmp_path / "eval"), "--no-tracking"]
    )  # fmt: skip
    assert code == ExitCode.GEOMETRY
    err = capsys.readouterr().err
    assert str(pred) in err
    assert "needs a resample" in err
    assert "shape (256, 256, 20) vs (512, 512, 20)" in err


def test_run_writes_dicom_outputs_in_dcm2niix_order(
    repo_root: Path,
    ct_dicom_dir: Path,
    reference_path: Path,
    dcm2niix_image: nib.Nifti1Image,
    tmp_path: Path,
) -> None:
    config = load_config(repo_root / "pipelines/demo_ct_liver.yaml", PipelineConfig)
    config = config.model_copy(
        update={"export": config.export.model_copy(update={"overlay_png": False})}
    )
    image = read_image(ct_dicom_dir)
    reference = read_image(reference_path)
    # a prediction on the series' own grid (DICOM order), as every segmenter returns it
    prediction = reorient_like(reference, image)
    assert not np.allclose(prediction.affine, reference.affine, atol=1.0)
    context = CaseContext(
        case=Case(id="ct_dicom_01", image="unused", split=Split.DEMO),
        labels={},
        root=repo_root,
        out_dir=tmp_path,
        image=image,
        prediction=prediction,
    )
    export(context, config)
    mask = nib.load(str(tmp_path / "mask.nii.gz"))
    written_image = nib.load(str(tmp_path / "image.nii.gz"))
    for written in (mask, written_image):
        np.testing.assert_allclose(written.affine, dcm2niix_image.affine, atol=1e-3)
        assert written.shape == dcm2niix_image.shape
    np.testing.assert_array_equal(
        np.asanyarray(written_image.dataobj), np.asanyarray(dcm2niix_image.dataobj)
    )
    # the mask drops onto TotalSegmentator's labels (made on dcm2niix's output) voxel for voxel
    np.testing.assert_array_equal(np.asanyarray(mask.dataobj), reference.array)
