"""Registry of the YAML config kinds that ``medseg config validate`` knows."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from medseg.core import ConfigError, look_up_option
from medseg.inference import InferConfig
from medseg.io import DatasetManifest
from medseg.models import NetworkConfig
from medseg.runner._demo import DemoConfig
from medseg.training import TrainConfig
from medseg.transforms import Plans

CONFIG_KINDS: dict[str, type[BaseModel]] = {
    "dataset": DatasetManifest,
    "demo": DemoConfig,
    "inference": InferConfig,
    "model": NetworkConfig,
    "plans": Plans,
    "training": TrainConfig,
}

# Folder a config lives in → its kind, used when --kind is not given.
_KIND_BY_FOLDER = {
    "data_manifests": "dataset",
    "pipelines": "demo",
    "training": "training",
    "models": "model",
    "inference": "inference",
    "plans": "plans",
}


def config_schema(kind: str | None, path: str | Path) -> type[BaseModel]:
    """Schema for ``kind``, or for the folder ``path`` is in when ``kind`` is None."""
    if kind is None:
        kind = _KIND_BY_FOLDER.get(Path(path).resolve().parent.name)
        if kind is None:
            raise ConfigError(
                f"cannot tell the config kind from its folder; pass --kind "
                f"({', '.join(sorted(CONFIG_KINDS))})",
                path=path,
            )
    return CONFIG_KINDS[look_up_option(kind, CONFIG_KINDS, what="config kind")]
