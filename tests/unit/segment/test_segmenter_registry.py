"""The segmenter registry: every method resolves to its segmenter, the runner goes through it,
and a new segmenter is one class plus its registration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.core import ConfigError, ConfigModel
from medseg.io import Case, Volume
from medseg.runner import CaseContext, PipelineConfig
from medseg.runner._stages import segment
from medseg.segment import (
    CaseImages,
    ChannelModelSegmenter,
    CheckpointInstanceSegmenter,
    CheckpointSemanticSegmenter,
    MapKind,
    SamBox3DSegmenter,
    SamSlicesSegmenter,
    SamTextSegmenter,
    Segmentation,
    SegmentConfig,
    Segmenter,
    SegmenterSpec,
    WatershedConfig,
    WatershedSegmenter,
    _registry,
    build_segmenter,
    list_segmenters,
    register_segmenter,
    segment_nuclei_watershed,
    segmenter_spec,
)

_SECTIONS = {
    "sam_reference_box": ({"sam": {"structures": ["liver"]}}, SamSlicesSegmenter),
    "otsu_watershed": ({}, WatershedSegmenter),
    "trained_model": ({"trained_model": {"model": "nuclei"}}, CheckpointSemanticSegmenter),
    "nuclei_model": ({}, CheckpointInstanceSegmenter),
    "sam_box_3d": ({"sam_3d": {"structures": ["spleen"]}}, SamBox3DSegmenter),
    "channel_model": ({}, ChannelModelSegmenter),
    "sam_text": ({"sam_text": {"structures": ["liver", "L kidney"]}}, SamTextSegmenter),
}


def test_every_method_is_registered_and_builds_its_segmenter() -> None:
    assert [spec.method for spec in list_segmenters()] == list(_SECTIONS)
    for method, (sections, kind) in _SECTIONS.items():
        config = SegmentConfig.model_validate({"method": method, **sections})
        assert type(config.build()) is kind
        assert config.settings() is getattr(config, segmenter_spec(method).section)


def test_unknown_method_says_did_you_mean() -> None:
    with pytest.raises(ConfigError, match="did you mean 'sam_box_3d'"):
        segmenter_spec("sam_box3d")


def test_missing_section_is_named() -> None:
    with pytest.raises(ValueError, match="method trained_model needs a 'trained_model' section"):
        SegmentConfig.model_validate({"method": "trained_model"})
    with pytest.raises(ConfigError, match=r"segment\.sam_3d is required"):
        build_segmenter("sam_box_3d", None)


def test_clashing_registration_is_refused() -> None:
    spec = segmenter_spec("otsu_watershed")
    with pytest.raises(ConfigError, match="clashes"):
        register_segmenter(
            SegmenterSpec("otsu_watershed2", spec.section, WatershedConfig, spec.build)
        )


class _ThresholdConfig(ConfigModel):
    level: float = 0.5


class _ThresholdSegmenter(Segmenter):
    def __init__(self, config: _ThresholdConfig) -> None:
        self.config = config

    def segment(self, case: CaseImages) -> Segmentation:
        labels = (case.image.array > self.config.level).astype(np.uint8)
        return Segmentation(labels=case.image.with_array(labels), kind=MapKind.SEMANTIC)


def test_a_new_segmenter_is_one_class_and_its_registration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_registry, "_SPECS", dict(_registry._SPECS))
    register_segmenter(
        SegmenterSpec("threshold", "threshold", _ThresholdConfig, _ThresholdSegmenter)  # type: ignore[arg-type]
    )
    image = Volume(array=np.array([[[0.2], [0.9]]]), affine=np.eye(4))
    segmenter = build_segmenter("threshold", _ThresholdConfig(level=0.5))
    result = segmenter.segment(CaseImages(case_id="c1", image=image, root=tmp_path))
    np.testing.assert_array_equal(result.labels.array[..., 0], [[0, 1]])
    np.testing.assert_array_equal(result.labels.affine, image.affine)
    assert segmenter.scored_structures({2: "b", 1: "a"}) == ["a", "b"]  # protocol default
    assert segmenter.display_window_hu() is None


def test_runner_segment_stage_goes_through_the_registry(tmp_path: Path) -> None:
    yy, xx = np.mgrid[:60, :80]
    disk = ((yy - 30) ** 2 + (xx - 40) ** 2 < 12**2).astype(np.uint8)
    image = Volume(array=np.where(disk, 200, 20).astype(np.uint8)[:, :, None], affine=np.eye(4))
    config = PipelineConfig.model_validate(
        {
            "name": "t",
            "description": "t",
            "dataset": "d",
            "stages": ["ingest", "segment"],
            "segment": {"method": "otsu_watershed"},
        }
    )
    context = CaseContext(
        case=Case(id="c1", image="x.png", split="test"),
        labels={},
        root=tmp_path,
        out_dir=tmp_path,
        image=image,
    )
    segment(context, config)
    assert context.prediction is not None
    expected = segment_nuclei_watershed(image, config=WatershedConfig())
    np.testing.assert_array_equal(context.prediction.array, expected.array)
    assert context.probabilities is None
