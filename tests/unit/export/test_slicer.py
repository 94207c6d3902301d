"""Slicer files: .seg.nrrd header and geometry, colour table, label NIfTI."""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np
import SimpleITK as sitk

from medseg.export import (
    StructureCodeMap,
    build_structures,
    write_color_table,
    write_label_nifti,
    write_seg_nrrd,
)
from medseg.io import Volume, read_nifti

NAMES = {1: "liver", 2: "kidney_left", 3: "tumour"}


def _oblique_volume(labels: np.ndarray) -> Volume:
    angle = np.deg2rad(15.0)
    affine = np.eye(4)
    affine[:3, :3] = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    ) @ np.diag([0.6, 0.8, 2.5])
    affine[:3, 3] = [10.0, -20.0, 30.0]
    return Volume(array=labels, affine=affine)


def test_seg_nrrd_geometry_and_segments(
    synthetic_labels: np.ndarray, tmp_path: Path, code_map: StructureCodeMap
) -> None:
    volume = _oblique_volume(synthetic_labels)
    structures = build_structures([1, 2, 3], names=NAMES, code_map=code_map)
    path = write_seg_nrrd(volume, structures, tmp_path / "x.seg.nrrd")
    data, header = nrrd.read(str(path))
    np.testing.assert_array_equal(data, synthetic_labels)
    assert header["space"] == "left-posterior-superior"
    # An independent reader (ITK) sees the same voxel → world mapping (LPS = flip of RAS).
    image = sitk.ReadImage(str(path))
    index = (3, 5, 2)
    got_lps = np.asarray(image.TransformIndexToPhysicalPoint(index))
    expected_ras = volume.affine @ np.append(index, 1)
    np.testing.assert_allclose(got_lps, expected_ras[:3] * [-1, -1, 1], atol=1e-6)
    assert header["Segment1_Name"] == "kidney_left"
    assert header["Segment1_LabelValue"] == "2"
    assert header["Segment1_Layer"] == "0"
    assert header["Segment0_Extent"] == "2 7 3 11 1 3"
    assert "SCT^10200004^Liver" in header["Segment0_Tags"]
    assert "SCT^7771000^Left" in header["Segment1_Tags"]
    r, g, b = (float(v) for v in header["Segment2_Color"].split())
    assert (round(r * 255), round(g * 255), round(b * 255)) == structures[2].color_rgb


def test_color_table_and_nifti(synthetic_labels: np.ndarray, tmp_path: Path) -> None:
    volume = _oblique_volume(synthetic_labels)
    structures = build_structures([1, 2, 3], names=NAMES)
    table = write_color_table(structures, tmp_path / "labels.ctbl").read_text().splitlines()
    rows = [line.split() for line in table if not line.startswith("#")]
    assert rows[0] == ["0", "background", "0", "0", "0", "0"]
    assert [r[:2] for r in rows[1:]] == [["1", "liver"], ["2", "kidney_left"], ["3", "tumour"]]
    back = read_nifti(write_label_nifti(volume, structures, tmp_path / "labels.nii.gz"))
    np.testing.assert_array_equal(back.array, synthetic_labels)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-5)


def test_seg_nrrd_reloads_with_slicerio(
    synthetic_labels: np.ndarray, tmp_path: Path, code_map: StructureCodeMap
) -> None:
    import slicerio

    volume = _oblique_volume(synthetic_labels)
    structures = build_structures([1, 2, 3], names=NAMES, code_map=code_map)
    path = write_seg_nrrd(volume, structures, tmp_path / "x.seg.nrrd")
    segmentation = slicerio.read_segmentation(str(path))
    np.testing.assert_array_equal(segmentation["voxels"], synthetic_labels)
    np.testing.assert_allclose(
        segmentation["ijkToLPS"], np.diag([-1.0, -1.0, 1.0, 1.0]) @ volume.affine, atol=1e-6
    )
    segments = segmentation["segments"]
    assert [s["name"] for s in segments] == ["liver", "kidney_left", "tumour"]
    assert [s["labelValue"] for s in segments] == [1, 2, 3]
    kidney = segments[1]["terminology"]
    assert kidney["type"] == ["SCT", "64033007", "Kidney"]
    assert kidney["typeModifier"] == ["SCT", "7771000", "Left"]
    assert segments[0]["extent"] == [2, 7, 3, 11, 1, 3]
