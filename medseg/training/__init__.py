"""Training of the project's own segmenters: config, data, loop, checkpoints."""

from __future__ import annotations

from medseg.training._channel_augmentation import (
    ChannelIntensityAugmenter,
    IntensityAugmentation,
)
from medseg.training._channel_patch_transforms import (
    LabelIntensityShift,
    SpatialAugmentation,
)
from medseg.training._channels_trainer import (
    ChannelCase,
    ChannelTrainConfig,
    ChannelTrainResult,
    PreparedCase,
    build_channel_network,
    build_channel_plans,
    prepare_case,
    train_channel_model,
)
from medseg.training._config import (
    ModelSection,
    OptimizerName,
    TrainConfig,
    compute_poly_factor,
)
from medseg.training._fit import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    FitStrategy,
    RunLogger,
    TrainResult,
    compute_sampling_probabilities,
    fit,
    select_training_cases,
)
from medseg.training._instance_trainer import (
    InstanceScoreFn,
    InstanceStrategy,
    build_instance_augmentation,
    load_instance_items,
    predict_instance_map,
    train_instance_model,
)
from medseg.training._instances import compute_instance_targets
from medseg.training._trainer import (
    SemanticStrategy,
    check_plans_match,
    network_from_plans,
    train_model,
    training_plans,
)

__all__ = [
    "BEST_CHECKPOINT",
    "LAST_CHECKPOINT",
    "ChannelCase",
    "ChannelIntensityAugmenter",
    "ChannelTrainConfig",
    "ChannelTrainResult",
    "FitStrategy",
    "InstanceScoreFn",
    "InstanceStrategy",
    "IntensityAugmentation",
    "LabelIntensityShift",
    "ModelSection",
    "OptimizerName",
    "PreparedCase",
    "RunLogger",
    "SemanticStrategy",
    "SpatialAugmentation",
    "TrainConfig",
    "TrainResult",
    "build_channel_network",
    "build_channel_plans",
    "build_instance_augmentation",
    "check_plans_match",
    "compute_instance_targets",
    "compute_poly_factor",
    "compute_sampling_probabilities",
    "fit",
    "load_instance_items",
    "network_from_plans",
    "predict_instance_map",
    "prepare_case",
    "select_training_cases",
    "train_channel_model",
    "train_instance_model",
    "train_model",
    "training_plans",
]
