"""Training loop: losses, checkpoints with context, exact resume, refusal to clobber."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.core import ConfigError, InputError, OutputExistsError
from medseg.evaluation import compute_dice
from medseg.io import Case, DatasetManifest, Split
from medseg.models import load_checkpoint
from medseg.training import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    ModelSection,
    TrainConfig,
    compute_poly_factor,
    compute_sampling_probabilities,
    network_from_plans,
    train_model,
)
from medseg.transforms import Plans


def _config(name: str = "unet3d", **overrides: object) -> TrainConfig:
    values: dict = {
        "manifest": "data_manifests/ct_msd_spleen.yaml",
        "model": ModelSection(name=name, features=4),
        "train_splits": [Split.TEST],
        "validation_splits": [Split.TEST],
        "epochs": 2,
        "iterations_per_epoch": 2,
        "learning_rate": 3e-3,
        "device": "cpu",
        "seed": 7,
    }
    values.update(overrides)
    return TrainConfig(**values)


class _Recorder:
    def __init__(self) -> None:
        self.params: dict = {}
        self.metrics: list[tuple[int | None, dict]] = []
        self.artifacts: list[str] = []

    def log_params(self, params: dict) -> None:
        self.params.update(params)

    def log_metrics(self, metrics: dict, *, step: int | None = None) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_artifact(self, path: str | Path, *, artifact_path: str | None = None) -> None:
        self.artifacts.append(Path(path).name)


def test_training_writes_checkpoints_with_plans_labels_and_config(
    tmp_path: Path, tiny_spleen_plans: Plans, spleen_manifest: DatasetManifest, repo_root: Path
) -> None:
    recorder = _Recorder()
    result = train_model(
        _config(validate_every_epochs=2, overlap=0.0),
        plans=tiny_spleen_plans,
        manifest=spleen_manifest,
        root=repo_root,
        out_dir=tmp_path,
        run_logger=recorder,
        score_fn=compute_dice,
    )
    assert result.epochs_completed == 2
    assert len(result.step_losses) == 4
    assert all(math.isfinite(v) for v in result.step_losses)
    assert [epoch for epoch, _ in result.validation] == [1]  # every 2 epochs
    assert 0.0 <= result.best_metric <= 1.0
    last = load_checkpoint(tmp_path / LAST_CHECKPOINT)
    best = load_checkpoint(tmp_path / BEST_CHECKPOINT)
    assert last.epoch == 1
    assert last.plans == tiny_spleen_plans
    assert last.label_names == {1: "spleen"}
    assert last.training_config["model"]["name"] == "unet3d"
    assert {"optimizer", "scheduler"} <= set(last.resume_state)
    assert best.best_metric == pytest.approx(result.best_metric)
    assert (tmp_path / "plans.yaml").is_file()
    assert recorder.params["model"] == "unet3d"
    assert recorder.params["patch_size"] == "32x32x8"
    assert [step for step, _ in recorder.metrics] == [0, 1]
    assert "val_dice" not in recorder.metrics[0][1]
    assert {"train_loss", "lr", "val_dice"} <= set(recorder.metrics[-1][1])
    assert recorder.metrics[1][1]["lr"] < recorder.metrics[0][1]["lr"]  # poly decay
    assert {LAST_CHECKPOINT, BEST_CHECKPOINT, "plans.yaml"} <= set(recorder.artifacts)
    network = last.build()
    with torch.no_grad():
        assert network(torch.zeros(1, 1, 32, 32, 8)).shape == (1, 2, 32, 32, 8)


def test_resume_continues_with_the_same_next_step_loss(
    tmp_path: Path, tiny_spleen_plans: Plans, spleen_manifest: DatasetManifest, repo_root: Path
) -> None:
    config = _config("dynunet", epochs=2)
    kwargs = {"plans": tiny_spleen_plans, "manifest": spleen_manifest, "root": repo_root}
    straight = train_model(config, out_dir=tmp_path / "straight", **kwargs)
    first = train_model(config, out_dir=tmp_path / "killed", stop_after_epochs=1, **kwargs)
    assert first.epochs_completed == 1
    assert first.step_losses == pytest.approx(straight.step_losses[:2], abs=1e-6)
    resumed = train_model(config, out_dir=tmp_path / "killed", resume=True, **kwargs)
    assert resumed.epochs_completed == 2
    assert len(resumed.step_losses) == 2
    assert resumed.step_losses == pytest.approx(straight.step_losses[2:], rel=1e-4)


def test_bf16_autocast_on_cpu_trains_close_to_fp32(
    tmp_path: Path, tiny_spleen_plans: Plans, spleen_manifest: DatasetManifest, repo_root: Path
) -> None:
    """``cpu_bf16`` runs the forward pass in bfloat16 (the loss in float32): same data, finite
    losses close to the float32 run's, float32 weights in the checkpoint."""
    kwargs = {"plans": tiny_spleen_plans, "manifest": spleen_manifest, "root": repo_root}
    fp32 = train_model(_config(epochs=1), out_dir=tmp_path / "fp32", **kwargs)
    bf16 = train_model(_config(epochs=1, cpu_bf16=True), out_dir=tmp_path / "bf16", **kwargs)
    assert all(math.isfinite(v) for v in bf16.step_losses)
    assert bf16.step_losses[0] == pytest.approx(fp32.step_losses[0], rel=0.05)
    assert bf16.step_losses != fp32.step_losses  # bf16 really ran
    state = load_checkpoint(tmp_path / "bf16" / LAST_CHECKPOINT).state_dict
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())


