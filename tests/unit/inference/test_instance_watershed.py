"""Marker watershed from background / interior / boundary probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.core import ConfigError
from medseg.evaluation import compute_instance_metrics
from medseg.inference import (
    InferConfig,
    InstanceConfig,
    choose_instance_zoom,
    is_stained_image,
    label_instances,
    predict_volume,
    resolve_infer_config,
    resolve_instance_config,
    select_instance_config,
    split_merged_seeds,
)
from medseg.io import Volume
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


def _dumbbell() -> np.ndarray:
    """Two discs of radius 8 joined by a 4-pixel-wide neck: one seed component."""
    yy, xx = np.mgrid[:30, :50]
    mask = ((yy - 15) ** 2 + (xx - 14) ** 2 < 64) | ((yy - 15) ** 2 + (xx - 34) ** 2 < 64)
    mask[13:17, 14:34] = True
    return mask


def test_split_merged_seeds_cuts_a_dumbbell_at_its_neck() -> None:
    seeds = _dumbbell().astype(np.int32)
    split = split_merged_seeds(seeds, h_px=3)
    assert split.max() == 2
    np.testing.assert_array_equal(split > 0, seeds > 0)  # no pixel gained or lost
    left, right = split[15, 14], split[15, 34]
    assert {left, right} == {1, 2}
    assert abs(int((split == 1).sum()) - int((split == 2).sum())) < 20  # cut near the middle
    assert (split[:, :22] != right).all()
    assert (split[:, 27:] != left).all()
    # the peaks stand about 6 px above the 2-px-deep neck: h = 8 keeps the seed whole
    np.testing.assert_array_equal(split_merged_seeds(seeds, h_px=8), seeds)


def test_split_merged_seeds_keeps_round_and_shallow_seeds() -> None:
    yy, xx = np.mgrid[:40, :60]
    seeds = np.zeros((40, 60), dtype=np.int32)
    seeds[(yy - 20) ** 2 + (xx - 15) ** 2 < 81] = 5  # a disc: one maximum
    seeds[18:21, 40:56] = 9  # a thin bar, 2 px deep: no maximum 3 px high
    split = split_merged_seeds(seeds, h_px=3)
    assert split.max() == 2
    np.testing.assert_array_equal(split > 0, seeds > 0)
    assert len(np.unique(split[seeds == 5])) == 1
    assert len(np.unique(split[seeds == 9])) == 1
    with pytest.raises(ValueError, match="positive"):
        split_merged_seeds(seeds, h_px=0)


def test_seed_split_separates_touching_nuclei_whose_cores_merged() -> None:
    mask = _dumbbell()
    xx = np.mgrid[:30, :50][1]
    reference = np.zeros((30, 50), dtype=np.int32)
    reference[mask & (xx < 24)] = 1
    reference[mask & (xx >= 24)] = 2
    # the network saw one blob: interior everywhere, its core the whole dumbbell
    probabilities = np.zeros((4, 30, 50), dtype=np.float32)
    probabilities[0][~mask] = 1.0
    probabilities[CORE_CLASS][mask] = 1.0
    config = InstanceConfig(min_size_px=0)
    assert label_instances(probabilities, config=config).max() == 1
    split_config = config.model_copy(update={"seed_split_h_px": 3.0})
    instances = label_instances(probabilities, config=split_config)
    assert instances.max() == 2
    assert compute_instance_metrics(instances, reference).at(0.5).f1 == 1.0


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


def test_choose_instance_zoom_by_hand() -> None:
    instances = np.zeros((40, 40), dtype=np.uint16)
    instances[0:5, 0:10] = 1  # 50 px
    instances[10:20, 0:10] = 2  # 100 px
    instances[20:40, 20:40] = 3  # 400 px: median area 100
    config = InstanceConfig(zoom_in_below_area_px=101, zoom_out_above_area_px=300)
    assert choose_instance_zoom(instances, config=config) == 2.0
    assert choose_instance_zoom(instances, config=config.model_copy(
        update={"zoom_in_below_area_px": 100})) == 1.0  # fmt: skip
    assert choose_instance_zoom(instances, config=config.model_copy(
        update={"zoom_in_below_area_px": 0, "zoom_out_above_area_px": 99})) == 0.5  # fmt: skip
    assert choose_instance_zoom(instances, config=InstanceConfig()) == 1.0  # off by default
    assert choose_instance_zoom(np.zeros((4, 4), np.uint16), config=config) == 1.0


class _BrightIsNucleus(torch.nn.Module):
    """A fixed 1x1 convolution: bright pixels are interior, dark ones background."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0] = -4.0 / 3
            self.conv.weight[1] = 4.0 / 3
            self.conv.bias.copy_(torch.tensor([0.0, 0.0, -10.0]))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.conv(image)


