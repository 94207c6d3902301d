"""Models: network builders (registry), checkpoints, shipped models and the device choice.

The SAM-family loaders moved to :mod:`medseg.sam`; their old names here
(``medseg.models.load_sam_model`` …) still resolve, on first use, for code written before the
move.
"""

from __future__ import annotations

import importlib
from typing import Any

from medseg.models._checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from medseg.models._deeplab import DeepLabV3Plus
from medseg.models._device import resolve_device
from medseg.models._maskrcnn import detections_to_instances
from medseg.models._registry import (
    MODEL_DIMS,
    ModelName,
    ModelTask,
    NetworkConfig,
    build_model,
    list_models,
)
from medseg.models._shipped import (
    SHIPPED_MODELS_DIR,
    list_shipped_models,
    resolve_model_path,
    shipped_model_card,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODEL_DIMS",
    "SHIPPED_MODELS_DIR",
    "Checkpoint",
    "DeepLabV3Plus",
    "ModelName",
    "ModelTask",
    "NetworkConfig",
    "build_model",
    "detections_to_instances",
    "list_models",
    "list_shipped_models",
    "load_checkpoint",
    "resolve_device",
    "resolve_model_path",
    "save_checkpoint",
    "shipped_model_card",
]

# Names that moved to medseg.sam, resolved lazily (medseg.sam sits above this layer).
_MOVED_TO_SAM = frozenset(
    {
        "LITEMEDSAM_SHA256",
        "SAM_PIXEL_MEAN",
        "SAM_PIXEL_STD",
        "InputNormalization",
        "SamModel",
        "SamModelName",
        "litemedsam_checkpoint_path",
        "load_sam_model",
    }
)


def __getattr__(name: str) -> Any:
    if name not in _MOVED_TO_SAM:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("medseg.sam"), name)