def test_existing_run_is_not_overwritten(
    tmp_path: Path, tiny_spleen_plans: Plans, spleen_manifest: DatasetManifest, repo_root: Path
) -> None:
    (tmp_path / LAST_CHECKPOINT).write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="--resume"):
        train_model(
            _config(),
            plans=tiny_spleen_plans,
            manifest=spleen_manifest,
            root=repo_root,
            out_dir=tmp_path,
        )


def test_no_training_cases_is_an_input_error(
    tmp_path: Path, tiny_spleen_plans: Plans, spleen_manifest: DatasetManifest, repo_root: Path
) -> None:
    with pytest.raises(InputError, match="no labelled cases in split"):
        train_model(
            _config(train_splits=[Split.TRAIN]),
            plans=tiny_spleen_plans,
            manifest=spleen_manifest,
            root=repo_root,
            out_dir=tmp_path,
        )


def test_network_from_plans_fills_shape_and_rejects_instance_models(
    tiny_spleen_plans: Plans,
) -> None:
    network = network_from_plans(tiny_spleen_plans, _config("dynunet"))
    assert network.in_channels == 1
    assert network.out_channels == 2
    assert network.strides == tiny_spleen_plans.strides
    assert network.kernel_sizes == tiny_spleen_plans.kernel_sizes
    with pytest.raises(ConfigError, match="instance segmenter"):
        network_from_plans(tiny_spleen_plans, _config("maskrcnn"))
    with pytest.raises(ConfigError, match="spatial_dims"):
        network_from_plans(tiny_spleen_plans, _config("unet2d"))


