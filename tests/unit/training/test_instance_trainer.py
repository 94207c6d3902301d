"""Mask R-CNN through medseg train / infer / evaluate on real DSB2018 nuclei crops."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from medseg.cli import main
from medseg.core import ConfigError, ExitCode
from medseg.evaluation import compute_instance_metrics
from medseg.io import DatasetManifest, Split, load_manifest, read_image
from medseg.models import load_checkpoint
from medseg.training import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    ModelSection,
    TrainConfig,
    load_instance_items,
    network_from_plans,
    train_model,
)
from medseg.transforms import Plans, compute_fingerprint, plan_from_fingerprint

#: Small 256×256 fluorescence images (25, 9 and 14 nuclei) and two test images.
TRAIN_CASES = ("dsb_54fe2d3416951cbc", "dsb_1740b0a67ca337ea", "dsb_d2815f2f616d92be")


def _f1(prediction: np.ndarray, reference: np.ndarray) -> float:
    return compute_instance_metrics(prediction, reference).at(0.5).f1


@pytest.fixture(scope="module")
def dsb_manifest(repo_root: Path) -> DatasetManifest:
    manifest = load_manifest(repo_root / "data_manifests" / "cells_dsb2018.yaml")
    train = [c for c in manifest.cases if c.id in TRAIN_CASES]
    test = [c for c in manifest.cases if c.split is Split.TEST][:1]
    return manifest.model_copy(update={"cases": train + test})


@pytest.fixture(scope="module")
def dsb_plans(dsb_manifest: DatasetManifest, repo_root: Path) -> Plans:
    plans = plan_from_fingerprint(compute_fingerprint(dsb_manifest, root=repo_root))
    return plans.model_copy(update={"patch_size": [96, 96], "batch_size": 2})


def _config(**overrides: object) -> TrainConfig:
    values: dict = {
        "manifest": "data_manifests/cells_dsb2018.yaml",
        "model": ModelSection(
            name="maskrcnn",
            backbone="resnet18",
            fpn_channels=32,
            anchor_sizes_px=[8, 16, 32, 64, 128],
        ),
        "train_splits": [Split.TRAIN],
        "validation_splits": [],
        "epochs": 2,
        "iterations_per_epoch": 4,
        "learning_rate": 1e-3,
        "device": "cpu",
        "seed": 3,
    }
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def trained_run(
    dsb_manifest: DatasetManifest,
    dsb_plans: Plans,
    repo_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[float], list[tuple[int, float]]]:
    out = tmp_path_factory.mktemp("maskrcnn_run")
    result = train_model(
        _config(validation_splits=[Split.TEST], validate_every_epochs=2),
        plans=dsb_plans,
        manifest=dsb_manifest,
        root=repo_root,
        out_dir=out,
        instance_score_fn=_f1,
    )
    return out, result.step_losses, result.validation


def test_instance_items_keep_ids_and_torchvision_layout(
    dsb_manifest: DatasetManifest, dsb_plans: Plans, repo_root: Path
) -> None:
    case = dsb_manifest.cases[0]
    (item,) = load_instance_items(dsb_manifest, [case], plans=dsb_plans, root=repo_root)
    label = read_image(repo_root / case.label).array[:, :, 0]  # (column, row)
    assert item["image"].shape == (3, label.shape[1], label.shape[0])  # (C, row, column)
    assert np.array_equal(item["label"][0], label.T)
    assert abs(float(item["image"].mean())) < 1e-3  # per-image z-score from the plans


def test_maskrcnn_trains_and_its_loss_falls(trained_run: tuple) -> None:
    out, losses, validation = trained_run
    assert len(losses) == 8
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.2, losses
    assert [epoch for epoch, _ in validation] == [1]
    assert 0.0 <= validation[0][1] <= 1.0
    checkpoint = load_checkpoint(out / LAST_CHECKPOINT)
    assert checkpoint.network.name == "maskrcnn"
    assert checkpoint.network.anchor_sizes_px == [8, 16, 32, 64, 128]
    assert checkpoint.label_names == {1: "nucleus"}
    assert {"optimizer", "scheduler"} <= set(checkpoint.resume_state)
    assert load_checkpoint(out / BEST_CHECKPOINT).best_metric == pytest.approx(validation[0][1])


def test_maskrcnn_resume_gives_the_same_next_step_loss(
    dsb_manifest: DatasetManifest, dsb_plans: Plans, repo_root: Path, tmp_path: Path
) -> None:
    config = _config(iterations_per_epoch=2)
    kwargs = {"plans": dsb_plans, "manifest": dsb_manifest, "root": repo_root}
    straight = train_model(config, out_dir=tmp_path / "straight", **kwargs)
    first = train_model(config, out_dir=tmp_path / "killed", stop_after_epochs=1, **kwargs)
    assert first.step_losses == pytest.approx(straight.step_losses[:2], rel=1e-5)
    resumed = train_model(config, out_dir=tmp_path / "killed", resume=True, **kwargs)
    assert resumed.epochs_completed == 2
    assert resumed.step_losses == pytest.approx(straight.step_losses[2:], rel=1e-4)


def test_maskrcnn_needs_2d_rgb_plans(tiny_spleen_plans: Plans) -> None:
    with pytest.raises(ConfigError, match="2D instance segmenter"):
        network_from_plans(tiny_spleen_plans, _config())


def test_infer_and_evaluate_instance_maps(
    trained_run: tuple, dsb_manifest: DatasetManifest, repo_root: Path, tmp_path: Path
) -> None:
    run_dir = trained_run[0]
    image_path = repo_root / dsb_manifest.cases[-1].image
    argv = ["infer", "--model", str(run_dir), str(image_path), "--out", str(tmp_path / "a")]
    code = main([*argv, "--format", "nifti"])  # a PNG by default (issue 24): NIfTI on request
    assert code == ExitCode.OK
    source = read_image(image_path)
    written = nib.load(tmp_path / "a" / f"{image_path.stem}_labels.nii.gz")
    assert written.shape == source.array.shape[:3]
    assert np.allclose(written.affine, source.affine)
    labels = np.asarray(written.dataobj)
    assert np.issubdtype(labels.dtype, np.integer)  # stored in the smallest integer type
    assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1))  # ids 0..N
    # manifest mode names outputs by case id, which medseg evaluate pairs with references
    manifests = tmp_path / "data_manifests"
    manifests.mkdir()
    (tmp_path / "data").symlink_to(repo_root / "data")
    subset = dsb_manifest.model_dump(mode="json", exclude_none=True)
    (manifests / "dsb_subset.yaml").write_text(yaml.safe_dump(subset), encoding="utf-8")
    manifest_path = manifests / "dsb_subset.yaml"
    code = main(
        ["infer", "--model", str(run_dir / LAST_CHECKPOINT), "--manifest", str(manifest_path),
         "--splits", "test", "--out", str(tmp_path / "b")]
    )  # fmt: skip
    assert code == ExitCode.OK
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        f"{dsb_manifest.cases[-1].id}.nii.gz"
    ]
    code = main(
        ["evaluate", "--pred", str(tmp_path / "b"), "--manifest", str(manifest_path),
         "--kind", "instance", "--out", str(tmp_path / "eval"), "--tracking-uri",
         f"sqlite:///{tmp_path / 'mlflow.db'}"]
    )  # fmt: skip
    assert code == ExitCode.OK
    assert (tmp_path / "eval" / "summary.json").is_file()


def test_maskrcnn_holds_out_validation_case_ids(
    dsb_manifest: DatasetManifest,
    dsb_plans: Plans,
    repo_root: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = _config(validation_case_ids=[TRAIN_CASES[0]], epochs=1, iterations_per_epoch=1)
    with caplog.at_level("INFO", logger="medseg.training"):
        result = train_model(
            config,
            plans=dsb_plans,
            manifest=dsb_manifest,
            root=repo_root,
            out_dir=tmp_path / "run",
            instance_score_fn=_f1,
        )
    assert "on 2 image(s), validating on 1" in caplog.text
    assert [epoch for epoch, _ in result.validation] == [0]
    with pytest.raises(ConfigError, match="not among the labelled cases"):
        train_model(
            _config(validation_case_ids=["nope"]),
            plans=dsb_plans,
            manifest=dsb_manifest,
            root=repo_root,
            out_dir=tmp_path / "run2",
        )


def test_instance_batches_follow_sampling_probabilities() -> None:
    import torch

    from medseg.training._instance_trainer import _sample_batch

    label = np.zeros((1, 16, 16), dtype=np.int32)
    label[0, 4:10, 4:10] = 1
    items = [
        {"image": np.full((3, 16, 16), float(i), dtype=np.float32), "label": label}
        for i in range(3)
    ]
    images, _ = _sample_batch(
        items,
        lambda item: item,
        np.random.default_rng(0),
        batch_size=6,
        device=torch.device("cpu"),
        probabilities=np.array([0.0, 0.0, 1.0]),
    )
    assert [float(image[0, 0, 0]) for image in images] == [2.0] * 6
