"""Models loaded once per worker process, not once per case."""

from __future__ import annotations

import functools

import torch

from medseg.core import ConfigError
from medseg.models import Checkpoint, load_checkpoint
from medseg.sam import SamModel, load_sam_model
from medseg.transforms import Plans


@functools.lru_cache(maxsize=2)
def cached_sam_model(name: str, checkpoint: str | None, device: str) -> SamModel:
    """One model load per worker process, not per case."""
    return load_sam_model(name, checkpoint=checkpoint, device=device)


@functools.lru_cache(maxsize=2)
def cached_network(checkpoint_path: str, device: str) -> tuple[torch.nn.Module, Plans]:
    """One checkpoint load per worker process, not per case."""
    checkpoint = load_checkpoint(checkpoint_path)
    return checkpoint.build(device=device), checkpoint.plans


@functools.lru_cache(maxsize=2)
def cached_instance_model(path: str) -> tuple[Checkpoint, torch.nn.Module]:
    """One checkpoint load per worker process, not per case."""
    checkpoint = load_checkpoint(path)
    if not checkpoint.is_instance_model:
        raise ConfigError(
            f"method nuclei_model needs an instance model (target instance_boundary); this "
            f"checkpoint's target is {checkpoint.target.value}",
            path=path,
        )
    return checkpoint, checkpoint.build(device="cpu")
