"""Structure code map: SNOMED CT keywords checked against pydicom's dictionary."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medseg.core import ConfigError, load_config
from medseg.export import StructureCodeMap, build_structures


def test_exact_pattern_and_default(code_map: StructureCodeMap) -> None:
    liver, matched = code_map.look_up("Liver")
    assert matched
    assert (liver.category_code.value, liver.type_code.value) == ("91723000", "10200004")
    rib, matched = code_map.look_up("rib_left_7")
    assert matched
    assert rib.type_code.meaning == "Rib"
    assert rib.modifier_code is not None
    assert rib.modifier_code.value == "7771000"
    other, matched = code_map.look_up("mystery_blob")
    assert not matched
    assert other == code_map.default


def test_every_structure_of_the_real_ct_is_coded(
    repo_root: Path, code_map: StructureCodeMap
) -> None:
    manifest = yaml.safe_load(
        (repo_root / "data_manifests" / "ct_totalsegmentator.yaml").read_text()
    )
    present = [1, 5, 6, 7, 8, 20, 32, 33, 52, 63, 64, 69, 70, 79, 86, 87]
    present += [97, 98, 99, 100, 101, 102, 103, 109, 110, 111, 112, 113, 114, 115, 117]
    structures = build_structures(present, names=manifest["labels"], code_map=code_map)
    assert len(structures) == 31
    assert all(s.code_matched for s in structures)
    assert len({s.color_rgb for s in structures}) >= 18


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"category": "AnatomicalStructure", "type": "Livr"}, "type"),
        ({"category": "Organz", "type": "Liver"}, "category"),
        ({"category": "AnatomicalStructure", "type": "Liver", "modifier": "Up"}, "modifier"),
    ],
)
def test_unknown_codes_are_config_errors(tmp_path: Path, entry: dict, message: str) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text(yaml.safe_dump({"structures": {"liver": entry}}))
    with pytest.raises(ConfigError, match=message):
        load_config(path, StructureCodeMap)


def test_unknown_key_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text("structure: {}\n")
    with pytest.raises(ConfigError, match="structure"):
        load_config(path, StructureCodeMap)


def test_label_values_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="> 0"):
        build_structures([0, 1])


def test_shipped_code_map_validates_with_the_cli(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medseg.cli import main

    path = repo_root / "configs" / "export" / "structure_codes.yaml"
    assert main(["config", "validate", str(path)]) == 0
    assert "StructureCodeMap" in capsys.readouterr().out


def test_structures_take_slicer_colours_so_a_liver_is_liver_coloured(
    code_map: StructureCodeMap,
) -> None:
    names = {1: "liver", 2: "spleen", 3: "kidney_left", 4: "aorta"}
    colours = {
        s.name: s.color_rgb for s in build_structures([1, 2, 3, 4], names=names, code_map=code_map)
    }
    # 3D Slicer's SlicerGeneralAnatomy terminology, recommendedDisplayRGBValue
    assert colours == {
        "liver": (221, 130, 101),
        "spleen": (157, 108, 162),
        "kidney_left": (185, 102, 83),
        "aorta": (224, 97, 76),
    }


def test_uncoded_structures_take_matplotlib_tab20_in_label_order() -> None:
    from matplotlib import colormaps

    structures = build_structures([3, 1, 2], warn_uncoded=False)
    tab20 = [tuple(round(255 * c) for c in colormaps["tab20"].colors[i]) for i in (0, 2, 4)]
    assert [s.color_rgb for s in structures] == tab20
