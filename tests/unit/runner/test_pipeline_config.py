from __future__ import annotations

import pytest

from medseg.core import ConfigError, parse_config
from medseg.runner import PipelineConfig

_BASE = {
    "name": "t",
    "description": "test",
    "dataset": "data_manifests/cells_dsb2018.yaml",
    "segment": {"method": "otsu_watershed"},
}


def test_minimal_pipeline_is_valid() -> None:
    config = parse_config(PipelineConfig, {**_BASE, "stages": ["ingest", "segment"]})
    assert config.export.mask_nifti


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (["segment", "ingest"], "stages must follow the order"),
        (["ingest", "evaluate"], "stage 'segment' is required"),
        (["ingest", "segment", "segment"], "each stage may appear once"),
        (["ingest", "segment", "publish"], "stages.2"),
    ],
)
def test_bad_stage_lists(stages: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(PipelineConfig, {**_BASE, "stages": stages}, source="p.yaml")


def test_sam_method_needs_its_section() -> None:
    with pytest.raises(ConfigError, match="needs a 'sam' section"):
        parse_config(
            PipelineConfig,
            {**_BASE, "stages": ["ingest", "segment"], "segment": {"method": "sam_reference_box"}},
        )
