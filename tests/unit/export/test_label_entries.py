"""Sidecar entries from names (code map, then the anatomy vocabulary), and structures coded
from a sidecar (issue 24 item 8)."""

from __future__ import annotations

from pathlib import Path

from medseg.export import build_structures, describe_labels, load_structure_codes


def test_names_are_coded_from_the_map_then_the_vocabulary(repo_root: Path) -> None:
    code_map = load_structure_codes(repo_root / "configs/export/structure_codes.yaml")
    entries = describe_labels({1: "spleen", 2: "left kidney", 3: "my_lesion_x"}, code_map=code_map)
    spleen, kidney, unknown = entries
    assert spleen["type"]["meaning"] == "Spleen"
    assert (kidney["type"]["meaning"], kidney["laterality"]["meaning"]) == ("Kidney", "Left")
    assert unknown["type"] is None
    assert unknown["category"] is None


def test_build_structures_takes_names_and_codes_from_the_sidecar() -> None:
    sidecar = {e["label"]: e for e in describe_labels({7: "right kidney"})}
    (structure,) = build_structures([7], sidecar=sidecar)  # the default map knows no names
    assert structure.name == "right kidney"
    assert structure.code_matched
    assert (structure.code.type, structure.code.modifier) == ("Kidney", "Right")
    (overridden,) = build_structures([7], names={7: "ren dexter"}, sidecar=sidecar)
    assert overridden.name == "ren dexter"
    assert not overridden.code_matched
