"""Inputs as users have them (issue 24, items 3 and 4): folders of images, glob patterns,
and where each output goes, decided before any heavy import."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medseg.cli._inputs import (
    IMAGE_2D_SUFFIXES,
    OutputFormat,
    expand_inputs,
    plan_outputs,
)
from medseg.core import ConfigError, InputError, OutputExistsError
from medseg.io import IMAGE_2D_SUFFIXES as IO_IMAGE_2D_SUFFIXES
from medseg.io import ITK_SUFFIXES

IMAGES = "data/cells_dsb2018/test/images"


@pytest.fixture
def image_folder(repo_root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("b.png", "a.png"):
        shutil.copy(repo_root / IMAGES / "06350c7cc618be44.png", folder / name)
    shutil.copy(repo_root / "data/retina_drive/test/images/01_test.tif", folder / "c.tif")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")
    return folder


def test_the_cli_knows_the_readers_suffixes() -> None:
    from medseg.cli._inputs import VOLUME_SUFFIXES

    assert set(IMAGE_2D_SUFFIXES) == set(IO_IMAGE_2D_SUFFIXES)
    assert set(ITK_SUFFIXES) <= set(VOLUME_SUFFIXES)


def test_a_folder_of_images_is_its_images_sorted(image_folder: Path) -> None:
    assert [p.name for p in expand_inputs([image_folder])] == ["a.png", "b.png", "c.tif"]


def test_a_glob_pattern_is_its_matches(image_folder: Path) -> None:
    assert [p.name for p in expand_inputs([image_folder / "*.png"])] == ["a.png", "b.png"]


def test_a_dicom_folder_stays_one_input(ct_dicom_dir: Path) -> None:
    assert expand_inputs([ct_dicom_dir]) == [ct_dicom_dir]


def test_a_pattern_matching_nothing_names_the_pattern(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\*\.png"):
        expand_inputs([tmp_path / "*.png"])


def test_outputs_follow_the_input_type(image_folder: Path, tmp_path: Path) -> None:
    inputs = expand_inputs([image_folder])
    outputs = plan_outputs(inputs, tmp_path / "out", tag="_labels")
    assert [p.name for p in outputs] == ["a_labels.png", "b_labels.png", "c_labels.tif"]
    nifti = plan_outputs(inputs, tmp_path / "out", tag="_labels", fmt=OutputFormat.NIFTI)
    assert [p.name for p in nifti] == [f"{s}_labels.nii.gz" for s in "abc"]
    assert not (tmp_path / "out").exists()  # checked, not created


@pytest.mark.parametrize("name", ["pred.nii.gz", "pred.png", "pred.tif"])
def test_out_with_a_file_suffix_is_that_file(image_folder: Path, tmp_path: Path, name: str) -> None:
    (output,) = plan_outputs([image_folder / "a.png"], tmp_path / name, tag="_labels")
    assert output == tmp_path / name


def test_one_file_for_several_inputs_is_refused(image_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="2 inputs"):
        plan_outputs(expand_inputs([image_folder / "*.png"]), tmp_path / "x.png", tag="")


def test_a_png_mask_for_a_volume_is_refused(repo_root: Path, tmp_path: Path) -> None:
    volume = repo_root / "data/ct_totalsegmentator/example_ct_sm.nii.gz"
    with pytest.raises(ConfigError, match=r"\.nii\.gz"):
        plan_outputs([volume], tmp_path / "mask.png", tag="")


def test_an_existing_output_is_refused_before_any_work(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_labels.png").write_bytes(b"earlier")
    with pytest.raises(OutputExistsError):
        plan_outputs(expand_inputs([image_folder]), out, tag="_labels")
    plan_outputs(expand_inputs([image_folder]), out, tag="_labels", overwrite=True)