def test_zoomed_second_pass_recovers_nuclei_too_small_for_the_first(tmp_path) -> None:
    yy, xx = np.mgrid[:64, :64]
    image = np.zeros((64, 64), dtype=np.float32)
    truth = np.zeros((64, 64), dtype=np.uint16)
    for index, (cy, cx, r) in enumerate([(12, 12, 5.2), (40, 20, 5.2), (20, 45, 3), (50, 50, 3)]):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        image[disc], truth[disc] = 1.0, index + 1
    volume = Volume(array=np.repeat(image[:, :, None, None], 3, axis=3), affine=np.eye(4))
    plans = Plans.model_validate(
        _checkpoint(TrainingTarget.INSTANCE_BOUNDARY, {}).plans.model_dump()
        | {"in_channels": 3, "normalization": [{"scheme": "zscore"}] * 3}
    )
    network = _BrightIsNucleus()
    single = InstanceConfig(min_size_px=60, seed_threshold=0.5, foreground_threshold=0.5)
    infer = InferConfig(device="cpu")
    first = predict_volume(network, volume, plans=plans, config=infer, instances=single)
    assert first.labels.array.max() == 2  # the two small discs (28 px) are below 60 px
    zoomed = single.model_copy(update={"zoom_in_below_area_px": 100})
    labels = predict_volume(network, volume, plans=plans, config=infer, instances=zoomed).labels
    assert labels.array.shape == (64, 64, 1)
    assert compute_instance_metrics(labels.array[:, :, 0], truth).at(0.5).f1 == 1.0


def test_stained_images_are_told_from_grey_ones() -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=(32, 32, 1), dtype=np.uint8)
    grey_rgb = np.repeat(grey[..., None], 3, axis=-1)  # DSB2018 fluorescence: grey as RGB
    assert not is_stained_image(grey_rgb)
    assert not is_stained_image(grey)  # one channel
    pink = grey_rgb.astype(np.int16)
    pink[..., 1] -= 30  # green 30 / 255 = 0.12 below red and blue: H&E-like colour
    assert is_stained_image(np.clip(pink, 0, 255).astype(np.uint8))
    faint = grey_rgb.astype(np.int16)
    faint[..., 1] -= 3  # 0.012 < STAINED_CHROMA
    assert not is_stained_image(np.clip(faint, 0, 255).astype(np.uint8))
    assert is_stained_image(np.clip(pink, 0, 255).astype(np.float32) / 255)  # float image
    rgba = np.concatenate([np.clip(pink, 0, 255), np.full_like(grey_rgb[..., :1], 255)], -1)
    assert is_stained_image(rgba.astype(np.uint8))


def test_stained_settings_apply_to_stained_images_only() -> None:
    config = InstanceConfig(seed_threshold=0.9, stained=InstanceConfig(seed_threshold=0.7))
    grey = np.zeros((8, 8, 1, 3), dtype=np.uint8)
    stained = grey.copy()
    stained[..., 0] = 200
    assert select_instance_config(grey, config=config) is config
    assert select_instance_config(stained, config=config).seed_threshold == 0.7
    plain = InstanceConfig(seed_threshold=0.9)
    assert select_instance_config(stained, config=plain) is plain


def test_stained_settings_survive_a_checkpoint_round_trip(tmp_path) -> None:
    stored = {"seed_threshold": 0.9, "stained": {"seed_threshold": 0.7}}
    checkpoint = _checkpoint(TrainingTarget.INSTANCE_BOUNDARY, stored)
    loaded = load_checkpoint(save_checkpoint(checkpoint, tmp_path / "model.pt"))
    resolved = resolve_instance_config(loaded)
    assert resolved is not None
    assert resolved.seed_threshold == 0.9
    assert resolved.stained is not None
    assert resolved.stained.seed_threshold == 0.7
