"""`medseg evaluate` end to end on the real CT labels vs a perturbed copy, with MLflow."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from medseg.cli import main
from medseg.core import ExitCode
from medseg.evaluation import METRIC_DEFINITIONS, compute_segmentation_metrics

pytestmark = pytest.mark.integration

MANIFEST = "data_manifests/ct_totalsegmentator.yaml"
REFERENCE = "data/ct_totalsegmentator/example_seg.nii.gz"


def _shift(labels: np.ndarray, offset: tuple[int, int, int]) -> np.ndarray:
    """Translate without wrap-around (voxels moved out are lost, new ones are background)."""
    out = np.zeros_like(labels)
    src = tuple(slice(max(-o, 0), n - max(o, 0)) for o, n in zip(offset, labels.shape, strict=True))
    dst = tuple(slice(max(o, 0), n - max(-o, 0)) for o, n in zip(offset, labels.shape, strict=True))
    out[dst] = labels[src]
    return out


@pytest.fixture(scope="module")
def perturbed_prediction(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prediction folder holding ct_small_01 shifted by one voxel, liver eroded, aorta gone."""
    image = nib.load(repo_root / REFERENCE)
    labels = np.asarray(image.dataobj).astype(np.uint8)
    prediction = _shift(labels, (1, 0, 1))
    liver = prediction == 5
    prediction[liver & ~ndimage.binary_erosion(liver)] = 0
    prediction[prediction == 52] = 0
    folder = tmp_path_factory.mktemp("pred")
    nib.save(nib.Nifti1Image(prediction, image.affine), folder / "ct_small_01.nii.gz")
    return folder


def test_evaluate_real_ct_writes_outputs_and_mlflow_run(
    repo_root: Path, perturbed_prediction: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--pred",
            str(perturbed_prediction),
            "--manifest",
            str(repo_root / MANIFEST),
            "--out",
            str(out),
            "--model",
            "shifted-copy",
        ]
    )
    assert code == ExitCode.OK
    printed = capsys.readouterr().out
    assert "liver" in printed
    assert "MLflow run" in printed

    # metrics.csv: one row per case × label × metric, values agree with the library
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    labels_present = {row["label"] for row in rows}
    assert {"liver", "aorta", "spleen"} <= labels_present
    assert len(rows) == len(labels_present) * len(METRIC_DEFINITIONS)
    liver = {row["metric"]: float(row["value"]) for row in rows if row["label"] == "liver"}
    reference = np.asarray(nib.load(repo_root / REFERENCE).dataobj)
    prediction = np.asarray(nib.load(perturbed_prediction / "ct_small_01.nii.gz").dataobj)
    expected = compute_segmentation_metrics(
        prediction == 5, reference == 5, spacing_mm=(3.0, 3.0, 3.0)
    )
    assert liver["dice"] == pytest.approx(expected.dice)
    assert liver["hd95_mm"] == pytest.approx(expected.hd95_mm)
    aorta = [row for row in rows if row["label"] == "aorta"]
    assert {row["empty"] for row in aorta} == {"prediction_empty"}
    assert next(r["value"] for r in aorta if r["metric"] == "hd95_mm") == "inf"

    # summary.json: statistics and definitions, strict JSON
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cases"] == 1
    assert summary["definitions"]["hd95_mm"].startswith("95th-percentile Hausdorff")
    assert summary["metrics"]["liver"]["dice"]["mean"] == pytest.approx(expected.dice)
    assert summary["metrics"]["aorta"]["hd95_mm"]["n_infinite"] == 1
    assert summary["empty_cases"]["aorta"]["prediction_empty"] == 1

    # report.html: self-contained (no external references)
    report = (out / "report.html").read_text()
    assert "id='summary-table'" in report
    assert report.count("data:image/png;base64,") >= 4
    assert "src='http" not in report
    assert 'src="http' not in report

    # the MLflow run, read back through the client
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("medseg-evaluate")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["model"] == "shifted-copy"
    assert run.data.params["dataset"] == "ct_totalsegmentator"
    assert len(run.data.params["dataset_manifest_sha256"]) == 16
    assert run.data.params["medseg_version"]
    assert run.data.tags["task"] == "evaluate"
    assert run.data.tags["reference_standard"] == "silver"
    assert run.data.metrics["dice/liver/mean"] == pytest.approx(expected.dice)
    assert run.data.metrics["hd95_mm/aorta/n_infinite"] == 1.0
    assert "hd95_mm/aorta/mean" not in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"metrics.csv", "summary.json", "report.html"}


def test_evaluate_files_with_label_file_and_no_tracking(
    repo_root: Path, perturbed_prediction: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.yaml"
    labels.write_text("labels:\n  5: liver\n  2: kidney_right\n  90: brain\n")
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "--pred",
        str(perturbed_prediction / "ct_small_01.nii.gz"),
        "--ref",
        str(repo_root / REFERENCE),
        "--labels",
        str(labels),
        "--out",
        str(out),
        "--no-tracking",
    ]
    assert main(args) == ExitCode.OK
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["metrics"]) == {"liver", "kidney_right", "brain"}
    assert summary["empty_cases"]["brain"]["both_empty"] == 1  # requested, absent: flagged
    assert summary["metrics"]["brain"]["dice"]["n_undefined"] == 1
    assert not (out / "mlflow.db").exists()
    assert main(args) == ExitCode.OUTPUT_EXISTS  # no silent overwrite
    assert main([*args, "--overwrite"]) == ExitCode.OK


