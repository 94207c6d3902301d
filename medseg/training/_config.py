"""Typed training config (``configs/training/*.yaml``) and network choice from plans."""

from __future__ import annotations

import enum

from pydantic import Field, PositiveFloat

from medseg.core import ConfigError, ConfigModel
from medseg.io import Split
from medseg.models import ModelName, NetworkConfig
from medseg.transforms import Plans, TrainingTarget


class OptimizerName(str, enum.Enum):
    """Optimisers; both use a polynomial learning-rate decay (power 0.9) per epoch."""

    ADAMW = "adamw"
    SGD = "sgd"  # momentum 0.99, Nesterov (nnU-Net's choice)


class ModelSection(ConfigModel):
    """Which network to train; shape values not given here come from the plans.

    Attributes
    ----------
    name
        A registry name: unet2d, unet3d, dynunet, segresnet, deeplabv3plus, maskrcnn.
    features
        First-level feature maps (default: the plans').
    backbone
        deeplabv3plus / maskrcnn encoder (resnet18|34|50|101).
    anchor_sizes_px, fpn_channels, max_instances
        maskrcnn only (see :class:`~medseg.models.NetworkConfig`).
    """

    name: str
    features: int | None = Field(default=None, ge=4)
    backbone: str | None = None
    deep_supervision: bool = True
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    anchor_sizes_px: list[int] | None = Field(default=None, min_length=5, max_length=5)
    fpn_channels: int = Field(default=256, ge=32)
    max_instances: int = Field(default=100, ge=1)


