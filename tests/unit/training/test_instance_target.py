"""Training an instance model (background / interior / boundary) on real DSB2018 images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.core import ConfigError
from medseg.evaluation import compute_dice
from medseg.io import DatasetManifest, Split, load_manifest
from medseg.models import Checkpoint, build_model, load_checkpoint, save_checkpoint
from medseg.training import (
    LAST_CHECKPOINT,
    ModelSection,
    TrainConfig,
    network_from_plans,
    select_training_cases,
    train_model,
    training_plans,
)
from medseg.training._fit import load_initial_weights
from medseg.training._trainer import _batches, _build_datasets
from medseg.transforms import (
    Plans,
    TrainingTarget,
    compute_fingerprint,
    compute_layout,
    plan_from_fingerprint,
)

HELD_OUT = "dsb_1740b0a67ca337ea"


@pytest.fixture(scope="module")
def dsb_manifest(repo_root: Path) -> DatasetManifest:
    manifest = load_manifest(repo_root / "data_manifests/cells_dsb2018.yaml")
    keep = {"dsb_54fe2d3416951cbc", "dsb_0287e7ee5b007c91", HELD_OUT}  # three 256² images
    return manifest.model_copy(update={"cases": [c for c in manifest.cases if c.id in keep]})


@pytest.fixture(scope="module")
def dsb_plans(dsb_manifest: DatasetManifest, repo_root: Path) -> Plans:
    plans = plan_from_fingerprint(compute_fingerprint(dsb_manifest, root=repo_root), features=4)
    kernels, strides = compute_layout(patch_size=[64, 64], spacing_mm=[1.0, 1.0], max_depth=2)
    return plans.model_copy(
        update={"patch_size": [64, 64], "strides": strides, "kernel_sizes": kernels}
    )


def _config(**overrides: object) -> TrainConfig:
    values: dict = {
        "manifest": "data_manifests/cells_dsb2018.yaml",
        "model": ModelSection(name="unet2d", features=4),
        "target": "instance_boundary",
        "train_splits": [Split.TRAIN],
        "validation_splits": [],
        "validation_case_ids": [HELD_OUT],
        "epochs": 2,
        "iterations_per_epoch": 3,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "device": "cpu",
    }
    values.update(overrides)
    return TrainConfig(**values)


def test_held_out_cases_leave_training(dsb_manifest: DatasetManifest) -> None:
    train, validation = select_training_cases(_config(), dsb_manifest)
    assert HELD_OUT not in {c.id for c in train}
    assert [c.id for c in validation] == [HELD_OUT]
    with pytest.raises(ConfigError, match="validation_case_ids"):
        select_training_cases(_config(validation_case_ids=["dsb_nope"]), dsb_manifest)


def test_batches_hold_three_classes_and_the_cache_is_not_modified(
    dsb_manifest: DatasetManifest, dsb_plans: Plans, repo_root: Path
) -> None:
    config = _config()
    plans = training_plans(dsb_plans, config)
    dataset, validation, _, _ = _build_datasets(config, plans, dsb_manifest, repo_root, 4)
    cached = [
        {k: np.asarray(v).copy() for k, v in item.items() if k in ("image", "label")}
        for item in dataset._cache
    ]
    assert cached[0]["label"].max() > 2  # the cache holds instance ids, not classes
    for batch in _batches(dataset, batch_size=4, iterations=3, seed=0, num_workers=0):
        assert tuple(batch["image"].shape) == (4, 3, 64, 64)
        assert set(np.unique(batch["label"].numpy())) <= {0, 1, 2}
    for before, item in zip(cached, dataset._cache, strict=True):  # copy_cache=False is safe
        np.testing.assert_array_equal(before["image"], np.asarray(item["image"]))
        np.testing.assert_array_equal(before["label"], np.asarray(item["label"]))
    assert set(np.unique(validation[0]["label"])) == {0, 1, 2}


def test_instance_model_checkpoint(
    tmp_path: Path, dsb_manifest: DatasetManifest, dsb_plans: Plans, repo_root: Path
) -> None:
    result = train_model(
        _config(),
        plans=dsb_plans,
        manifest=dsb_manifest,
        root=repo_root,
        out_dir=tmp_path,
        score_fn=compute_dice,
    )
    assert result.step_losses[-1] < result.step_losses[0]
    assert len(result.validation) == 2
    checkpoint = load_checkpoint(tmp_path / LAST_CHECKPOINT)
    assert checkpoint.target is TrainingTarget.INSTANCE_BOUNDARY
    assert checkpoint.is_instance_model
    assert checkpoint.network.out_channels == 3
    assert checkpoint.label_names == {1: "nucleus_interior", 2: "nucleus_boundary"}
    assert checkpoint.training_config["validation_case_ids"] == [HELD_OUT]


def test_core_target_batches_hold_four_classes(
    dsb_manifest: DatasetManifest, dsb_plans: Plans, repo_root: Path
) -> None:
    config = _config(target="instance_core")
    plans = training_plans(dsb_plans, config)
    assert plans.out_channels == 4
    dataset, validation, _, _ = _build_datasets(config, plans, dsb_manifest, repo_root, 4)
    seen: set[int] = set()
    for batch in _batches(dataset, batch_size=4, iterations=3, seed=0, num_workers=0):
        seen |= set(np.unique(batch["label"].numpy()).tolist())
    assert seen == {0, 1, 2, 3}
    assert set(np.unique(validation[0]["label"])) == {0, 1, 2, 3}


def test_contact_weight_batches_carry_the_weight_map(
    dsb_manifest: DatasetManifest, dsb_plans: Plans, repo_root: Path
) -> None:
    config = _config(target="instance_core", contact_weight=5.0)
    plans = training_plans(dsb_plans, config)
    dataset, _, _, _ = _build_datasets(config, plans, dsb_manifest, repo_root, 4)
    contact = 0.0
    for batch in _batches(dataset, batch_size=4, iterations=3, seed=0, num_workers=0):
        weight = batch["weight"].numpy()
        assert weight.shape == tuple(batch["label"].shape)
        assert set(np.unique(weight)) <= {1.0, 5.0}
        contact += float((weight == 5.0).mean())
        # the band is background or boundary (and the few core pixels of tiny nuclei)
        label = batch["label"].numpy()
        assert (label[weight == 5.0] != 1).mean() > 0.9
    assert contact > 0  # these images have touching nuclei
    with pytest.raises(ConfigError, match="contact_weight"):
        _build_datasets(_config(target="semantic", contact_weight=5.0), dsb_plans,
                        dsb_manifest, repo_root, 4)  # fmt: skip


def test_training_with_contact_weight_records_it(
    tmp_path: Path, dsb_manifest: DatasetManifest, dsb_plans: Plans, repo_root: Path
) -> None:
    result = train_model(
        _config(target="instance_core", contact_weight=5.0),
        plans=dsb_plans,
        manifest=dsb_manifest,
        root=repo_root,
        out_dir=tmp_path,
    )
    assert all(np.isfinite(result.step_losses))
    assert result.step_losses[-1] < result.step_losses[0]
    assert load_checkpoint(tmp_path / LAST_CHECKPOINT).training_config["contact_weight"] == 5.0


def test_init_weights_grow_a_three_class_head_into_four(
    tmp_path: Path, dsb_manifest: DatasetManifest, dsb_plans: Plans
) -> None:
    three = training_plans(dsb_plans, _config())
    network = network_from_plans(three, _config())
    torch.manual_seed(0)
    source = build_model(network).eval()
    path = save_checkpoint(
        Checkpoint(network=network, plans=three, state_dict=source.state_dict()),
        tmp_path / "three.pt",
    )
    config = _config(target="instance_core", init_weights=str(path))
    four = network_from_plans(training_plans(dsb_plans, config), config)
    grown = build_model(four).eval()
    load_initial_weights(grown, path)
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before, after = source(image), grown(image)
    assert after.shape[1] == 4
    torch.testing.assert_close(after[:, :3], before)  # the old classes are unchanged
    torch.testing.assert_close(after[:, 3], before[:, 1])  # the core starts as the interior
    other = build_model(
        network_from_plans(three, _config(model=ModelSection(name="unet2d", features=8)))
    )
    with pytest.raises(ConfigError, match="init_weights"):
        load_initial_weights(other, path)
