"""``medseg sam --text``: refusals with a non-zero exit, and one end-to-end run on real CT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.cli import main
from medseg.core import ExitCode
from medseg.evaluation import compute_dice
from medseg.io import read_image

pytestmark = pytest.mark.integration

SPLEEN_IMAGE = "data/ct_msd_spleen/sub-spleen2_ct.nii.gz"
SPLEEN_LABEL = "data/ct_msd_spleen/sub-spleen2_ct_seg-manual.nii.gz"
NUCLEI_IMAGE = "data/cells_dsb2018/test/images/06350c7cc618be44.png"


@pytest.mark.parametrize(
    ("image", "text", "message"),
    [
        (SPLEEN_IMAGE, "kidney", "ambiguous"),
        (SPLEEN_IMAGE, "banana", "names no known structure; closest:"),
        (SPLEEN_IMAGE, "nuclei", "by the nuclei_model segmenter (nuclei); this image is CT"),
        (NUCLEI_IMAGE, "liver", "liver is located on CT only; this image is 2D"),
        ("data/ct_totalsegmentator/example_mr_sm.nii.gz", "liver", "cannot tell"),
    ],
)
def test_unknown_ambiguous_and_wrong_modality_text_exit_non_zero(
    repo_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    image: str,
    text: str,
    message: str,
) -> None:
    out = tmp_path / "labels.nii.gz"
    code = main(["sam", str(repo_root / image), "--out", str(out), "--text", text])
    assert code == ExitCode.CONFIG
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_text_cannot_be_combined_with_a_box(repo_root: Path, tmp_path: Path) -> None:
    code = main(
        [
            "sam",
            str(repo_root / SPLEEN_IMAGE),
            "--out",
            str(tmp_path / "x.nii.gz"),
            "--text",
            "spleen",
            "--box",
            "1,1,1,5,5,5",
        ]
    )
    assert code == ExitCode.CONFIG


@pytest.mark.slow
def test_text_segments_the_spleen_of_a_ct_the_atlas_never_saw(
    repo_root: Path, tmp_path: Path
) -> None:
    # MSD spleen crop (another patient, manual label); no reference used; the lungs are
    # outside this 13 cm crop: label 2 stays empty and the sidecar says so.
    out = tmp_path / "organs.nii.gz"
    code = main(
        [
            "sam",
            str(repo_root / SPLEEN_IMAGE),
            "--out",
            str(out),
            "--text",
            "spleen",
            "--text",
            "lungs",
            "--precision",
            "bf16",
        ]
    )
    assert code == ExitCode.OK
    labels = read_image(out)
    reference = read_image(repo_root / SPLEEN_LABEL).array > 0
    assert np.allclose(labels.affine, read_image(repo_root / SPLEEN_IMAGE).affine)
    assert set(np.unique(labels.array).tolist()) == {0, 1}
    assert compute_dice(labels.array == 1, reference) > 0.5
    sidecar = json.loads((tmp_path / "organs.labels.json").read_text())["labels"]
    assert [(e["label"], e["name"], e["found"]) for e in sidecar] == [
        (1, "spleen", True),
        (2, "lungs", False),
    ]
    assert sidecar[0]["type"]["value"] == "78961009"  # SNOMED CT Spleen
    assert sidecar[1]["type"]["meaning"] == "Lung"
    assert sorted(sidecar[1]["absent"]) == ["lung_left", "lung_right"]  # no voxels drawn
    assert sidecar[0]["absent"] == []


def test_an_existing_sidecar_is_not_overwritten(repo_root: Path, tmp_path: Path) -> None:
    (tmp_path / "organs.labels.json").write_text("{}")
    code = main(
        [
            "sam",
            str(repo_root / SPLEEN_IMAGE),
            "--out",
            str(tmp_path / "organs.nii.gz"),
            "--text",
            "spleen",
        ]
    )
    assert code == ExitCode.OUTPUT_EXISTS
    assert (tmp_path / "organs.labels.json").read_text() == "{}"


def test_nuclei_text_on_a_microscopy_image_runs_the_nuclei_model(
    repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nuclei.nii.gz"
    code = main(["sam", str(repo_root / NUCLEI_IMAGE), "--out", str(out), "--text", "nuclei"])
    assert code == ExitCode.OK
    instances = read_image(out).array
    # an instance map's values are object ids, not structures: no label sidecar
    assert not (tmp_path / "nuclei.labels.json").exists()
    assert int(instances.max()) > 5
    out_text = capsys.readouterr().out
    assert "by nuclei_model" in out_text
    assert f"{int(instances.max())} instances" in out_text
