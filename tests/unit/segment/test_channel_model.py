"""The channel_model segmenter feeds the checkpoint's channels from the case's images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.core import ChannelError
from medseg.io import Volume
from medseg.segment import CaseImages, ChannelModelConfig, stack_case_channels


def _case(tmp_path: Path) -> CaseImages:
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    flair = Volume(array=np.full((6, 5, 4), 1.0, dtype=np.float32), affine=affine)
    t1c = Volume(array=np.full((6, 5, 4), 2.0, dtype=np.float32), affine=affine)
    coarse = Volume(
        array=np.full((3, 3, 2), 3.0, dtype=np.float32), affine=affine @ np.diag([2, 2, 2, 1])
    )
    return CaseImages(case_id="c1", image=flair, root=tmp_path, channels={"t1c": t1c, "t2": coarse})


def test_channels_are_stacked_in_the_model_order(tmp_path: Path):
    stacked = stack_case_channels(
        _case(tmp_path), {"t1c": "t1c", "flair": "image"}, ["flair", "t1c"]
    )
    assert stacked.array.shape == (6, 5, 4, 2)
    assert (stacked.array[..., 0] == 1).all()
    assert (stacked.array[..., 1] == 2).all()


def test_a_channel_on_another_grid_is_resampled_onto_the_image(tmp_path: Path):
    stacked = stack_case_channels(_case(tmp_path), {"flair": "image", "t2": "t2"}, ["flair", "t2"])
    assert stacked.array.shape == (6, 5, 4, 2)
    assert stacked.array[1, 1, 1, 1] == pytest.approx(3.0)


def test_a_missing_case_image_names_what_the_case_has(tmp_path: Path):
    with pytest.raises(ChannelError, match="lacks") as info:
        stack_case_channels(_case(tmp_path), {"flair": "image", "t1c": "t1ce"}, ["flair", "t1c"])
    assert "t1c, t2" in str(info.value)


def test_channel_names_must_match_the_checkpoint(tmp_path: Path):
    with pytest.raises(ChannelError, match="expects channels flair, t1c; missing t1c"):
        stack_case_channels(_case(tmp_path), {"flair": "image"}, ["flair", "t1c"])


def test_defaults_read_the_brats_manifest():
    config = ChannelModelConfig()
    assert config.model == "brain-tumour"
    assert config.channels == {"flair": "image", "t1c": "t1c"}
