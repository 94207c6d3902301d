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


def test_cell_nuclei_pipeline_uses_the_shipped_instance_model(repo_root) -> None:
    from medseg.core import load_config
    from medseg.runner import EvaluationKind, SegmentMethod

    config = load_config(repo_root / "pipelines/cell_nuclei.yaml", PipelineConfig)
    assert config.segment.method is SegmentMethod.NUCLEI_MODEL
    assert config.segment.nuclei_model.model == "nuclei"
    assert config.segment.nuclei_model.instances is None  # the checkpoint's own settings
    assert config.evaluate.kind is EvaluationKind.INSTANCE
    with pytest.raises(ConfigError, match="seed_threshold"):
        parse_config(
            PipelineConfig,
            {
                **_BASE,
                "stages": ["ingest", "segment"],
                "segment": {
                    "method": "nuclei_model",
                    "nuclei_model": {"instances": {"seed_threshold": 2.0}},
                },
            },
        )
