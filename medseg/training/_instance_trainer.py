"""Training of instance segmenters (Mask R-CNN) from instance label maps.

``medseg train`` dispatches here when the model is an instance segmenter. The run folder,
checkpoints (:class:`~medseg.models.Checkpoint` with plans, labels and config), MLflow
logging, resume and DDP behave as for the semantic models (:mod:`._trainer`):

- every case is read once and preprocessed with the plans (per-image z-score for
  microscopy); its label file is kept as an instance map (0 background, 1..N objects);
- a step takes ``batch_size`` cases drawn with replacement, each cropped to the plans'
  patch size (a crop centred on an object with probability ``foreground_oversampling``),
  flipped, rotated by multiples of 90° and intensity-scaled/shifted (MONAI transforms, so
  instances stay exact); targets (boxes, labels, masks) come from the cropped map;
- the loss is the sum of torchvision's five Mask R-CNN losses;
- every random stream is re-seeded from ``seed + 1000 · epoch + rank`` at the start of an
  epoch, so a run resumed from its last checkpoint continues exactly;
- validation (every ``validate_every_epochs``) predicts whole images and scores them with
  the given ``score_fn(predicted instances, reference instances)`` (F1 at IoU 0.5 from the
  CLI); the best checkpoint follows it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.core import InputError
from medseg.io import DatasetManifest, read_image
from medseg.models import NetworkConfig, detections_to_instances
from medseg.training._config import TrainConfig
from medseg.training._config import network_from_plans as _network_from_plans
from medseg.training._fit import (
    RunLogger,
    TrainResult,
    compute_sampling_probabilities,
    fit,
    select_training_cases,
)
from medseg.training._instances import compute_instance_targets
from medseg.transforms import Plans, build_preprocessing, load_case, run_chain

logger = logging.getLogger(__name__)

#: ``score_fn(predicted instances, reference instances) -> float`` on ``(H, W)`` maps.
InstanceScoreFn = Callable[[np.ndarray, np.ndarray], float]

#: Gradient-norm clip for the summed detection losses.
_CLIP_NORM = 10.0


def _load_instances(case: Any, *, root: Path) -> np.ndarray:
    """The case's label file as an ``(H, W)`` int32 instance map (rows, columns)."""
    array = np.asarray(read_image(root / case.label).array)
    if array.ndim == 4:
        array = array[..., 0]
    if array.ndim != 3 or array.shape[2] != 1:
        raise InputError(
            f"case {case.id}: instance training needs 2D label maps, found shape {array.shape}"
        )
    return np.ascontiguousarray(array[:, :, 0].T).astype(np.int32)


def load_instance_items(
    manifest: DatasetManifest, cases: list[Any], *, plans: Plans, root: Path
) -> list[dict[str, Any]]:
    """Preprocessed images ``(C, H, W)`` and instance maps ``(1, H, W)`` of ``cases``.

    Images are read as :func:`~medseg.transforms.load_case` does (``(C, column, row)``),
    preprocessed with the plans and transposed to torchvision's ``(C, row, column)``.
    """
    preprocess = build_preprocessing(plans)
    items = []
    for case in cases:
        arrays = load_case(
            case, root=root, labels=manifest.labels, with_label=False, image_keys=plans.image_keys
        )
        instances = _load_instances(case, root=root)
        if instances.shape != arrays.image.shape[1:][::-1]:
            raise InputError(
                f"case {case.id}: label map {instances.shape[::-1]} and image "
                f"{arrays.image.shape[1:]} differ in size"
            )
        item = run_chain(
            preprocess,
            {
                "image": arrays.image,
                "label": instances.T[None].copy(),
                "spacing_mm": list(arrays.spacing_mm),
            },
        )
        image = np.ascontiguousarray(np.swapaxes(np.asarray(item["image"]), 1, 2))
        label = np.ascontiguousarray(np.swapaxes(np.asarray(item["label"]), 1, 2))
        items.append({"image": image.astype(np.float32), "label": label.astype(np.int32)})
        items[-1]["case_id"] = case.id
    return items


