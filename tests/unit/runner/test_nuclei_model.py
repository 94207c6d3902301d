"""The runner's nuclei_model method refuses checkpoints that are not instance models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.core import ConfigError
from medseg.io import Volume
from medseg.models import Checkpoint, NetworkConfig, build_model, save_checkpoint
from medseg.runner import NucleiModelConfig, segment_nuclei_with_model
from medseg.transforms import Plans


def test_semantic_checkpoint_is_refused(tmp_path: Path) -> None:
    network = NetworkConfig(name="unet2d", in_channels=3, out_channels=2, features=4, depth=1)
    plans = Plans(
        dataset="cells",
        modality="microscopy",
        spatial_dims=2,
        in_channels=3,
        labels={1: "nucleus"},
        target_spacing_mm=[1.0, 1.0],
        median_shape=[32, 32],
        patch_size=[32, 32],
        batch_size=2,
        strides=[[1, 1], [2, 2]],
        kernel_sizes=[[3, 3], [3, 3]],
        normalization=[{"scheme": "zscore"}] * 3,
        memory_budget_gb=1.0,
    )
    state = {k: v.detach() for k, v in build_model(network).state_dict().items()}
    path = save_checkpoint(
        Checkpoint(network=network, plans=plans, state_dict=state), tmp_path / "semantic.pt"
    )
    image = Volume(array=np.zeros((32, 32, 1, 3), dtype=np.uint8), affine=np.eye(4))
    with pytest.raises(ConfigError, match="instance model"):
        segment_nuclei_with_model(image, config=NucleiModelConfig(model=str(path)), root=tmp_path)
