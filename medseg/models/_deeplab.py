"""DeepLabV3+ (2D) from torchvision blocks: ResNet encoder, ASPP, low-level decoder.

``segmentation-models-pytorch`` is not installable here (not on the package index this
project uses), so the network is assembled from torchvision's ResNet and its DeepLabV3
``ASPP`` module with random weights (``weights=None``: nothing is downloaded). Layout
follows Chen et al., ECCV 2018: encoder output stride 16 (ResNet-50/101, dilated last
stage) or 32 (ResNet-18/34, whose basic blocks cannot dilate), ASPP with rates 6/12/18,
1×1 projection of the stride-4 features to 48 channels, two 3×3 convolutions and a 4×
bilinear upsampling back to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18, resnet34, resnet50, resnet101
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP

from medseg.core import look_up_option

_BACKBONES = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
}
_BOTTLENECK = {"resnet50", "resnet101"}


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ for 2D images.

    Input ``(B, in_channels, H, W)`` float; output logits ``(B, out_channels, H, W)``.
    ``H`` and ``W`` should be multiples of 32 (16 with a dilated backbone).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        backbone: str = "resnet50",
        aspp_rates: tuple[int, int, int] = (6, 12, 18),
    ) -> None:
        super().__init__()
        backbone = look_up_option(backbone, _BACKBONES, what="DeepLabV3+ backbone")
        kwargs: dict[str, object] = {"weights": None}
        if backbone in _BOTTLENECK:
            kwargs["replace_stride_with_dilation"] = [False, False, True]
        resnet = _BACKBONES[backbone](**kwargs)
        if in_channels != 3:
            resnet.conv1 = nn.Conv2d(
                in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False
            )
        self.encoder = IntermediateLayerGetter(
            resnet, return_layers={"layer1": "low", "layer4": "out"}
        )
        high_channels = 2048 if backbone in _BOTTLENECK else 512
        low_channels = 256 if backbone in _BOTTLENECK else 64
        self.aspp = ASPP(high_channels, list(aspp_rates), out_channels=256)
        self.project_low = nn.Sequential(
            nn.Conv2d(low_channels, 48, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU(inplace=True)
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(256 + 48, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the input resolution."""
        size = x.shape[-2:]
        features = self.encoder(x)
        low = self.project_low(features["low"])
        high = self.aspp(features["out"])
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.decoder(torch.cat([high, low], dim=1))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
