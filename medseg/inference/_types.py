"""The types of checkpoint inference: its config and its result (shared by the semantic and
the instance predictors, so neither imports the other's module)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from medseg.core import ConfigModel
from medseg.inference._instances import InstanceConfig
from medseg.inference._postprocess import LabelPostprocess
from medseg.io import Volume
from medseg.models import Precision


class NestedRegion(ConfigModel):
    """One level of a nested region decision (BraTS: WT, then TC inside it, then ET inside TC).

    Attributes
    ----------
    labels
        Label ids whose probabilities are summed for this region.
    label
        Label id written where the summed probability exceeds ``threshold`` inside the
        previous level.
    threshold
        Decision threshold of the summed probability (0.5: the region is more likely than
        not; a lower value trades false positives for fewer misses).
    """

    labels: list[int] = Field(min_length=1)
    label: int = Field(ge=0, le=255)
    threshold: float = Field(default=0.5, gt=0, lt=1)


class InferConfig(ConfigModel):
    """How ``medseg infer`` predicts (``configs/inference/*.yaml`` or CLI flags).

    Attributes
    ----------
    overlap, sw_batch_size, precision
        Sliding-window settings (window = the plans' patch size); precision ``auto`` is
        fp32 on CPU and bf16/fp16 autocast on CUDA.
    mirror
        Mirror test-time augmentation over every spatial axis (2^dims forward passes).
    device
        ``auto`` (CUDA when present), ``cpu`` or ``cuda[:N]``.
    save_probabilities
        Also write per-class probabilities (float16, channel last).
    confidence
        Also return the per-voxel confidence (the largest class probability) and, with
        ``mirror``, the TTA disagreement (share of mirrored passes that disagree).
    postprocess
        Rules per class name (as in the checkpoint's labels).
    min_score
        Instance models (Mask R-CNN): detections less confident than this are dropped.
    instances
        Instance post-processing of an instance model (``target: instance_boundary``);
        null uses the settings stored in its checkpoint.
    regions
        Channel models: nested region decision instead of the argmax, outermost first
        (empty: argmax). Each level is decided inside the previous one.
    min_component_fraction
        Channel models with component filtering: foreground components (26-connected)
        smaller than this fraction of the largest are dropped (1: the largest only).
    """

    overlap: float = Field(default=0.5, ge=0, lt=1)
    sw_batch_size: int = Field(default=4, ge=1)
    precision: Precision = Precision.AUTO
    mirror: bool = False
    device: str = "auto"
    save_probabilities: bool = False
    confidence: bool = False
    postprocess: dict[str, LabelPostprocess] = Field(default_factory=dict)
    min_score: float = Field(default=0.5, ge=0, le=1)
    instances: InstanceConfig | None = None
    regions: list[NestedRegion] = Field(default_factory=list)
    min_component_fraction: float = Field(default=1.0, gt=0, le=1)


@dataclass(frozen=True)
class Prediction:
    """A prediction on the source grid.

    Attributes
    ----------
    labels
        Class map (uint8) with the input's spatial shape and affine (2D: ``(col, row, 1)``);
        for an instance model (Mask R-CNN or a 3-class boundary U-Net), an instance map
        (0 background, 1..N objects).
    probabilities
        ``(*spatial, C)`` float16 probabilities on the same grid, or None.
    seconds
        Wall time of the prediction.
    confidence
        ``(*spatial)`` float32 largest class probability per voxel, when asked for.
    disagreement
        ``(*spatial)`` float32 mirror-TTA disagreement in [0, 1], when asked for with TTA.
    """

    labels: Volume
    probabilities: Volume | None
    seconds: float
    confidence: Volume | None = None
    disagreement: Volume | None = None