def build_instance_augmentation(plans: Plans) -> Any:
    """Random crop (object-centred with the plans' oversampling), dihedral flips/rotations,
    intensity scale and shift: transforms that keep instance ids exact."""
    from monai.transforms import (
        Compose,
        RandCropByPosNegLabeld,
        RandFlipd,
        RandRotate90d,
        RandScaleIntensityd,
        RandShiftIntensityd,
        SpatialPadd,
    )

    keys = ["image", "label"]
    patch = [int(p) for p in reversed(plans.patch_size)]  # plans: (column, row); here (row, column)
    return Compose(
        [
            SpatialPadd(keys=keys, spatial_size=patch, mode="constant"),
            RandCropByPosNegLabeld(
                keys=keys,
                label_key="label",
                spatial_size=patch,
                pos=plans.foreground_oversampling,
                neg=1.0 - plans.foreground_oversampling,
                num_samples=1,
                allow_smaller=False,
            ),
            RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
            RandRotate90d(keys=keys, prob=0.75, max_k=3),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        ]
    )


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _sample_batch(
    items: list[dict[str, Any]],
    chain: Any,
    rng: np.random.Generator,
    *,
    batch_size: int,
    device: torch.device,
    probabilities: np.ndarray | None = None,
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    images, targets = [], []
    indices = (
        rng.integers(0, len(items), size=batch_size)
        if probabilities is None
        else rng.choice(len(items), size=batch_size, p=probabilities)
    )
    for index in indices:
        item = items[int(index)]
        out = chain({"image": item["image"], "label": item["label"]})
        out = out[0] if isinstance(out, list) else out
        image = torch.as_tensor(_to_numpy(out["image"]), dtype=torch.float32)
        instances = _to_numpy(out["label"])[0].astype(np.int64)
        target = compute_instance_targets(instances)
        images.append(image.to(device))
        targets.append({key: value.to(device) for key, value in target.items()})
    return images, targets


def predict_instance_map(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    device: torch.device,
    min_score: float = 0.5,
    mask_threshold: float = 0.5,
) -> np.ndarray:
    """``(H, W)`` instance map of one preprocessed ``(C, H, W)`` image."""
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        detections = model([torch.as_tensor(image, dtype=torch.float32, device=device)])[0]
    if was_training:
        model.train()
    return detections_to_instances(
        detections, shape=image.shape[1:], min_score=min_score, mask_threshold=mask_threshold
    )


def train_instance_model(
    config: TrainConfig,
    *,
    plans: Plans,
    manifest: DatasetManifest,
    root: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    run_logger: RunLogger | None = None,
    score_fn: InstanceScoreFn | None = None,
    stop_after_epochs: int | None = None,
) -> TrainResult:
    """Train the configured instance segmenter; arguments as :func:`train_model`'s.

    ``score_fn`` compares instance maps (e.g. F1 at IoU 0.5); without it, or without
    validation cases, no best checkpoint is written.
    """
    network = _network_from_plans(plans, config.model)
    strategy = InstanceStrategy(
        config, plans=plans, network=network, manifest=manifest, root=Path(root), score_fn=score_fn
    )
    return fit(
        strategy,
        config,
        plans=plans,
        network=network,
        out_dir=out_dir,
        resume=resume,
        overwrite=overwrite,
        run_logger=run_logger,
        stop_after_epochs=stop_after_epochs,
    )


class InstanceStrategy:
    """Instance segmenters (Mask R-CNN) in the fit loop: whole augmented images with their
    instance targets, the detector's summed losses (each part logged), validation by
    ``score_fn`` on predicted instance maps."""

    clip_norm = _CLIP_NORM
    validation_key = "val_score"
    validation_name = "val score"
    find_unused_parameters = True  # heads get no gradient without proposals
    limit_cpu_threads = False
    cpu_bf16 = False  # TrainConfig.cpu_bf16 applies to the semantic trainer

    def __init__(
        self,
        config: TrainConfig,
        *,
        plans: Plans,
        network: NetworkConfig,
        manifest: DatasetManifest,
        root: Path,
        score_fn: InstanceScoreFn | None,
    ) -> None:
        self.config, self.plans, self.network = config, plans, network
        self.manifest, self.root = manifest, root
        self.score_fn = score_fn
        self.batch_size = config.batch_size or plans.batch_size

    def prepare(self, *, device: torch.device) -> None:
        # validation_case_ids are held out of training, as for the semantic trainer
        train_cases, validation_cases = select_training_cases(self.config, self.manifest)
        self.probabilities = compute_sampling_probabilities(
            train_cases, self.config.sampling_weights, default_modality=self.manifest.modality
        )
        self.items = load_instance_items(
            self.manifest, train_cases, plans=self.plans, root=self.root
        )
        self.validation = load_instance_items(
            self.manifest, validation_cases, plans=self.plans, root=self.root
        )
        logger.info(
            "training %s on %d image(s), validating on %d, batch %d",
            self.network.name,
            len(self.items),
            len(self.validation),
            self.batch_size,
        )
        self.chain = build_instance_augmentation(self.plans)

    def batches(
        self, *, epoch_seed: int, device: torch.device
    ) -> Iterator[tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]]:
        self.chain.set_random_state(seed=epoch_seed)
        rng = np.random.default_rng(epoch_seed)
        for _ in range(self.config.iterations_per_epoch):
            yield _sample_batch(
                self.items,
                self.chain,
                rng,
                batch_size=self.batch_size,
                device=device,
                probabilities=self.probabilities,
            )

    def forward(
        self,
        module: torch.nn.Module,
        inputs: list[torch.Tensor],
        targets: list[dict[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        return module(inputs, targets)

    def compute_loss(
        self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return sum(outputs.values()), outputs  # type: ignore[return-value]

    def can_validate(self) -> bool:
        return self.score_fn is not None and bool(self.validation)

    def validate(self, model: torch.nn.Module, *, device: torch.device) -> float:
        if self.score_fn is None:
            return float("nan")
        scores = [
            self.score_fn(
                predict_instance_map(model, item["image"], device=device),
                item["label"][0],
            )
            for item in self.validation
        ]
        finite = [s for s in scores if not math.isnan(s)]
        return float(np.mean(finite)) if finite else float("nan")
