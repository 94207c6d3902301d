"""Checkpoints that carry everything needed to reuse a trained network.

A checkpoint is a ``torch.save`` dict of plain types and tensors (loadable with
``weights_only=True``): format tag, the resolved :class:`NetworkConfig`, the
:class:`~medseg.transforms.Plans`, label names, the training config, what the network was
trained to output (its :class:`~medseg.transforms.TrainingTarget`, with the instance
post-processing settings validated for it), the weights and — for resuming —
optimizer/scheduler state, epoch and best metric.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medseg.core import ModelError, atomic_output, parse_config
from medseg.models._registry import NetworkConfig, build_model
from medseg.transforms import Plans, TrainingTarget

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "medseg-checkpoint/1"


@dataclass
class Checkpoint:
    """A trained network and its context.

    Attributes
    ----------
    network
        How to rebuild the network.
    plans
        Preprocessing, patch size and labels the network was trained with.
    state_dict
        Network weights.
    training_config
        The resolved training config (plain dict), for the record.
    target
        What the outputs mean: ``semantic`` classes, or ``instance_boundary`` (background /
        interior / boundary, turned into instances by ``medseg.inference.label_instances``).
    instance_postprocess
        For ``instance_boundary``: the ``medseg.inference.InstanceConfig`` fields chosen on
        validation data for this network (plain dict; empty means the defaults).
    inference_defaults
        ``medseg.inference.InferConfig`` fields this model is meant to run with (e.g.
        ``{"mirror": true}`` when its post-processing was tuned with mirror TTA); settings
        the user gives win over them.
    epoch
        Last completed epoch (0-based), or -1 before training.
    best_metric
        Best validation score so far (NaN if none).
    resume_state
        Optimizer, scheduler and AMP scaler states (may be empty).
    """

    network: NetworkConfig
    plans: Plans
    state_dict: dict[str, torch.Tensor]
    training_config: dict[str, Any] = field(default_factory=dict)
    target: TrainingTarget = TrainingTarget.SEMANTIC
    instance_postprocess: dict[str, Any] = field(default_factory=dict)
    inference_defaults: dict[str, Any] = field(default_factory=dict)
    epoch: int = -1
    best_metric: float = float("nan")
    resume_state: dict[str, Any] = field(default_factory=dict)

    @property
    def is_instance_model(self) -> bool:
        """True when the outputs are turned into object instances (not a class map)."""
        return self.target.is_instance

    @property
    def label_names(self) -> dict[int, str]:
        """Class index → name (background 0 not included)."""
        return dict(self.plans.labels)

    def build(self, *, device: torch.device | str = "cpu") -> nn.Module:
        """The network with these weights, in eval mode on ``device``."""
        module = build_model(self.network)
        module.load_state_dict(self.state_dict)
        return module.to(device).eval()


def save_checkpoint(checkpoint: Checkpoint, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write ``checkpoint`` atomically to ``path`` (a ``.pt`` file)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "network": checkpoint.network.model_dump(mode="json"),
        "plans": checkpoint.plans.model_dump(mode="json"),
        "label_names": {int(k): v for k, v in checkpoint.label_names.items()},
        "training_config": checkpoint.training_config,
        "target": checkpoint.target.value,
        "instance_postprocess": checkpoint.instance_postprocess,
        "inference_defaults": checkpoint.inference_defaults,
        "state_dict": checkpoint.state_dict,
        "epoch": checkpoint.epoch,
        "best_metric": checkpoint.best_metric,
        "resume_state": checkpoint.resume_state,
    }
    with atomic_output(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (weights-only unpickling).

    Raises
    ------
    ModelError
        If the file is missing, not a torch file or not a medseg checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError("checkpoint not found", path=path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelError(
            f"cannot read checkpoint ({type(err).__name__}); expected a medseg .pt file",
            path=path,
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(
            f"not a medseg checkpoint: expected format {CHECKPOINT_FORMAT!r}", path=path
        )
    target_value = payload.get("target", TrainingTarget.SEMANTIC.value)
    try:
        target = TrainingTarget(target_value)
    except ValueError as err:
        known = ", ".join(t.value for t in TrainingTarget)
        raise ModelError(
            f"unknown checkpoint target {target_value!r} (known: {known}); "
            "is this checkpoint from a newer medseg?",
            path=path,
        ) from err
    return Checkpoint(
        network=parse_config(NetworkConfig, payload["network"], source=path),
        plans=parse_config(Plans, payload["plans"], source=path),
        state_dict=payload["state_dict"],
        training_config=dict(payload.get("training_config", {})),
        target=target,
        instance_postprocess=dict(payload.get("instance_postprocess", {})),
        inference_defaults=dict(payload.get("inference_defaults", {})),
        epoch=int(payload.get("epoch", -1)),
        best_metric=float(payload.get("best_metric", float("nan"))),
        resume_state=dict(payload.get("resume_state", {})),
    )
