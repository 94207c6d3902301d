"""Registry of the YAML config kinds that ``medseg config validate`` knows."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from medseg.core import ConfigError, look_up_option
from medseg.deid import DeidConfig, PixelRules
from medseg.export import StructureCodeMap
from medseg.inference import InferConfig
from medseg.io import DatasetManifest
from medseg.models import NetworkConfig
from medseg.runner._pipeline import PipelineConfig
from medseg.sam import SamSegmentConfig
from medseg.training import TrainConfig
from medseg.transforms import Plans

CONFIG_KINDS: dict[str, type[BaseModel]] = {
    "dataset": DatasetManifest,
    "pipeline": PipelineConfig,
    "export_codes": StructureCodeMap,
    "deid_profile": DeidConfig,
    "deid_pixel_rules": PixelRules,
    "sam": SamSegmentConfig,
    "inference": InferConfig,
    "model": NetworkConfig,
    "plans": Plans,
    "training": TrainConfig,
}

# Folder a config lives in → its kind, used when --kind is not given.
_KIND_BY_FOLDER = {
    "data_manifests": "dataset",
    "pipelines": "pipeline",
    "export": "export_codes",
    "deid": "deid_profile",
    "sam": "sam",
    "training": "training",
    "models": "model",
    "inference": "inference",
    "plans": "plans",
}
# File names that decide the kind before the folder does.
_KIND_BY_NAME = {"pixel_rules.yaml": "deid_pixel_rules"}


def config_schema(kind: str | None, path: str | Path) -> type[BaseModel]:
    """Schema for ``kind``, or for the folder ``path`` is in when ``kind`` is None."""
    if kind is None:
        resolved = Path(path).resolve()
        kind = _KIND_BY_NAME.get(resolved.name) or _KIND_BY_FOLDER.get(resolved.parent.name)
        if kind is None:
            raise ConfigError(
                f"cannot tell the config kind from its folder; pass --kind "
                f"({', '.join(sorted(CONFIG_KINDS))})",
                path=path,
            )
    return CONFIG_KINDS[look_up_option(kind, CONFIG_KINDS, what="config kind")]