class TrainConfig(ConfigModel):
    """One training run.

    Attributes
    ----------
    manifest
        Dataset manifest path (relative to the repository root or absolute).
    plans
        Plans YAML from ``medseg plan``; when absent the plans are computed from the
        manifest's training cases with a ``memory_budget_gb`` budget.
    train_splits, validation_splits
        Which manifest splits train and validate.
    validation_case_ids
        Cases taken out of the training splits to validate on (a validation set carved
        from the training data, so that no checkpoint or recipe is chosen on test cases).
    iterations_per_epoch
        Batches per epoch (patches are sampled, so an epoch is a number of steps).
    learning_rate
        Initial rate (default 3e-4 for AdamW, 1e-2 for SGD).
    validate_every_epochs
        Sliding-window validation period; the best checkpoint follows the mean Dice.
    overlap
        Sliding-window overlap for validation.
    amp
        Mixed precision (fp16 autocast + gradient scaling); used on CUDA only.
    cpu_bf16
        bfloat16 autocast of the forward pass on CPU (weights, optimiser and loss stay
        float32). On a CPU with AMX / AVX512-BF16 (oneDNN) a 2D U-Net step of 8 patches of
        128x128 measured 0.30 s instead of 0.55 s on one thread.
    cache_rate
        Fraction of cases whose preprocessing MONAI's CacheDataset keeps in memory.
    num_workers
        DataLoader worker processes for augmentation (each runs torch with one thread);
        0 augments in the training process.
    cpu_threads
        Torch intra-op threads of the training process on CPU (default: torch's choice,
        one per core). On a CPU shared with other jobs, 1 avoids OpenMP threads waiting
        for each other: a 2D U-Net step measured 0.19 s with 1 thread and 5.0 s with 2
        on this project's 2 cores at load 8.
    target
        ``semantic`` (the label map's classes) or ``instance_boundary`` (the labels are
        instance maps; the network learns background / interior / boundary, see
        :func:`medseg.transforms.compute_boundary_classes`).
    boundary_width_px
        Boundary band width of the ``instance_boundary`` target, in network pixels.
    core_fraction
        The ``instance_core`` target's core: interior pixels at least this fraction of their
        instance's largest inner distance deep.
    class_weights
        Loss weight of each output class (background first; Dice and cross-entropy), e.g.
        ``[1, 1, 2, 2]`` to count boundary and core pixels double for an ``instance_core``
        model. Empty (the default): every class weighs 1.
    contact_weight
        Cross-entropy weight of the pixels in the contact band between touching instances
        (within 2 px of two or more different instances, :func:`medseg.transforms.
        compute_contact_weights`, made from the instance ids after augmentation), for the
        ``instance_boundary`` / ``instance_core`` targets; every other pixel weighs 1 and the
        Dice part is unchanged. 1 (the default): off.
    sampling_weights
        Relative probability of drawing a training case, by the case's manifest
        ``modality`` (e.g. ``{microscopy_histo: 3}`` draws each H&E image three times as
        often as a fluorescence one); modalities not named weigh 1. Empty (the default):
        every case equally likely.
    init_weights
        A checkpoint whose weights start the training (fine-tuning; the optimiser starts
        afresh). Tensors whose shapes differ (a head with more classes) keep the overlapping
        part; an added output class starts as a copy of the interior class (index 1).
    validation_case_ids
        Cases of the training splits held out for validation (moved out of training), for
        datasets whose manifest has no validation split.
    """

    manifest: str
    plans: str | None = None
    memory_budget_gb: float = Field(default=8.0, gt=0)
    model: ModelSection
    train_splits: list[Split] = Field(default_factory=lambda: [Split.TRAIN])
    validation_splits: list[Split] = Field(default_factory=lambda: [Split.VALIDATION])
    validation_case_ids: list[str] = Field(default_factory=list)
    target: TrainingTarget = TrainingTarget.SEMANTIC
    boundary_width_px: int = Field(default=2, ge=1, le=16)
    core_fraction: float = Field(default=0.5, gt=0, le=1)
    sampling_weights: dict[str, PositiveFloat] = Field(default_factory=dict)
    class_weights: list[PositiveFloat] = Field(default_factory=list)
    contact_weight: PositiveFloat = 1.0
    init_weights: str | None = None
    epochs: int = Field(default=50, ge=1)
    iterations_per_epoch: int = Field(default=50, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    optimizer: OptimizerName = OptimizerName.ADAMW
    learning_rate: float | None = Field(default=None, gt=0)
    weight_decay: float = Field(default=3e-5, ge=0)
    validate_every_epochs: int = Field(default=1, ge=1)
    overlap: float = Field(default=0.5, ge=0, lt=1)
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    cpu_bf16: bool = False
    cache_rate: float = Field(default=1.0, ge=0, le=1)
    num_workers: int = Field(default=0, ge=0)
    cpu_threads: int | None = Field(default=None, ge=1)
    tracking_uri: str | None = None
    experiment: str = "medseg-train"

    @property
    def initial_learning_rate(self) -> float:
        """The configured rate or the optimiser's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 3e-4 if self.optimizer is OptimizerName.ADAMW else 1e-2


def _power_of_two_factor(n: int) -> int:
    return (n & -n).bit_length() - 1 if n > 0 else 0


def network_from_plans(plans: Plans, section: ModelSection) -> NetworkConfig:
    """Resolve the network's shape from the plans (channels, classes, strides, kernels).

    Raises
    ------
    ConfigError
        If the model does not support the plans' spatial dimensions or channels.
    """
    config = NetworkConfig(name=section.name)  # validates the name ("did you mean")
    name = config.model_name
    if name is ModelName.MASKRCNN:
        if plans.spatial_dims != 2 or plans.in_channels != 3:
            raise ConfigError(
                "maskrcnn is a 2D instance segmenter for RGB images; these plans are "
                f"{plans.spatial_dims}D with {plans.in_channels} channel(s)"
            )
        return NetworkConfig(
            name=section.name,
            in_channels=3,
            out_channels=plans.out_channels,
            spatial_dims=2,
            backbone=section.backbone,
            anchor_sizes_px=section.anchor_sizes_px,
            fpn_channels=section.fpn_channels,
            max_instances=section.max_instances,
        )
    features = section.features or plans.features
    common = {
        "name": section.name,
        "in_channels": plans.in_channels,
        "out_channels": plans.out_channels,
        "spatial_dims": plans.spatial_dims,
        "features": features,
        "dropout": section.dropout,
    }
    try:
        if name in (ModelName.UNET2D, ModelName.UNET3D, ModelName.DYNUNET):
            return NetworkConfig(
                **common,
                depth=plans.depth,
                strides=plans.strides,
                kernel_sizes=plans.kernel_sizes if name is ModelName.DYNUNET else None,
                deep_supervision=section.deep_supervision,
            )
        if name is ModelName.SEGRESNET:
            depth = min(plans.depth, *(_power_of_two_factor(p) for p in plans.patch_size))
            return NetworkConfig(**common, depth=max(1, depth))
        if any(p % 32 for p in plans.patch_size):
            raise ConfigError(
                f"deeplabv3plus needs patch sizes divisible by 32, plans have {plans.patch_size}"
            )
        return NetworkConfig(**common, backbone=section.backbone)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"model {section.name}: {err}") from err


def compute_poly_factor(epoch: int, *, epochs: int, power: float = 0.9) -> float:
    """Polynomial decay factor ``(1 - epoch / epochs) ** power`` (epoch 0-based)."""
    return max(0.0, 1.0 - epoch / epochs) ** power if epochs > 0 else 1.0