def test_poly_schedule() -> None:
    assert compute_poly_factor(0, epochs=10) == 1.0
    assert compute_poly_factor(5, epochs=10) == pytest.approx(0.5**0.9)
    assert compute_poly_factor(10, epochs=10) == 0.0


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tmp_path: Path, repo_root: Path) -> None:
    """torchrun, 2 processes, gloo: both ranks train, rank 0 writes the checkpoint."""
    config = tmp_path / "train.yaml"
    config.write_text(
        "manifest: data_manifests/ct_msd_spleen.yaml\n"
        f"plans: {tmp_path / 'plans.yaml'}\n"
        "model: {name: unet3d, features: 4}\n"
        "train_splits: [test]\nvalidation_splits: [test]\n"
        "epochs: 1\niterations_per_epoch: 1\nbatch_size: 1\ndevice: cpu\n"
    )
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "medseg", "plan", "data_manifests/ct_msd_spleen.yaml",
         "--splits", "test", "--memory-gb", "0.002", "--features", "4",
         "--out", str(tmp_path / "plans.yaml")],
        cwd=repo_root, env=env, check=True, capture_output=True,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29533", "-m", "medseg", "train", str(config),
         "--out", str(tmp_path / "run")],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "world_size" not in done.stderr
    checkpoint = load_checkpoint(tmp_path / "run" / LAST_CHECKPOINT)
    assert checkpoint.epoch == 0
    from mlflow.tracking import MlflowClient

    # a client, not mlflow.set_tracking_uri: that would leave MLFLOW_TRACKING_URI set for
    # the tests that run after this one in the same process
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("medseg-train")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["world_size"] == "2"


