from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.core import ConfigError, ModelError
from medseg.evaluation import compute_dice
from medseg.sam import (
    InputNormalization,
    Precision,
    SamModel,
    SamPrompt,
    embed_image,
    litemedsam_checkpoint_path,
    load_sam_model,
    predict_box_mask,
    predict_prompts,
)


@pytest.fixture(scope="module")
def litemedsam() -> SamModel:
    return load_sam_model("litemedsam", device="cpu")


def test_every_checkpoint_tensor_is_loaded(litemedsam: SamModel) -> None:
    state = torch.load(litemedsam_checkpoint_path(), map_location="cpu", weights_only=True)
    assert len(state) == 435
    for prefix, module in (
        ("image_encoder.", litemedsam.image_encoder),
        ("prompt_encoder.", litemedsam.prompt_encoder),
        ("mask_decoder.", litemedsam.mask_decoder),
    ):
        loaded = module.state_dict()
        for key, tensor in state.items():
            if key.startswith(prefix):
                assert torch.equal(loaded[key[len(prefix) :]], tensor), key


def _disk_image(rows: int, columns: int, centre: tuple[int, int], radius: int) -> tuple:
    yy, xx = np.mgrid[:rows, :columns]
    disk = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2
    noise = np.random.default_rng(0).normal(0, 0.02, (rows, columns))
    return np.where(disk, 0.9, 0.1) + noise, disk


@pytest.mark.parametrize("precision", [Precision.FP32, Precision.BF16])
def test_box_around_bright_disk_returns_the_disk(
    litemedsam: SamModel, precision: Precision
) -> None:
    # Non-square image, disk off-centre: checks x = column, y = row and the resize/pad maths.
    image, disk = _disk_image(300, 420, centre=(110, 300), radius=45)
    box = (300 - 55, 110 - 55, 300 + 55, 110 + 55)
    mask = predict_box_mask(litemedsam, image, box, precision=precision)
    assert mask.shape == image.shape
    assert compute_dice(mask, disk) > 0.9


def test_unknown_model_and_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'litemedsam'"):
        load_sam_model("litemedsm")
    with pytest.raises(ModelError, match="checkpoint file not found"):
        load_sam_model(checkpoint=tmp_path / "none.pth")


def test_wrong_weights_are_refused(tmp_path: Path) -> None:
    state = torch.load(litemedsam_checkpoint_path(), map_location="cpu", weights_only=True)
    state.pop("mask_decoder.iou_token.weight")
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(ModelError, match="mask_decoder"):
        load_sam_model(checkpoint=broken)


@pytest.mark.gpu
def test_auto_device_uses_cuda() -> None:
    assert load_sam_model(device="auto").device.type == "cuda"


def test_sam_vit_models_need_a_checkpoint() -> None:
    with pytest.raises(ModelError, match="no shipped weights; pass --checkpoint"):
        load_sam_model("sam_vit_b")
    with pytest.raises(ConfigError, match="did you mean 'sam_vit_h'"):
        load_sam_model("sam_vit_hh")


@pytest.mark.slow
def test_official_sam_checkpoint_by_path_loads_strictly_and_predicts(tmp_path: Path) -> None:
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    reference = sam_model_registry["vit_b"](checkpoint=None)
    path = tmp_path / "sam_vit_b.pth"
    torch.save(reference.state_dict(), path)
    model = load_sam_model("sam_vit_b", checkpoint=path, device="cpu")
    assert model.image_size == 1024
    assert model.normalization is InputNormalization.IMAGENET
    for key, tensor in reference.state_dict().items():
        part, _, name = key.partition(".")
        assert torch.equal(getattr(model, part).state_dict()[name], tensor), key
    # The same API runs end to end on a non-square image (random weights: shapes only).
    image = np.random.default_rng(0).random((60, 90))
    embedding = embed_image(model, image)
    assert embedding.features.shape == (1, 256, 64, 64)
    assert embedding.resized_size == (683, 1024)
    (prediction,) = predict_prompts(model, embedding, [SamPrompt(box_xyxy=(10, 10, 50, 40))])
    assert prediction.logits.shape == (1, 60, 90)
    # LiteMedSAM weights do not fit ViT-B: refused, naming the part.
    with pytest.raises(ModelError, match="image_encoder do not fit"):
        load_sam_model("sam_vit_b", checkpoint=litemedsam_checkpoint_path())
