"""The coded structure vocabulary: names, synonyms, abbreviations, codes and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.anatomy import (
    MODALITIES_2D,
    VOCABULARY,
    Concept,
    Vocabulary,
    image_modalities,
    infer_modality,
    normalize_modality,
    normalize_text,
    split_names,
)
from medseg.core import ConfigError, StructureNameError
from medseg.export import load_structure_codes


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return Vocabulary()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("liver", "liver"),
        ("Liver", "liver"),
        ("spleen", "spleen"),
        ("L kidney", "kidney_left"),
        ("left kidney", "kidney_left"),
        ("kidney, left", "kidney_left"),
        ("kidney_left", "kidney_left"),
        ("Lt. kidney", "kidney_left"),
        ("rt kidney", "kidney_right"),
        ("right renal", "kidney_right"),
        ("kidneys", "kidneys"),
        ("both kidneys", "kidneys"),
        ("R lung", "lung_right"),
        ("lungs", "lungs"),
        ("IVC", "inferior_vena_cava"),
        ("gall bladder", "gallbladder"),
        ("livr", "liver"),  # one typo: fuzzy match, logged
    ],
)
def test_names_synonyms_and_abbreviations_match(
    vocabulary: Vocabulary, text: str, key: str
) -> None:
    assert vocabulary.match(text, modality="CT").key == key


def test_normalize_text_spells_out_sides_and_drops_punctuation() -> None:
    assert normalize_text("Kidney, L.") == "kidney left"
    assert normalize_text("RT_lung") == "right lung"


@pytest.mark.parametrize("text", ["kidney", "lung", "kidny"])
def test_a_bare_paired_organ_is_ambiguous(vocabulary: Vocabulary, text: str) -> None:
    with pytest.raises(StructureNameError, match="ambiguous") as caught:
        vocabulary.match(text, modality="CT")
    assert len(caught.value.candidates) == 3  # left, right, both
    assert isinstance(caught.value, ConfigError)
    assert isinstance(caught.value, ValueError)


def test_unknown_text_lists_the_closest_names(vocabulary: Vocabulary) -> None:
    with pytest.raises(StructureNameError, match="names no known structure") as caught:
        vocabulary.match("banana", modality="CT")
    assert 1 <= len(caught.value.candidates) <= 4
    assert caught.value.text == "banana"
    with pytest.raises(StructureNameError, match="closest: liver"):
        vocabulary.match("liver lobe", modality="CT")


def test_a_side_is_never_swapped_or_invented(vocabulary: Vocabulary) -> None:
    assert vocabulary.match("left kidny", modality="CT").key == "kidney_left"
    with pytest.raises(StructureNameError):
        vocabulary.match("left spleen", modality="CT")
    with pytest.raises(StructureNameError):
        vocabulary.match("left kidneys liver", modality="CT")


@pytest.mark.parametrize(
    ("text", "modality", "message"),
    [
        ("liver", "MR", "located on CT only; this image is MR"),
        ("nuclei", "CT", "nuclei_model segmenter \\(nuclei\\); this image is CT"),
        ("retinal vessels", "CT", "trained_model segmenter \\(retina-vessels\\)"),
        ("brain tumour", "CT", "segmented on MR by the channel_model segmenter"),
        ("liver", ("microscopy", "fundus"), "this image is 2D \\(microscopy or fundus\\)"),
        ("brain tumour", ("microscopy", "fundus"), "segmented on MR"),
    ],
)
def test_wrong_modality_is_refused_with_the_segmenter_that_knows_it(
    vocabulary: Vocabulary, text: str, modality: str | tuple[str, ...], message: str
) -> None:
    with pytest.raises(StructureNameError, match=message):
        vocabulary.match(text, modality=modality)
    assert vocabulary.match(text).key  # without a modality the name itself is known


def test_match_all_keeps_the_order_splits_commas_and_joins_sides(
    vocabulary: Vocabulary,
) -> None:
    concepts = vocabulary.match_all(["liver, spleen, kidney, left", "lungs"], modality="CT")
    assert [c.key for c in concepts] == ["liver", "spleen", "kidney_left", "lungs"]
    with pytest.raises(StructureNameError, match="named twice"):
        vocabulary.match_all(["liver", "hepar"], modality="CT")
    with pytest.raises(StructureNameError, match="no structure named"):
        vocabulary.match_all([" , "], modality="CT")


def test_codes_are_the_export_code_map_codes(repo_root: Path) -> None:
    code_map = load_structure_codes(repo_root / "configs" / "export" / "structure_codes.yaml")
    for concept in VOCABULARY:
        code, matched = code_map.look_up(concept.key)
        assert matched, concept.key
        assert code.type == concept.sct_type, concept.key
        assert code.category == concept.sct_category, concept.key
        assert code.modifier == concept.laterality, concept.key


def test_sidecar_entry_carries_snomed_codes(vocabulary: Vocabulary) -> None:
    entry = vocabulary.match("left kidney").to_json()
    assert entry["name"] == "left kidney"
    assert entry["type"] == {"value": "64033007", "scheme": "SCT", "meaning": "Kidney"}
    assert entry["laterality"]["meaning"] == "Left"  # type: ignore[index]
    assert entry["category"]["value"] == "91723000"  # type: ignore[index]


def test_group_concepts_name_their_parts(vocabulary: Vocabulary) -> None:
    assert vocabulary.concept("kidneys").parts == ("kidney_left", "kidney_right")
    assert vocabulary.concept("lungs").parts == ("lung_left", "lung_right")


def test_invented_codes_and_duplicate_names_are_rejected() -> None:
    with pytest.raises(AttributeError):
        Vocabulary(concepts=(Concept("x", "x", "NoSuchStructure"),))
    with pytest.raises(ValueError, match="is used by"):
        Vocabulary(concepts=(Concept("a", "liver", "Liver"), Concept("b", "liver", "Spleen")))


def test_infer_modality_from_metadata_and_hounsfield_units() -> None:
    rng = np.random.default_rng(0)
    ct = rng.normal(40, 30, (20, 20, 10))
    ct[:5] = -1000
    assert infer_modality(ct, {}) == "CT"
    assert infer_modality(ct, {"modality": "MR"}) == "MR"
    assert infer_modality(rng.uniform(0, 800, (20, 20, 10)), {}) is None


def test_image_modalities_stated_inferred_or_any_2d_kind() -> None:
    rng = np.random.default_rng(0)
    ct = rng.normal(40, 30, (20, 20, 10))
    ct[:5] = -1000
    grey = rng.uniform(0, 800, (20, 20, 10))
    assert image_modalities(grey, {}, stated="mr") == ("MR",)
    assert image_modalities(grey, {}, stated="Microscopy") == ("microscopy",)
    assert image_modalities(ct, {}, stated="mixed") == ("CT",)  # a manifest's "mixed"
    assert image_modalities(ct, {}) == ("CT",)
    assert image_modalities(grey, {"is_2d": True}) == MODALITIES_2D
    assert image_modalities(grey, {}) is None
    assert normalize_modality(" ct ") == "CT"
    assert normalize_modality("FUNDUS") == "fundus"


def test_routed_concepts_name_their_registered_segmenter_and_model(
    vocabulary: Vocabulary,
) -> None:
    routes = {
        key: (vocabulary.concept(key).segmenter, vocabulary.concept(key).model)
        for key in ("brain_tumour", "nuclei", "retinal_vessels", "liver")
    }
    assert routes == {
        "brain_tumour": ("channel_model", "brain-tumour"),
        "nuclei": ("nuclei_model", "nuclei"),
        "retinal_vessels": ("trained_model", "retina-vessels"),
        "liver": ("sam_text", None),
    }
    assert vocabulary.match("nuclei", modality=MODALITIES_2D).key == "nuclei"
    assert vocabulary.match("retinal vessels", modality=("fundus",)).key == "retinal_vessels"


def test_split_names_joins_a_trailing_side_word() -> None:
    assert split_names(["liver; spleen", "kidney, left, lungs", " , "]) == [
        "liver",
        "spleen",
        "kidney left",
        "lungs",
    ]