def test_preprocessing_is_cached_and_validation_is_carved_from_training(
    tiny_spleen_plans: Plans,
    spleen_manifest: DatasetManifest,
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from medseg.training._trainer import _build_datasets
    from medseg.transforms import NormalizeChannelsd

    case = spleen_manifest.cases[0]
    manifest = spleen_manifest.model_copy(
        update={"cases": [case, case.model_copy(update={"id": "spleen_copy"})]}
    )
    config = _config(validation_splits=[], validation_case_ids=["spleen_copy"])
    dataset, validation, _, probabilities = _build_datasets(
        config, tiny_spleen_plans, manifest, repo_root, batch_size=2
    )
    assert [item["case_id"] for item in validation] == ["spleen_copy"]
    assert len(dataset) == 1
    assert probabilities is None  # no sampling_weights: uniform

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("normalisation ran again after caching")

    monkeypatch.setattr(NormalizeChannelsd, "__call__", fail)
    samples = dataset[0]  # augmentation only: the cached prefix holds preprocessing
    assert tuple(samples[0]["image"].shape[1:]) == tuple(tiny_spleen_plans.patch_size)

    with pytest.raises(ConfigError, match="not among the labelled cases"):
        _build_datasets(
            _config(validation_case_ids=["nope"]),
            tiny_spleen_plans,
            spleen_manifest,
            repo_root,
            batch_size=2,
        )


def _case(case_id: str, modality: str | None) -> Case:
    return Case(id=case_id, image=f"{case_id}.png", label=f"{case_id}.tif", modality=modality)


def test_sampling_weights_by_modality() -> None:
    cases = [
        _case("a", "microscopy_fluo"),
        _case("b", "microscopy_histo"),
        _case("c", "microscopy_bright"),
        _case("d", None),  # the manifest's modality
    ]
    weights = {"microscopy_histo": 3.0, "microscopy_bright": 4.0}
    probabilities = compute_sampling_probabilities(
        cases, weights, default_modality="microscopy_fluo"
    )
    assert probabilities is not None
    # weights 1, 3, 4, 1 -> sum 9
    assert probabilities.tolist() == pytest.approx([1 / 9, 3 / 9, 4 / 9, 1 / 9])
    assert compute_sampling_probabilities(cases, {}, default_modality="x") is None
    with pytest.raises(ConfigError, match=r"'microscopy_he'.*microscopy_bright, microscopy_fluo"):
        compute_sampling_probabilities(
            cases, {"microscopy_he": 2.0}, default_modality="microscopy_fluo"
        )
    with pytest.raises(ValueError, match="greater than 0"):
        _config(sampling_weights={"microscopy_histo": 0})


def test_weighted_batches_draw_cases_in_proportion() -> None:
    from medseg.training._trainer import _batches

    dataset = [{"index": i} for i in range(3)]
    probabilities = np.array([0.1, 0.2, 0.7])
    drawn = torch.cat(
        [
            batch["index"]
            for batch in _batches(
                dataset,
                batch_size=50,
                iterations=40,
                seed=3,
                num_workers=0,
                probabilities=probabilities,
            )
        ]
    )
    counts = np.bincount(drawn.numpy(), minlength=3) / len(drawn)
    # 2000 draws: binomial standard deviation <= 0.011, so 0.04 is over 3.5 sigma
    assert np.abs(counts - probabilities).max() < 0.04
    uniform = torch.cat(
        [b["index"] for b in _batches(dataset, batch_size=50, iterations=40, seed=3, num_workers=0)]
    )
    assert np.abs(np.bincount(uniform.numpy(), minlength=3) / 2000 - 1 / 3).max() < 0.04


def test_class_weights_weigh_the_loss_per_class() -> None:
    from medseg.models import NetworkConfig
    from medseg.training._trainer import _make_loss

    network = NetworkConfig(name="unet2d", in_channels=1, out_channels=3)
    label = torch.zeros((1, 1, 4, 4), dtype=torch.long)
    label[0, 0, :2] = 1
    label[0, 0, 3, 3] = 2
    logits = torch.zeros((1, 3, 4, 4))
    logits[0, 0, 2:] = 5.0  # background right, except the class-2 pixel
    logits[0, 1, :2] = 5.0  # class 1 right; class 2 never predicted
    plain = _make_loss(network)(logits, label)
    assert _make_loss(network, class_weights=[1, 1, 1])(logits, label) == pytest.approx(
        float(plain)
    )
    # the only error is class 2's: weighing it up raises the loss, weighing it down lowers it
    assert _make_loss(network, class_weights=[1, 1, 4])(logits, label) > plain
    assert _make_loss(network, class_weights=[1, 1, 0.25])(logits, label) < plain
    with pytest.raises(ConfigError, match=r"one weight per output class \(3"):
        _make_loss(network, class_weights=[1, 2])


def test_contact_weights_weigh_the_cross_entropy_per_pixel() -> None:
    from medseg.models import NetworkConfig
    from medseg.training._trainer import _make_loss, compute_weighted_cross_entropy

    network = NetworkConfig(name="unet2d", in_channels=1, out_channels=3)
    rng = np.random.default_rng(0)
    logits = torch.as_tensor(rng.normal(size=(2, 3, 6, 6)), dtype=torch.float32)
    label = torch.as_tensor(rng.integers(0, 3, size=(2, 1, 6, 6)))
    ones = torch.ones((2, 1, 6, 6))
    reference = torch.nn.functional.cross_entropy(logits, label[:, 0])
    assert float(compute_weighted_cross_entropy(logits, label, ones)) == pytest.approx(
        float(reference), rel=1e-6
    )
    classes = torch.tensor([1.0, 2.0, 3.0])
    weighted_reference = torch.nn.functional.cross_entropy(logits, label[:, 0], weight=classes)
    assert float(
        compute_weighted_cross_entropy(logits, label, ones, class_weights=classes)
    ) == pytest.approx(float(weighted_reference), rel=1e-6)
    # by hand: doubling one pixel's weight adds that pixel's loss once more (over the count)
    pixel = torch.ones((2, 1, 6, 6))
    pixel[1, 0, 2, 3] = 2.0
    each = torch.nn.functional.cross_entropy(logits, label[:, 0], reduction="none")
    assert float(compute_weighted_cross_entropy(logits, label, pixel)) == pytest.approx(
        float(reference + each[1, 2, 3] / 72), rel=1e-6
    )
    # the loss: all-ones weights give the unweighted Dice + cross-entropy; weights raise it
    loss = _make_loss(network)
    assert float(loss(logits, label, ones)) == pytest.approx(float(loss(logits, label)), rel=1e-6)
    assert float(loss(logits, label, 5 * ones)) > float(loss(logits, label))
