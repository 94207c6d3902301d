"""Marker watershed from background / interior / boundary probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.core import ConfigError
from medseg.evaluation import compute_instance_metrics
from medseg.inference import (
    InstanceConfig,
    label_instances,
    resolve_infer_config,
    resolve_instance_config,
)
from medseg.models import Checkpoint, NetworkConfig, load_checkpoint, save_checkpoint
from medseg.transforms import (
    BOUNDARY_CLASS,
    CORE_CLASS,
    INTERIOR_CLASS,
    Plans,
    TrainingTarget,
    compute_boundary_classes,
)


def _one_hot(classes: np.ndarray) -> np.ndarray:
    return np.stack([(classes == c).astype(np.float32) for c in range(3)])


def _touching_discs() -> np.ndarray:
    yy, xx = np.mgrid[:80, :120]
    labels = np.zeros((80, 120), dtype=np.uint16)
    labels[(yy - 40) ** 2 + (xx - 45) ** 2 < 15**2] = 1
    labels[(yy - 40) ** 2 + (xx - 72) ** 2 < 15**2] = 2  # overlaps the first: they touch
    labels[(yy - 15) ** 2 + (xx - 100) ** 2 < 8**2] = 3
    return labels


@pytest.mark.parametrize("width", [1, 2, 3])
def test_perfect_prediction_gives_back_the_instances(width: int) -> None:
    labels = _touching_discs()
    probabilities = _one_hot(compute_boundary_classes(labels, boundary_width_px=width))
    instances = label_instances(probabilities, config=InstanceConfig(min_size_px=0))
    assert instances.dtype == np.uint16
    assert sorted(np.unique(instances)) == [0, 1, 2, 3]
    metrics = compute_instance_metrics(instances, labels)
    assert metrics.at(0.5).f1 == 1.0
    assert metrics.at(0.9).f1 == 1.0  # every object recovered to IoU > 0.9
    np.testing.assert_array_equal(instances > 0, labels > 0)


def test_core_channel_seeds_split_nuclei_whose_interiors_merge() -> None:
    labels = _touching_discs()
    classes = compute_boundary_classes(labels, boundary_width_px=2, core_fraction=0.5)
    # the network missed the boundary band between the two touching discs: interior there
    contact = (np.abs(np.mgrid[:80, :120][1] - 58.5) < 4) & (labels > 0) & (labels < 3)
    classes[contact & (classes == BOUNDARY_CLASS)] = INTERIOR_CLASS
    four = np.stack([(classes == c).astype(np.float32) for c in range(4)])
    three = four[:3].copy()
    three[INTERIOR_CLASS] += four[CORE_CLASS]  # the same prediction without a core channel
    config = InstanceConfig(min_size_px=0)
    assert label_instances(three, config=config).max() == 2  # the two discs merged
    instances = label_instances(four, config=config)
    assert instances.max() == 3
    assert compute_instance_metrics(instances, labels).at(0.5).f1 == 1.0


def test_small_seeds_are_ignored_and_seedless_objects_kept() -> None:
    probabilities = np.zeros((3, 30, 30), dtype=np.float32)
    probabilities[0] = 1.0
    # object A: interior 6x6 inside a boundary ring, plus a 1-pixel stray interior speck
    probabilities[:, 5:15, 5:15] = [[[0.0]], [[0.0]], [[1.0]]]
    probabilities[:, 7:13, 7:13] = [[[0.0]], [[1.0]], [[0.0]]]
    probabilities[:, 5, 5] = [0.0, 1.0, 0.0]  # in the ring's corner: a one-pixel seed
    # object B: all boundary (too small to have an interior) → kept as its own instance
    probabilities[:, 20:24, 20:24] = [[[0.0]], [[0.2]], [[0.8]]]
    config = InstanceConfig(min_seed_size_px=2, min_size_px=0)
    instances = label_instances(probabilities, config=config)
    assert instances.max() == 2
    assert len(np.unique(instances[5:15, 5:15])) == 1  # A is one object, not two
    assert (instances[20:24, 20:24] > 0).all()
    # with one-pixel seeds allowed, the speck splits A
    assert (
        label_instances(
            probabilities, config=InstanceConfig(min_seed_size_px=1, min_size_px=0)
        ).max()
        == 3
    )
    # min_size_px removes B (16 px) but keeps A (100 px)
    pruned = label_instances(probabilities, config=config.model_copy(update={"min_size_px": 17}))
    assert pruned.max() == 1
    assert pruned[20:24, 20:24].max() == 0


def test_holes_are_filled() -> None:
    probabilities = np.zeros((3, 20, 20), dtype=np.float32)
    probabilities[0] = 1.0
    probabilities[:, 4:16, 4:16] = [[[0.0]], [[1.0]], [[0.0]]]
    probabilities[:, 9:11, 9:11] = [[[1.0]], [[0.0]], [[0.0]]]  # a hole
    filled = label_instances(probabilities, config=InstanceConfig(min_size_px=0))
    assert (filled[4:16, 4:16] == 1).all()
    kept = label_instances(probabilities, config=InstanceConfig(fill_holes=False, min_size_px=0))
    assert (kept[9:11, 9:11] == 0).all()


def test_thresholds_decide_foreground_and_seeds() -> None:
    probabilities = np.zeros((3, 10, 10), dtype=np.float32)
    probabilities[:, 2:8, 2:8] = [[[0.45]], [[0.4]], [[0.15]]]
    low = InstanceConfig(foreground_threshold=0.5, seed_threshold=0.3, min_size_px=0)
    assert label_instances(probabilities, config=low).max() == 1  # 0.55 > 0.5 foreground
    high = low.model_copy(update={"foreground_threshold": 0.6})
    assert label_instances(probabilities, config=high).max() == 0


def test_rejects_other_channel_counts() -> None:
    with pytest.raises(ConfigError, match="3 probability channels"):
        label_instances(np.zeros((2, 8, 8)), config=InstanceConfig())
    with pytest.raises(ConfigError, match="or 4"):
        label_instances(np.zeros((5, 8, 8)), config=InstanceConfig())


def _checkpoint(target: TrainingTarget, stored: dict[str, object]) -> Checkpoint:
    plans = Plans(
        dataset="d",
        modality="microscopy",
        spatial_dims=2,
        in_channels=1,
        labels={1: "nucleus_interior", 2: "nucleus_boundary"},
        target_spacing_mm=[1.0, 1.0],
        median_shape=[32, 32],
        patch_size=[32, 32],
        batch_size=2,
        strides=[[1, 1], [2, 2]],
        kernel_sizes=[[3, 3], [3, 3]],
        normalization=[{"scheme": "zscore"}],
        memory_budget_gb=1.0,
    )
    network = NetworkConfig(name="unet2d", in_channels=1, out_channels=3, features=4, depth=1)
    return Checkpoint(
        network=network,
        plans=plans,
        state_dict={"w": torch.zeros(1)},
        target=target,
        instance_postprocess=stored,
    )


def test_resolve_instance_config() -> None:
    semantic = _checkpoint(TrainingTarget.SEMANTIC, {})
    assert resolve_instance_config(semantic) is None
    with pytest.raises(ConfigError, match="semantic model"):
        resolve_instance_config(semantic, InstanceConfig())
    instance = _checkpoint(TrainingTarget.INSTANCE_BOUNDARY, {"seed_threshold": 0.7})
    assert resolve_instance_config(instance) == InstanceConfig(seed_threshold=0.7)
    override = InstanceConfig(min_size_px=3)
    assert resolve_instance_config(instance, override) is override
    broken = _checkpoint(TrainingTarget.INSTANCE_BOUNDARY, {"seed_treshold": 0.7})
    with pytest.raises(ConfigError, match="seed_treshold"):
        resolve_instance_config(broken)


def test_model_inference_defaults_survive_a_save_and_yield_to_user_settings(tmp_path) -> None:
    checkpoint = _checkpoint(TrainingTarget.INSTANCE_BOUNDARY, {})
    checkpoint.inference_defaults = {"mirror": True}
    reloaded = load_checkpoint(save_checkpoint(checkpoint, tmp_path / "model.pt"))
    assert reloaded.inference_defaults == {"mirror": True}
    assert resolve_infer_config(reloaded, {}).mirror is True
    assert resolve_infer_config(reloaded, {"mirror": False}).mirror is False
    assert resolve_infer_config(reloaded, {"overlap": 0.25}).overlap == 0.25
    assert resolve_infer_config(_checkpoint(TrainingTarget.SEMANTIC, {}), {}).mirror is False
    checkpoint.inference_defaults = {"mirorr": True}
    with pytest.raises(ConfigError, match="mirorr"):
        resolve_infer_config(checkpoint, {})
