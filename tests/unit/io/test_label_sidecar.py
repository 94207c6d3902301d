"""Label sidecars (issue 24 item 8): written beside a mask, read back, other JSON ignored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.core import InputError, OutputExistsError
from medseg.io import (
    LABEL_SIDECAR_FORMAT,
    Volume,
    label_names,
    label_sidecar_path,
    read_label_sidecar,
    write_label_map,
    write_label_sidecar,
)

LIVER = {
    "label": 5,
    "name": "liver",
    "category": {"value": "91723000", "scheme": "SCT", "meaning": "Anatomical Structure"},
    "type": {"value": "10200004", "scheme": "SCT", "meaning": "Liver"},
    "laterality": None,
}


@pytest.mark.parametrize(
    ("mask", "sidecar"),
    [
        ("a/mask.nii.gz", "a/mask.labels.json"),
        ("x.nii", "x.labels.json"),
        ("s.nrrd", "s.labels.json"),
    ],
)
def test_sidecar_path(mask: str, sidecar: str) -> None:
    assert label_sidecar_path(Path(mask)) == Path(sidecar)


def test_write_label_map_writes_mask_and_sidecar(tmp_path: Path) -> None:
    volume = Volume(array=np.zeros((4, 4, 3), np.uint8), affine=np.eye(4))
    path = write_label_map(volume, tmp_path / "mask.nii.gz", entries=[LIVER])
    assert path.is_file()
    document = json.loads((tmp_path / "mask.labels.json").read_text())
    assert document["format"] == LABEL_SIDECAR_FORMAT
    entries = read_label_sidecar(path)
    assert entries == {5: LIVER}
    assert label_names(entries) == {5: "liver"}
    (tmp_path / "mask.nii.gz").unlink()  # the sidecar alone is not overwritten either
    with pytest.raises(OutputExistsError):
        write_label_map(volume, tmp_path / "mask.nii.gz", entries=[LIVER])
    assert not (tmp_path / "mask.nii.gz").exists()


def test_no_sidecar_and_foreign_json_read_as_none(tmp_path: Path) -> None:
    mask = tmp_path / "ct.nii.gz"
    assert read_label_sidecar(mask) is None
    # dcm2niix's BIDS metadata beside an image is not a label sidecar
    (tmp_path / "ct.json").write_text(json.dumps({"Modality": "CT", "SliceThickness": 2}))
    assert read_label_sidecar(mask) is None


def test_plain_json_with_a_labels_list_is_read(tmp_path: Path) -> None:
    # the shape `medseg sam --text` wrote as OUT.json before the shared sidecar
    (tmp_path / "organs.json").write_text(json.dumps({"labels": [{"label": 1, "name": "spleen"}]}))
    assert label_names(read_label_sidecar(tmp_path / "organs.nii.gz")) == {1: "spleen"}


@pytest.mark.parametrize(
    "entries",
    [[{"label": 0, "name": "x"}], [{"label": 2}], [{"label": 1, "name": "a", "type": "Liver"}]],
)
def test_invalid_sidecar_names_its_path(tmp_path: Path, entries: list) -> None:
    sidecar = tmp_path / "m.labels.json"
    sidecar.write_text(json.dumps({"labels": entries}))
    with pytest.raises(InputError) as info:
        read_label_sidecar(tmp_path / "m.nii.gz")
    assert info.value.path == sidecar


def test_repeated_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="twice"):
        write_label_sidecar(tmp_path / "m.nii.gz", [LIVER, {**LIVER, "name": "hepar"}])
