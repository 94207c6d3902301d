"""The ``sam_text`` segmenter: names from config, output labels, refusals by modality, and
concepts routed through the registry to the segmenter that knows them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.core import ConfigError, StructureNameError, parse_config
from medseg.io import Volume, read_image
from medseg.segment import (
    CaseImages,
    CheckpointInstanceSegmenter,
    MapKind,
    NucleiModelConfig,
    SamTextConfig,
    SamTextSegmenter,
    SegmentConfig,
    output_labels,
)

NUCLEI_PNG = "data/cells_dsb2018/test/images/06350c7cc618be44.png"
CT_LABELS = {1: "spleen", 2: "kidney_right", 3: "kidney_left", 5: "liver"}


def _ct(tmp_path: Path) -> CaseImages:
    rng = np.random.default_rng(0)
    array = rng.normal(40, 30, (24, 24, 8)).astype(np.float32)
    array[:4] = -1000
    return CaseImages(case_id="ct1", image=Volume(array=array, affine=np.eye(4)), root=tmp_path)


def test_structures_are_texts_checked_when_the_config_is_built() -> None:
    config = SamTextConfig(structures=["liver", "L kidney"])  # type: ignore[list-item]
    assert [c.key for c in config.concepts()] == ["liver", "kidney_left"]
    with pytest.raises(ConfigError, match="'banana' names no known structure"):
        parse_config(SamTextConfig, {"structures": ["liver", "banana"]})
    with pytest.raises(ConfigError, match="ambiguous"):
        parse_config(SamTextConfig, {"structures": ["kidney"]})
    with pytest.raises(ConfigError, match="needs a 'sam_text' section"):
        parse_config(SegmentConfig, {"method": "sam_text"})


def test_output_labels_follow_the_dataset_then_the_position() -> None:
    config = parse_config(
        SamTextConfig,
        {
            "structures": [
                "liver",
                "lungs",
                {"text": "left kidney", "output_label": 7},
                {"text": "spleen", "reference_labels": [9, 10]},
            ]
        },
    )
    assert output_labels(config, config.concepts(), CT_LABELS) == [5, 2, 7, 9]
    assert output_labels(config, config.concepts(), {}) == [1, 2, 7, 9]
    clash = parse_config(SamTextConfig, {"structures": ["liver", "lungs", "right kidney"]})
    with pytest.raises(ConfigError, match=r"share output labels \[2\]"):
        output_labels(clash, clash.concepts(), CT_LABELS)


def test_scored_structures_are_the_named_dataset_labels() -> None:
    config = parse_config(SamTextConfig, {"structures": ["hepar", "lungs", "kidney, right"]})
    assert SamTextSegmenter(config).scored_structures(CT_LABELS) == ["liver", "kidney_right"]


@pytest.mark.parametrize(
    ("texts", "image", "modality", "message"),
    [
        (["liver"], NUCLEI_PNG, None, r"located on CT only; this image is 2D \(microscopy or"),
        (["nuclei"], "ct", None, "nuclei_model segmenter \\(nuclei\\); this image is CT"),
        (["retinal vessels"], "ct", None, "trained_model segmenter \\(retina-vessels\\)"),
        (["brain tumour"], "ct", None, "segmented on MR by the channel_model segmenter"),
        (["liver"], "ct", "MR", "located on CT only; this image is MR"),
        (["nuclei", "retinal vessels"], NUCLEI_PNG, None, "name one structure at a time"),
        (["liver"], "data/ct_totalsegmentator/example_mr_sm.nii.gz", None, "cannot tell"),
    ],
)
def test_names_not_segmented_on_the_case_modality_are_refused(
    repo_root: Path,
    tmp_path: Path,
    texts: list[str],
    image: str,
    modality: str | None,
    message: str,
) -> None:
    case = (
        _ct(tmp_path)
        if image == "ct"
        else CaseImages(case_id="c", image=read_image(repo_root / image), root=repo_root)
    )
    settings: dict[str, object] = {"structures": texts, "modality": modality}
    if "example_mr" in image:
        settings["intensity"] = {"mode": "auto"}  # not stated to be a CT
    segmenter = SamTextSegmenter(parse_config(SamTextConfig, settings))
    with pytest.raises(StructureNameError, match=message):
        segmenter.segment(case)


def test_the_manifest_modality_decides_before_the_intensities(tmp_path: Path) -> None:
    case = _ct(tmp_path)  # Hounsfield-like, but the manifest says MR
    mr_case = CaseImages(case_id="c", image=case.image, root=tmp_path, modality="MR")
    segmenter = SamTextSegmenter(parse_config(SamTextConfig, {"structures": ["liver"]}))
    with pytest.raises(StructureNameError, match="this image is MR"):
        segmenter.segment(mr_case)


def test_nuclei_are_routed_through_the_registry_to_the_nuclei_model(repo_root: Path) -> None:
    case = CaseImages(
        case_id="dsb", image=read_image(repo_root / NUCLEI_PNG), root=repo_root, modality=None
    )
    segmenter = SamTextSegmenter(parse_config(SamTextConfig, {"structures": ["cell nuclei"]}))
    result = segmenter.segment_with_details(case)
    direct = CheckpointInstanceSegmenter(NucleiModelConfig()).segment(case)
    assert result.segmenter == "nuclei_model"
    assert result.segmentation.kind is MapKind.INSTANCE
    np.testing.assert_array_equal(result.segmentation.labels.array, direct.labels.array)
    (entry,) = result.entries
    assert entry["name"] == "nuclei"
    assert entry["type"]["meaning"] == "Nucleus"  # type: ignore[index]
    assert entry["instances"] == int(direct.labels.array.max()) > 5


@pytest.mark.slow
def test_retinal_vessels_are_routed_to_the_vessel_model(repo_root: Path) -> None:
    image = read_image(repo_root / "data/retina_drive/test/images/01_test.tif")
    case = CaseImages(case_id="drive", image=image, root=repo_root, modality="fundus")
    segmenter = SamTextSegmenter(
        parse_config(SamTextConfig, {"structures": ["retinal vasculature"]})
    )
    result = segmenter.segment_with_details(case)
    assert result.segmenter == "trained_model"
    values = set(np.unique(result.segmentation.labels.array).tolist())
    assert values == {0, 1}
    assert result.entries[0]["labels"] == {"1": "vessel"}
    fraction = float((result.segmentation.labels.array > 0).mean())
    assert 0.05 < fraction < 0.2  # DRIVE vessels cover about 12 % of the image


@pytest.mark.slow
def test_brain_tumour_on_mr_is_routed_to_the_tumour_model(repo_root: Path) -> None:
    folder = repo_root / "data/tumor_brats2015/brats2015_brats_2013_pat0001_1"
    flair = read_image(folder / "Flair_subtrMeanDivStd.nii.gz")
    t1c = read_image(folder / "T1c_subtrMeanDivStd.nii.gz")
    reference = read_image(folder / "OTMultiClass.nii.gz").array > 0
    case = CaseImages(
        case_id="brats", image=flair, root=repo_root, channels={"t1c": t1c}, modality="MR"
    )
    segmenter = SamTextSegmenter(parse_config(SamTextConfig, {"structures": ["glioma"]}))
    result = segmenter.segment_with_details(case)
    assert result.segmenter == "channel_model"
    predicted = result.segmentation.labels.array > 0
    dice = 2 * (predicted & reference).sum() / (predicted.sum() + reference.sum())
    assert dice > 0.6
    assert set(result.segmentation.structures.values()) <= {
        "necrotic_core",
        "oedema",
        "enhancing_tumour",
    }
