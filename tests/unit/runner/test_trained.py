"""Runner pieces for trained models: the trained_model section, vessel scoring inside the
field of view, and model → dataset label mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.core import ConfigError, ModelError, parse_config
from medseg.io import Volume
from medseg.runner import PipelineConfig, compute_case_vessel_metrics
from medseg.segment._checkpoint_semantic import _label_map, resolve_pipeline_model
from medseg.transforms import Plans

_BASE = {
    "name": "t",
    "description": "test",
    "dataset": "data_manifests/retina_drive.yaml",
    "stages": ["ingest", "segment", "evaluate"],
}


def test_trained_model_method_needs_its_section() -> None:
    with pytest.raises(ConfigError, match="needs a 'trained_model' section"):
        parse_config(PipelineConfig, {**_BASE, "segment": {"method": "trained_model"}})


def test_trained_model_section_is_typed() -> None:
    config = parse_config(
        PipelineConfig,
        {
            **_BASE,
            "segment": {
                "method": "trained_model",
                "trained_model": {"model": "retina-vessels", "mirror": True},
            },
            "evaluate": {"kind": "vessel"},
        },
    )
    assert config.segment.trained_model is not None
    assert config.segment.trained_model.mirror
    assert config.evaluate.kind.value == "vessel"
    with pytest.raises(ConfigError, match=r"segment\.trained_model\.overlap"):
        parse_config(
            PipelineConfig,
            {
                **_BASE,
                "segment": {
                    "method": "trained_model",
                    "trained_model": {"model": "m", "overlap": 1.5},
                },
            },
            source="p.yaml",
        )


def _plane(array: np.ndarray) -> Volume:
    """A 2D image as medseg reads it: axes (column, row, 1)."""
    return Volume(array=np.swapaxes(array, 0, 1)[:, :, None], affine=np.eye(4))


def test_vessel_metrics_count_inside_the_fov_only() -> None:
    reference = np.zeros((6, 8), np.uint8)
    reference[2, 1:7] = 1  # a horizontal vessel, 6 px
    prediction = np.zeros_like(reference)
    prediction[2, 1:5] = 1  # 4 px found, 2 missed
    prediction[4, 1] = 1  # 1 false positive inside the FOV
    prediction[0, 0] = 1  # a false positive outside the FOV: not counted
    fov = np.ones_like(reference)
    fov[0, :] = 0
    probability = prediction.astype(np.float32) * 0.9 + 0.05
    probabilities = np.stack([1 - probability, probability], axis=-1)
    image = _plane(np.zeros((6, 8), np.uint8))
    metrics = compute_case_vessel_metrics(
        _plane(prediction),
        _plane(reference),
        image=image,
        fov=_plane(fov),
        probabilities=Volume(
            array=np.swapaxes(probabilities, 0, 1)[:, :, None].astype(np.float16),
            affine=np.eye(4),
        ),
    )
    # inside the FOV (40 px): TP 4, FN 2, FP 1, TN 33
    assert metrics["sensitivity"] == pytest.approx(4 / 6)
    assert metrics["specificity"] == pytest.approx(33 / 34)
    assert metrics["accuracy"] == pytest.approx(37 / 40)
    assert metrics["f1"] == pytest.approx(8 / 11)
    # positives scoring 0.95: 4 of 6; negatives: 1 of 34 → AUC by the rank formula
    pairs_above = 4 * 33 + 0.5 * 4 * 1 + 0.5 * 2 * 33
    assert metrics["auc_roc"] == pytest.approx(pairs_above / (6 * 34), abs=1e-6)
    assert 0 < metrics["cldice"] < 1


def test_vessel_metrics_without_probabilities_or_fov() -> None:
    mask = np.zeros((5, 5), np.uint8)
    mask[2, :] = 1
    image = _plane(mask)
    metrics = compute_case_vessel_metrics(
        _plane(mask), _plane(mask), image=image, fov=None, probabilities=None
    )
    assert metrics["f1"] == 1.0
    assert metrics["cldice"] == 1.0
    assert math.isnan(metrics["auc_roc"])


def _plans(labels: dict[int, str]) -> Plans:
    return Plans(
        dataset="d", modality="fundus", spatial_dims=2, in_channels=3, labels=labels,
        target_spacing_mm=[1.0, 1.0], median_shape=[64, 64], patch_size=[64, 64],
        batch_size=2, strides=[[1, 1], [2, 2]], kernel_sizes=[[3, 3], [3, 3]],
        normalization=[{"scheme": "zscore"}] * 3, memory_budget_gb=1.0,
    )  # fmt: skip


def test_model_classes_map_to_dataset_labels_by_name() -> None:
    assert _label_map(_plans({1: "vessel"}), {3: "vessel", 1: "artery"}) == {1: 3}
    with pytest.raises(ConfigError, match="missing: liver"):
        _label_map(_plans({1: "liver"}), {1: "vessel"})


def test_unknown_model_reference_is_a_model_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="shipped models"):
        resolve_pipeline_model("no-such-model", root=tmp_path)
