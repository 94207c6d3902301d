"""plan → train → infer on bundled real data; predictions keep the input's grid."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import main
from medseg.core import ExitCode
from medseg.evaluation import compute_dice
from medseg.io import Split, load_manifest, read_image, read_nifti, to_output_layout
from medseg.models import load_checkpoint
from medseg.training import LAST_CHECKPOINT, ModelSection, TrainConfig, train_model
from medseg.transforms import Plans, compute_fingerprint, compute_layout, plan_from_fingerprint

pytestmark = pytest.mark.integration


def _shrink(plans: Plans, patch: list[int], max_depth: int) -> Plans:
    kernels, strides = compute_layout(
        patch_size=patch, spacing_mm=plans.target_spacing_mm, max_depth=max_depth
    )
    return plans.model_copy(
        update={"patch_size": patch, "strides": strides, "kernel_sizes": kernels}
    )


@pytest.fixture(scope="module")
def spleen_checkpoint(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    manifest = load_manifest(repo_root / "data_manifests/ct_msd_spleen.yaml")
    fingerprint = compute_fingerprint(manifest, root=repo_root, splits=[Split.TEST])
    plans = _shrink(plan_from_fingerprint(fingerprint, features=4), [64, 64, 16], 3)
    out = tmp_path_factory.mktemp("spleen_run")
    config = TrainConfig(
        manifest="data_manifests/ct_msd_spleen.yaml",
        model=ModelSection(name="unet3d", features=4),
        train_splits=[Split.TEST],
        validation_splits=[],
        epochs=1,
        iterations_per_epoch=2,
        batch_size=2,
        device="cpu",
    )
    train_model(config, plans=plans, manifest=manifest, root=repo_root, out_dir=out)
    return out / LAST_CHECKPOINT


@pytest.fixture(scope="module")
def drive_checkpoint(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    manifest = load_manifest(repo_root / "data_manifests/retina_drive.yaml")
    manifest = manifest.model_copy(update={"cases": manifest.cases[:2]})
    fingerprint = compute_fingerprint(manifest, root=repo_root)
    plans = _shrink(plan_from_fingerprint(fingerprint, features=4), [128, 128], 3)
    out = tmp_path_factory.mktemp("drive_run")
    config = TrainConfig(
        manifest="data_manifests/retina_drive.yaml",
        model=ModelSection(name="unet2d", features=4),
        validation_splits=[],
        epochs=1,
        iterations_per_epoch=2,
        batch_size=2,
        device="cpu",
    )
    train_model(config, plans=plans, manifest=manifest, root=repo_root, out_dir=out)
    return out / LAST_CHECKPOINT


def test_infer_on_real_ct_keeps_shape_and_affine(
    spleen_checkpoint: Path, repo_root: Path, tmp_path: Path
) -> None:
    source = repo_root / "data/ct_msd_spleen/sub-spleen2_ct.nii.gz"
    code = main(
        ["infer", "--model", str(spleen_checkpoint), str(source), "--out", str(tmp_path),
         "--probabilities", "--device", "cpu"]
    )  # fmt: skip
    assert code == ExitCode.OK
    written = nib.load(tmp_path / "sub-spleen2_ct_labels.nii.gz")
    original = nib.load(source)
    assert written.shape == original.shape
    np.testing.assert_allclose(written.affine, original.affine, atol=1e-4)
    assert written.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1}
    with np.load(tmp_path / "sub-spleen2_ct_probabilities.npz") as stored:
        probabilities = stored["probabilities"]
        np.testing.assert_allclose(stored["affine"], original.affine, atol=1e-4)
        assert list(stored["class_names"]) == ["background", "spleen"]
    assert probabilities.shape == (*original.shape, 2)
    assert probabilities.dtype == np.float16
    values = probabilities.astype(np.float32)
    np.testing.assert_allclose(values.sum(axis=-1), 1.0, atol=2e-3)
    labels = np.asarray(written.dataobj)
    clear = np.abs(values[..., 1] - values[..., 0]) > 1e-2  # float16 rounding decides ties
    np.testing.assert_array_equal(labels[clear], values.argmax(axis=-1)[clear])


def test_infer_on_dicom_ct_resamples_back_to_the_source_grid(
    spleen_checkpoint: Path, ct_dicom_dir: Path, tmp_path: Path
) -> None:
    """The DICOM CT (0.98 × 0.98 × 2 mm) differs from the plans' 0.8 × 0.8 × 5 mm grid."""
    source = read_image(ct_dicom_dir)
    plans = load_checkpoint(spleen_checkpoint).plans
    assert not np.allclose(source.spacing_mm, plans.target_spacing_mm, atol=0.05)
    code = main(
        ["infer", "--model", str(spleen_checkpoint.parent), str(ct_dicom_dir),
         "--out", str(tmp_path), "--device", "cpu", "--precision", "bf16"]
    )  # fmt: skip
    assert code == ExitCode.OK
    written = read_nifti(tmp_path / f"{ct_dicom_dir.name}_labels.nii.gz")
    # masks from a DICOM series are written in dcm2niix's array order: same grid, flipped axes
    expected = to_output_layout(source)
    assert written.spatial_shape == expected.spatial_shape
    np.testing.assert_allclose(written.affine, expected.affine, atol=1e-3)


