"""Model registry: every network builds, has the documented output, and learns on real crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.core import ConfigError, parse_config
from medseg.io import read_image
from medseg.models import ModelName, NetworkConfig, build_model, list_models
from medseg.training import compute_instance_targets


@pytest.fixture(scope="module")
def spleen_crop(repo_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 32×32×8 CT crops through the spleen (HU/200), labels (2, 1, 32, 32, 8)."""
    image = read_image(repo_root / "data/ct_msd_spleen/sub-spleen2_ct.nii.gz").array
    label = read_image(repo_root / "data/ct_msd_spleen/sub-spleen2_ct_seg-manual.nii.gz").array
    i, j, k = (int(v) for v in np.argwhere(label > 0).mean(axis=0))
    crops = []
    for shift in (0, 6):
        window = np.s_[i - 16 + shift : i + 16 + shift, j - 16 : j + 16, k - 4 : k + 4]
        crops.append((image[window] / 200.0, label[window]))
    x = torch.tensor(np.stack([c[0] for c in crops])[:, None], dtype=torch.float32)
    y = torch.tensor(np.stack([c[1] for c in crops])[:, None], dtype=torch.long)
    assert y.sum() > 0
    return x, y


@pytest.fixture(scope="module")
def drive_crop(repo_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 64×64 RGB crops of DRIVE image 21 (z-scored) and vessel labels (2, 1, 64, 64)."""
    image = read_image(repo_root / "data/retina_drive/training/images/21_training.tif").array
    label = read_image(repo_root / "data/retina_drive/training/1st_manual/21_manual1.gif").array
    image = image[:, :, 0].astype(np.float32)
    image = (image - image.mean()) / image.std()
    crops = [(image[x : x + 64, 250:314], label[x : x + 64, 250:314, 0] > 0) for x in (200, 300)]
    x = torch.tensor(np.stack([np.moveaxis(c[0], -1, 0) for c in crops]), dtype=torch.float32)
    y = torch.tensor(np.stack([c[1] for c in crops])[:, None], dtype=torch.long)
    assert 0 < y.float().mean() < 0.5
    return x, y


def _fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[float]:
    from monai.losses import DiceCELoss

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(x)
        if out.ndim == x.ndim + 1:  # DynUNet deep supervision: (B, heads, C, *S)
            out = out[:, 0]
        loss = loss_fn(out, y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_list_models_names_every_registry_entry() -> None:
    assert list_models() == sorted(m.value for m in ModelName)
    assert set(list_models()) == {
        "deeplabv3plus",
        "dynunet",
        "maskrcnn",
        "segresnet",
        "unet2d",
        "unet3d",
    }


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'unet3d'"):
        parse_config(NetworkConfig, {"name": "unet_3d"})


def test_wrong_spatial_dims_is_rejected() -> None:
    with pytest.raises(ValueError, match="supports spatial_dims"):
        NetworkConfig(name="deeplabv3plus", spatial_dims=3)


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("unet3d", {"features": 8, "depth": 2}),
        ("dynunet", {"features": 8, "strides": [[1, 1, 1], [2, 2, 1], [2, 2, 2]]}),
        ("segresnet", {"features": 8, "depth": 2, "spatial_dims": 3}),
    ],
)
def test_3d_models_learn_on_spleen_crops(
    name: str, extra: dict, spleen_crop: tuple[torch.Tensor, torch.Tensor]
) -> None:
    torch.manual_seed(0)
    model = build_model(NetworkConfig(name=name, in_channels=1, out_channels=2, **extra))
    x, y = spleen_crop
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 2, 32, 32, 8)
    losses = _fit(model, x, y, steps=6)
    assert losses[-1] < losses[0] - 0.02, losses


def test_dynunet_deep_supervision_heads_in_train_mode(
    spleen_crop: tuple[torch.Tensor, torch.Tensor],
) -> None:
    config = NetworkConfig(
        name="dynunet",
        features=8,
        strides=[[1, 1, 1], [2, 2, 1], [2, 2, 2], [2, 2, 1]],
    )
    model = build_model(config).train()
    out = model(spleen_crop[0])
    assert out.shape == (2, 3, 2, 32, 32, 8)  # main output + 2 supervision heads
    assert config.total_stride == (8, 8, 2)


@pytest.mark.parametrize(
    ("name", "extra"),
    [("unet2d", {"features": 8, "depth": 3}), ("deeplabv3plus", {"backbone": "resnet18"})],
)
def test_2d_models_learn_on_drive_crops(
    name: str, extra: dict, drive_crop: tuple[torch.Tensor, torch.Tensor]
) -> None:
    torch.manual_seed(0)
    model = build_model(NetworkConfig(name=name, in_channels=3, out_channels=2, **extra))
    x, y = drive_crop
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 2, 64, 64)
    losses = _fit(model, x, y, steps=6)
    assert losses[-1] < losses[0] - 0.02, losses


def test_maskrcnn_learns_on_dsb_nuclei(repo_root: Path) -> None:
    torch.manual_seed(0)
    case = "54fe2d3416951cbc"
    image = read_image(repo_root / f"data/cells_dsb2018/train/images/{case}.png").array[:, :, 0]
    labels = read_image(repo_root / f"data/cells_dsb2018/train/labels/{case}.tif").array[:, :, 0]
    # (column, row) → (row, column) for torchvision; a 128×128 crop
    pixels = np.swapaxes(image, 0, 1)[:128, :128, :3].astype(np.float32) / 255.0
    instances = np.swapaxes(labels, 0, 1)[:128, :128]
    target = compute_instance_targets(instances)
    assert len(target["boxes"]) >= 3
    model = build_model(
        NetworkConfig(name="maskrcnn", in_channels=3, out_channels=2, backbone="resnet18")
    )
    model.transform.min_size = (128,)  # keep the 128-pixel crop at its size (CPU time)
    model.transform.max_size = 128
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = [torch.tensor(np.moveaxis(pixels, -1, 0))]
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss = sum(model(images, [target]).values())
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0], losses
    model.eval()
    with torch.no_grad():
        out = model(images)[0]
    assert set(out) == {"boxes", "labels", "scores", "masks"}
    assert out["masks"].shape[1:] == (1, 128, 128)


def test_instance_targets_boxes_are_exclusive_pixel_bounds() -> None:
    instances = np.zeros((10, 12), dtype=np.uint16)
    instances[2:5, 3:7] = 7
    instances[8, 11] = 9
    target = compute_instance_targets(instances)
    assert target["boxes"].tolist() == [[3.0, 2.0, 7.0, 5.0], [11.0, 8.0, 12.0, 9.0]]
    assert target["labels"].tolist() == [1, 1]
    assert target["masks"].shape == (2, 10, 12)
    assert int(target["masks"][0].sum()) == 12