def test_missing_prediction_and_phi_like_case_ids_are_refused(
    repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    references = tmp_path / "ref"
    predictions = tmp_path / "pred"
    references.mkdir()
    predictions.mkdir()
    source = repo_root / REFERENCE
    for name in ("case_a", "case_b"):
        (references / f"{name}.nii.gz").write_bytes(source.read_bytes())
    (predictions / "case_a.nii.gz").write_bytes(source.read_bytes())
    args = ["evaluate", "--pred", str(predictions), "--ref", str(references)]
    assert main([*args, "--out", str(tmp_path / "o1")]) == ExitCode.INPUT
    assert "have no prediction" in capsys.readouterr().err

    (references / "case_b.nii.gz").rename(references / "SMITH^JOHN.nii.gz")
    (predictions / "SMITH^JOHN.nii.gz").write_bytes(source.read_bytes())
    assert main([*args, "--out", str(tmp_path / "o2")]) == ExitCode.TRACKING
    err = capsys.readouterr().err
    assert "SMITH" not in err
    assert "pseudonymous" in err
    assert not (tmp_path / "o2").exists()


def test_binary_masks_in_2d(repo_root: Path, tmp_path: Path) -> None:
    """DRIVE second observer vs first as 0/255 GIF masks: 2D contours, pixel spacing."""
    import shutil

    root = repo_root / "data/retina_drive/test"
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    for case in ("01", "02"):
        shutil.copy(root / f"1st_manual/{case}_manual1.gif", tmp_path / f"ref/drive_{case}.gif")
        shutil.copy(root / f"2nd_manual/{case}_manual2.gif", tmp_path / f"pred/drive_{case}.gif")
    out = tmp_path / "eval"
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")]
    assert main([*args, "--binary", "--out", str(out), "--no-tracking"]) == ExitCode.OK
    summary = json.loads((out / "summary.json").read_text())
    dice = summary["metrics"]["label_1"]["dice"]
    assert dice["n"] == 2
    assert 0.7 < dice["mean"] < 0.85
    assert math.isfinite(summary["metrics"]["label_1"]["hd95_mm"]["mean"])


def test_tracking_uri_option_overrides_the_embedded_store(
    repo_root: Path, perturbed_prediction: Path, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    out = tmp_path / "eval"
    prediction = perturbed_prediction / "ct_small_01.nii.gz"
    args = ["evaluate", "--pred", str(prediction), "--ref", str(repo_root / REFERENCE)]
    assert main([*args, "--out", str(out), "--tracking-uri", store]) == ExitCode.OK
    assert not (out / "mlflow.db").exists()
    experiment = MlflowClient(tracking_uri=store).get_experiment_by_name("medseg-evaluate")
    (run,) = MlflowClient(tracking_uri=store).search_runs([experiment.experiment_id])
    assert run.data.params["model"] == "unknown"
    assert run.data.metrics["n_cases"] == 1.0


def test_instance_evaluation_on_dsb2018_nuclei(
    repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real DSB2018 test label maps vs copies with every fourth nucleus removed."""
    import shutil

    import tifffile

    from medseg.io import read_image

    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    expected_recall = []
    for path in sorted((repo_root / "data/cells_dsb2018/test/labels").glob("*.tif"))[:3]:
        shutil.copy(path, tmp_path / "ref" / path.name)
        labels = tifffile.imread(path)
        ids = np.unique(labels[labels > 0])
        dropped = ids[3::4]
        tifffile.imwrite(
            tmp_path / "pred" / path.name, np.where(np.isin(labels, dropped), 0, labels)
        )
        expected_recall.append(1 - dropped.size / ids.size)
        assert read_image(path).array.shape[2] == 1  # read as a one-slice 2D image
    out = tmp_path / "eval"
    args = ["evaluate", "--kind", "instance", "--pred", str(tmp_path / "pred")]
    assert main([*args, "--ref", str(tmp_path / "ref"), "--out", str(out)]) == ExitCode.OK
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "instance"
    assert "DSB2018" in summary["definitions"]["accuracy_50"]
    stats = summary["metrics"]["instances"]
    assert stats["precision_50"]["mean"] == 1.0  # every kept nucleus matches itself
    assert stats["recall_50"]["mean"] == pytest.approx(np.mean(expected_recall))
    assert stats["mean_accuracy_50_95"]["mean"] == pytest.approx(np.mean(expected_recall))
    # pooled: every kept nucleus is a TP, every dropped one a FN, summed over the images
    pooled = summary["pooled"]
    assert pooled["fp_50"] == 0
    assert pooled["tp_50"] + pooled["fn_50"] == pooled["n_ref"]
    assert pooled["recall_50"] == pytest.approx(pooled["tp_50"] / pooled["n_ref"])
    assert pooled["f1_50"] == pytest.approx(
        2 * pooled["tp_50"] / (2 * pooled["tp_50"] + pooled["fn_50"])
    )
    printed = capsys.readouterr().out
    assert "pooled" in printed
    assert "mean per image" in printed
    assert f"FN {int(pooled['fn_50'])}" in printed
    report = (out / "report.html").read_text()
    assert "id='boxplot-f1_50'" in report
    assert "not a precision-recall AP" in report
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("medseg-evaluate").experiment_id])
    assert run.data.params["kind"] == "instance"
    assert run.data.metrics["f1_50/instances/mean"] > 0.8
