"""Mask R-CNN (torchvision) set up for small objects trained from scratch.

- Backbone: a torchvision ResNet with GroupNorm (32 groups) and random weights, with an FPN
  over its four stages. Training from scratch with batches of a few images needs a
  normalisation that does not depend on the batch (He et al., "Rethinking ImageNet
  Pre-training", ICCV 2019); torchvision's default frozen BatchNorm with random statistics
  would not normalise at all.
- GroupNorm also in the FPN and the mask head (as torchvision's v2 Mask R-CNN uses norms
  there); without it the random-init mask logits start huge (mask loss ~18).
- Heads sized from the FPN width: mask head 2 convolutions of that width (torchvision: 4),
  box head an MLP of 4× it (torchvision's size for a width of 256); 128 proposals sampled
  per training image (torchvision: 512). These keep a CPU training step affordable.
- Anchors: one size per FPN level (P2–P6), three aspect ratios.
- Images keep their own size and are expected already normalised (the plans' per-image
  z-score): the built-in transform only batches and pads them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.transform import GeneralizedRCNNTransform

#: Region proposals sampled per image for the box and mask heads while training (512 in
#: torchvision, a quarter of them positive); the mask head's cost, which dominates on CPU,
#: grows with the positives.
BOX_SAMPLES_PER_IMAGE = 128
#: Convolutions in the mask head (torchvision: 4).
MASK_HEAD_CONVS = 2


class NativeSizeTransform(GeneralizedRCNNTransform):
    """Batches images at their own size: no resizing, identity normalisation."""

    def __init__(self) -> None:
        super().__init__(
            min_size=1, max_size=1, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0]
        )

    def resize(self, image: Any, target: Any = None) -> tuple[Any, Any]:
        """Keep the image (and target) as they are."""
        return image, target


def build_maskrcnn(
    *,
    backbone: str,
    num_classes: int,
    fpn_channels: int,
    anchor_sizes_px: Sequence[int],
    max_instances: int,
) -> MaskRCNN:
    """A Mask R-CNN with random weights (see the module docstring).

    Parameters
    ----------
    backbone
        ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
    num_classes
        Object classes plus background.
    fpn_channels
        Width of the FPN and mask head.
    anchor_sizes_px
        Anchor size (pixels) for each of the five FPN levels.
    max_instances
        Most detections kept per image.
    """
    group_norm = functools.partial(nn.GroupNorm, 32)
    body = getattr(resnet, backbone)(weights=None, norm_layer=group_norm)
    first_stage = 64 * type(body.layer1[0]).expansion
    features = BackboneWithFPN(
        body,
        return_layers={f"layer{i}": str(i - 1) for i in range(1, 5)},
        in_channels_list=[first_stage * 2**i for i in range(4)],
        out_channels=fpn_channels,
        norm_layer=group_norm,
    )
    anchors = AnchorGenerator(
        tuple((int(s),) for s in anchor_sizes_px), ((0.5, 1.0, 2.0),) * len(anchor_sizes_px)
    )
    model = MaskRCNN(
        features,
        num_classes=None,  # given by the predictors below
        rpn_anchor_generator=anchors,
        box_head=TwoMLPHead(fpn_channels * 7 * 7, 4 * fpn_channels),
        box_predictor=FastRCNNPredictor(4 * fpn_channels, num_classes),
        mask_head=MaskRCNNHeads(
            fpn_channels, (fpn_channels,) * MASK_HEAD_CONVS, 1, norm_layer=group_norm
        ),
        mask_predictor=MaskRCNNPredictor(fpn_channels, fpn_channels, num_classes),
        box_detections_per_img=max_instances,
        box_batch_size_per_image=BOX_SAMPLES_PER_IMAGE,
    )
    model.transform = NativeSizeTransform()
    return model


def detections_to_instances(
    detections: dict[str, Any],
    *,
    shape: Sequence[int],
    min_score: float = 0.5,
    mask_threshold: float = 0.5,
    min_area_px: int = 1,
) -> np.ndarray:
    """An instance label map from Mask R-CNN's output for one image.

    Detections scoring at least ``min_score`` are painted from the lowest score to the
    highest, so where masks overlap the more confident one keeps the pixel; objects left
    with fewer than ``min_area_px`` pixels are dropped, and the rest renumbered 1..N by
    descending score.

    Parameters
    ----------
    detections
        ``scores`` ``(N,)`` and ``masks`` ``(N, 1, H, W)`` probabilities (torch tensors).
    shape
        ``(H, W)`` of the image (rows, columns).

    Returns
    -------
    np.ndarray
        ``(H, W)`` uint16 (int32 beyond 65,535 objects): 0 background, 1..N objects.
    """
    scores = detections["scores"].detach().float().cpu().numpy()
    masks = detections["masks"].detach().float().cpu().numpy()
    keep = np.flatnonzero(scores >= min_score)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    painted = np.zeros(tuple(int(s) for s in shape), dtype=np.int32)
    for rank in range(len(keep) - 1, -1, -1):
        painted[masks[keep[rank], 0] >= mask_threshold] = rank + 1
    ids, areas = np.unique(painted[painted > 0], return_counts=True)
    kept = ids[areas >= min_area_px]
    lookup = np.zeros(len(keep) + 1, dtype=np.int32)
    lookup[kept] = np.arange(1, len(kept) + 1)
    out = lookup[painted]
    return out.astype(np.uint16) if len(kept) < 2**16 else out
