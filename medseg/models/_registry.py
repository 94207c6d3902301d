"""Model registry: a config name → a network builder.

Every trainable segmenter is built from a :class:`NetworkConfig` (a YAML section validated
by pydantic) through :func:`build_model`; names resolve with "did you mean" via
:func:`~medseg.core.look_up_option`. No builder downloads weights: encoders start random
(``weights=None``) because the project runs offline.

- ``unet2d`` (MONAI UNet, 2D): ``(B, C_in, H, W)`` → logits ``(B, C_out, H, W)``.
- ``unet3d`` (MONAI UNet, 3D): ``(B, C_in, X, Y, Z)`` → logits ``(B, C_out, X, Y, Z)``.
- ``dynunet`` (MONAI DynUNet, nnU-Net-like, 2D/3D): ``(B, C_in, *S)`` → logits
  ``(B, C_out, *S)`` in eval mode; in train mode with deep supervision
  ``(B, 1 + n_heads, C_out, *S)`` (lower-resolution heads upsampled).
- ``segresnet`` (MONAI SegResNet, 2D/3D): ``(B, C_in, *S)`` → logits ``(B, C_out, *S)``.
- ``deeplabv3plus`` (2D, ResNet + ASPP + decoder): ``(B, C_in, H, W)`` → logits
  ``(B, C_out, H, W)``.
- ``maskrcnn`` (torchvision Mask R-CNN, 2D instances): a list of ``(3, H, W)`` float images,
  already normalised (the plans' per-image z-score; the model's own normalisation is the
  identity and images keep their size: nuclei are a few pixels wide and torchvision's
  default rescaling to 800 px would change the object scale from image to image) → in
  train mode a dict of losses (targets: boxes, labels, masks); in eval mode per image
  ``boxes``, ``labels``, ``scores``, ``masks`` ``(N, 1, H, W)`` probabilities. The ResNet
  backbone uses GroupNorm (training from scratch with small batches; frozen BatchNorm with
  random statistics would not normalise at all).

Spatial sizes must be divisible by the network's total stride (``2**depth`` for the
U-Nets, the product of ``strides`` for DynUNet, 32 for DeepLabV3+).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import Field, model_validator
from torch import nn

from medseg.core import ConfigError, ConfigModel, look_up_option

logger = logging.getLogger(__name__)


class ModelName(str, enum.Enum):
    """Registered networks."""

    UNET2D = "unet2d"
    UNET3D = "unet3d"
    DYNUNET = "dynunet"
    SEGRESNET = "segresnet"
    DEEPLABV3PLUS = "deeplabv3plus"
    MASKRCNN = "maskrcnn"


class ModelTask(str, enum.Enum):
    """What a network predicts."""

    SEMANTIC = "semantic"  # one label per voxel
    INSTANCE = "instance"  # a mask per object


#: Spatial dimensions each network supports.
MODEL_DIMS: dict[ModelName, tuple[int, ...]] = {
    ModelName.UNET2D: (2,),
    ModelName.UNET3D: (3,),
    ModelName.DYNUNET: (2, 3),
    ModelName.SEGRESNET: (2, 3),
    ModelName.DEEPLABV3PLUS: (2,),
    ModelName.MASKRCNN: (2,),
}


class NetworkConfig(ConfigModel):
    """Which network to build and its shape.

    Attributes
    ----------
    name
        A registry name (see :class:`ModelName`).
    in_channels, out_channels
        Input image channels; output classes including background (for ``maskrcnn``:
        object classes plus background).
    spatial_dims
        2 or 3; defaults to the network's only choice, else 3.
    features
        Feature maps at the first level (doubling per level, capped at 320 for DynUNet).
    depth
        Number of down-sampling steps (U-Nets, SegResNet).
    strides, kernel_sizes
        Per-level strides (first level all ones) and kernels, e.g. from
        :func:`medseg.transforms.compute_layout` (stored in the plans); strides are used
        by the U-Nets and DynUNet, kernels by DynUNet. When absent, isotropic ``depth``
        levels are used.
    deep_supervision
        DynUNet only: extra output heads at lower resolutions while training.
    backbone
        ``deeplabv3plus``/``maskrcnn``: ``resnet18|34|50|101`` (random weights).
    anchor_sizes_px
        ``maskrcnn``: anchor size per FPN level P2–P6, in pixels (default torchvision's
        32, 64, 128, 256, 512; nuclei need smaller, e.g. 8–128).
    fpn_channels
        ``maskrcnn``: width of the FPN and of the mask head (box head: 4× this).
    max_instances
        ``maskrcnn``: most objects kept per image.
    """

    name: str
    in_channels: int = Field(default=1, ge=1)
    out_channels: int = Field(default=2, ge=1)
    spatial_dims: int | None = None
    features: int = Field(default=16, ge=4)
    depth: int = Field(default=4, ge=1, le=7)
    strides: list[list[int]] | None = None
    kernel_sizes: list[list[int]] | None = None
    deep_supervision: bool = True
    backbone: str | None = None
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    anchor_sizes_px: list[int] | None = Field(default=None, min_length=5, max_length=5)
    fpn_channels: int = Field(default=256, ge=32)
    max_instances: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _check_name_and_dims(self) -> NetworkConfig:
        look_up_option(self.name, [m.value for m in ModelName], what="model")
        allowed = MODEL_DIMS[ModelName(self.name)]
        if self.spatial_dims is not None and self.spatial_dims not in allowed:
            raise ValueError(
                f"{self.name} supports spatial_dims {allowed}, not {self.spatial_dims}"
            )
        return self

    @property
    def model_name(self) -> ModelName:
        """The registry name as an enum."""
        return ModelName(self.name)

    @property
    def dims(self) -> int:
        """Spatial dimensions actually used."""
        if self.spatial_dims is not None:
            return self.spatial_dims
        allowed = MODEL_DIMS[self.model_name]
        return allowed[0] if len(allowed) == 1 else 3

    @property
    def task(self) -> ModelTask:
        """Semantic or instance segmentation."""
        return ModelTask.INSTANCE if self.model_name is ModelName.MASKRCNN else ModelTask.SEMANTIC

    @property
    def total_stride(self) -> tuple[int, ...]:
        """Factor each spatial axis of the input must be divisible by."""
        uses_strides = self.model_name in (ModelName.DYNUNET, ModelName.UNET2D, ModelName.UNET3D)
        if uses_strides and self.strides:
            return tuple(int(v) for v in np.prod(np.asarray(self.strides), axis=0))
        if self.model_name in (ModelName.DEEPLABV3PLUS, ModelName.MASKRCNN):
            return (32,) * self.dims
        return (2**self.depth,) * self.dims


def _channels(features: int, levels: int, cap: int | None = None) -> tuple[int, ...]:
    values = [features * 2**i for i in range(levels)]
    return tuple(min(v, cap) if cap else v for v in values)


def _build_unet(config: NetworkConfig) -> nn.Module:
    from monai.networks.nets import UNet

    strides: Sequence[Sequence[int] | int] = (
        [tuple(s) for s in config.strides[1:]] if config.strides else (2,) * config.depth
    )
    return UNet(
        spatial_dims=config.dims,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        channels=_channels(config.features, len(strides) + 1),
        strides=strides,
        num_res_units=2,
        dropout=config.dropout,
    )


def _build_dynunet(config: NetworkConfig) -> nn.Module:
    from monai.networks.nets import DynUNet

    dims = config.dims
    strides = config.strides or [[1] * dims] + [[2] * dims] * config.depth
    kernels = config.kernel_sizes or [[3] * dims] * len(strides)
    if len(kernels) != len(strides):
        raise ConfigError(
            f"dynunet kernel_sizes and strides must have one entry per level, "
            f"found {len(kernels)} and {len(strides)}"
        )
    levels = len(strides)
    return DynUNet(
        spatial_dims=dims,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        kernel_size=kernels,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=list(_channels(config.features, levels, cap=320)),
        dropout=config.dropout or None,
        norm_name=("INSTANCE", {"affine": True}),
        deep_supervision=config.deep_supervision and levels > 2,
        deep_supr_num=max(1, min(2, levels - 2)),
        res_block=True,
    )


def _build_segresnet(config: NetworkConfig) -> nn.Module:
    from monai.networks.nets import SegResNet

    blocks_down = (1, 2, 2, 4, 4, 4, 4, 4)[: config.depth + 1]
    return SegResNet(
        spatial_dims=config.dims,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        init_filters=config.features,
        blocks_down=blocks_down,
        blocks_up=(1,) * config.depth,
        dropout_prob=config.dropout or None,
    )


def _build_deeplab(config: NetworkConfig) -> nn.Module:
    from medseg.models._deeplab import DeepLabV3Plus

    return DeepLabV3Plus(
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        backbone=config.backbone or "resnet50",
    )


def _build_maskrcnn(config: NetworkConfig) -> nn.Module:
    from medseg.models._maskrcnn import build_maskrcnn

    backbone = look_up_option(
        config.backbone or "resnet50",
        ["resnet18", "resnet34", "resnet50", "resnet101"],
        what="Mask R-CNN backbone",
    )
    if config.in_channels != 3:
        raise ConfigError(
            f"maskrcnn takes RGB input (in_channels 3), not {config.in_channels}; "
            "replicate grey images to three channels"
        )
    return build_maskrcnn(
        backbone=backbone,
        num_classes=config.out_channels,
        fpn_channels=config.fpn_channels,
        anchor_sizes_px=config.anchor_sizes_px or [32, 64, 128, 256, 512],
        max_instances=config.max_instances,
    )


_BUILDERS: dict[ModelName, Callable[[NetworkConfig], nn.Module]] = {
    ModelName.UNET2D: _build_unet,
    ModelName.UNET3D: _build_unet,
    ModelName.DYNUNET: _build_dynunet,
    ModelName.SEGRESNET: _build_segresnet,
    ModelName.DEEPLABV3PLUS: _build_deeplab,
    ModelName.MASKRCNN: _build_maskrcnn,
}


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(m.value for m in ModelName)


def build_model(config: NetworkConfig) -> nn.Module:
    """Build the network ``config`` names, with random weights.

    See the module docstring for each network's input and output layout.
    """
    module = _BUILDERS[config.model_name](config)
    n_params = sum(p.numel() for p in module.parameters())
    logger.debug("built %s (%.2f M parameters)", config.name, n_params / 1e6)
    return module
