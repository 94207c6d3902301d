"""Models: network builders (registry), checkpoints and the SAM-family weight loaders."""

from __future__ import annotations

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
from medseg.models._sam import (
    LITEMEDSAM_SHA256,
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    InputNormalization,
    SamModel,
    SamModelName,
    litemedsam_checkpoint_path,
    load_sam_model,
)
from medseg.models._sam_openvino import EncoderBackend, default_cache_dir, openvino_available
from medseg.models._shipped import (
    SHIPPED_MODELS_DIR,
    list_shipped_models,
    resolve_model_path,
    shipped_model_card,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "LITEMEDSAM_SHA256",
    "MODEL_DIMS",
    "SAM_PIXEL_MEAN",
    "SAM_PIXEL_STD",
    "SHIPPED_MODELS_DIR",
    "Checkpoint",
    "DeepLabV3Plus",
    "EncoderBackend",
    "InputNormalization",
    "ModelName",
    "ModelTask",
    "NetworkConfig",
    "SamModel",
    "SamModelName",
    "build_model",
    "default_cache_dir",
    "detections_to_instances",
    "list_models",
    "list_shipped_models",
    "litemedsam_checkpoint_path",
    "load_checkpoint",
    "load_sam_model",
    "openvino_available",
    "resolve_device",
    "resolve_model_path",
    "save_checkpoint",
    "shipped_model_card",
]