def test_2d_model_runs_on_a_real_drive_image(
    drive_checkpoint: Path, repo_root: Path, tmp_path: Path
) -> None:
    source = repo_root / "data/retina_drive/test/images/01_test.tif"
    code = main(
        ["infer", "--model", str(drive_checkpoint), str(source), "--out", str(tmp_path),
         "--tta", "--device", "cpu"]
    )  # fmt: skip
    assert code == ExitCode.OK
    written = read_image(tmp_path / "01_test_labels.tif")  # TIFF in, TIFF out
    image = read_image(source)
    assert written.spatial_shape == image.spatial_shape == (565, 584, 1)
    np.testing.assert_allclose(written.affine, image.affine)
    assert set(np.unique(written.array)) <= {0, 1}


def test_infer_refuses_a_3d_model_on_a_2d_image(
    spleen_checkpoint: Path, repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = repo_root / "data/retina_drive/test/images/01_test.tif"
    code = main(["infer", "--model", str(spleen_checkpoint), str(source), "--out", str(tmp_path)])
    assert code == ExitCode.CONFIG
    assert "trained on 3D images" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_plan_train_infer_evaluate_on_drive(repo_root: Path, tmp_path: Path) -> None:
    """The whole chain through the CLI on DRIVE with a tiny budget (2 steps)."""
    plans_path = tmp_path / "plans.yaml"
    assert main(
        ["plan", str(repo_root / "data_manifests/retina_drive.yaml"), "--out", str(plans_path),
         "--memory-gb", "0.02", "--features", "4"]
    ) == ExitCode.OK  # fmt: skip
    config = tmp_path / "train.yaml"
    config.write_text(
        "manifest: data_manifests/retina_drive.yaml\n"
        f"plans: {plans_path}\n"
        "model: {name: unet2d, features: 4}\n"
        "train_splits: [train]\nvalidation_splits: [test]\n"
        "epochs: 1\niterations_per_epoch: 2\nbatch_size: 2\ndevice: cpu\n"
    )
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == ExitCode.OK
    assert (run / "checkpoint_best.pt").is_file()
    assert (run / "mlflow.db").is_file()
    image = repo_root / "data/retina_drive/test/images/02_test.tif"
    assert main(["infer", "--model", str(run), str(image), "--out", str(tmp_path)]) == 0
    prediction = read_image(tmp_path / "02_test_labels.tif").array
    reference = read_image(repo_root / "data/retina_drive/test/1st_manual/02_manual1.gif").array
    dice = compute_dice(prediction > 0, reference > 0)
    assert 0.0 <= dice <= 1.0
    # a second train into the same folder without --resume/--overwrite is refused
    assert main(["train", str(config), "--out", str(run)]) == ExitCode.OUTPUT_EXISTS
    # without validation the result file is still strict JSON: null, not NaN
    no_validation = config.read_text().replace("validation_splits: [test]", "validation_splits: []")
    config.write_text(no_validation)
    assert main(["train", str(config), "--out", str(tmp_path / "run_no_val")]) == ExitCode.OK
    text = (tmp_path / "run_no_val" / "train_result.json").read_text()
    result = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert result["best_val_dice"] is None
    assert result["validation"] == []
