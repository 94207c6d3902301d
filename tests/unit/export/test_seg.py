"""DICOM SEG: exact round trips through highdicom, geometry from the SEG's own headers."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from medseg.core import GeometryError, InputError
from medseg.export import (
    SegmentationType,
    StructureCodeMap,
    build_structures,
    read_dicom_seg,
    read_source_series,
    write_dicom_seg,
)
from medseg.io import LPS_TO_RAS, Volume, reorient
from tests.unit.export.conftest import write_series

NAMES = {1: "liver", 2: "kidney_left", 3: "tumour"}


@pytest.mark.parametrize("seg_type", [SegmentationType.BINARY, SegmentationType.LABELMAP])
def test_round_trip_is_exact(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path, seg_type: SegmentationType
) -> None:
    series = read_source_series(synthetic_series)
    mask = series.volume.with_array(synthetic_labels)
    structures = build_structures([1, 2, 3], names=NAMES)
    path = write_dicom_seg(
        mask, series, structures, tmp_path / "seg.dcm", segmentation_type=seg_type
    )
    back, names = read_dicom_seg(path, series, label_values={v: k for k, v in NAMES.items()})
    np.testing.assert_array_equal(back.array, synthetic_labels)
    assert names == NAMES


def test_mask_in_another_orientation_is_mapped_exactly(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    series = read_source_series(synthetic_series)
    flipped = reorient(series.volume.with_array(synthetic_labels), "RAS")  # as a NIfTI would be
    assert not np.array_equal(flipped.array, synthetic_labels)
    structures = build_structures([1, 2, 3], names=NAMES)
    path = write_dicom_seg(flipped, series, structures, tmp_path / "seg.dcm")
    back, _ = read_dicom_seg(path, series, label_values={v: k for k, v in NAMES.items()})
    np.testing.assert_array_equal(back.array, synthetic_labels)


def test_segment_world_centroids_from_seg_headers(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    """highdicom's volume geometry (from the SEG alone) puts each segment where it was."""
    series = read_source_series(synthetic_series)
    mask = series.volume.with_array(synthetic_labels)
    path = write_dicom_seg(
        mask, series, build_structures([1, 2, 3], names=NAMES), tmp_path / "seg.dcm"
    )
    seg_volume = hd.seg.segread(str(path)).get_volume(combine_segments=True)
    for value in (1, 2, 3):
        expected = mask.affine @ np.append(np.argwhere(synthetic_labels == value).mean(0), 1)
        got_lps = seg_volume.affine @ np.append(np.argwhere(seg_volume.array == value).mean(0), 1)
        np.testing.assert_allclose(LPS_TO_RAS @ got_lps, expected, atol=1e-3)


def test_headers_codes_algorithm_and_empty_frames(
    synthetic_series: Path,
    synthetic_labels: np.ndarray,
    tmp_path: Path,
    code_map: StructureCodeMap,
) -> None:
    series = read_source_series(synthetic_series)
    structures = build_structures([1, 2, 3], names=NAMES, code_map=code_map)
    path = write_dicom_seg(
        series.volume.with_array(synthetic_labels),
        series,
        structures,
        tmp_path / "seg.dcm",
        model_name="UNetX",
    )
    ds = pydicom.dcmread(path)
    assert ds.SegmentationType == "BINARY"
    # Only frames with content: label 1 on 3 slices, 2 on 4, 3 on 1.
    assert int(ds.NumberOfFrames) == 3 + 4 + 1
    segments = ds.SegmentSequence
    assert [s.SegmentLabel for s in segments] == ["liver", "kidney_left", "tumour"]
    assert segments[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert segments[0].SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
    kidney = segments[1].SegmentedPropertyTypeCodeSequence[0]
    assert kidney.CodeValue == "64033007"
    assert kidney.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "7771000"  # left
    tumour = segments[2]
    assert tumour.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert tumour.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    algorithm = segments[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "UNetX"
    assert segments[0].SegmentAlgorithmType == "AUTOMATIC"
    referenced = {
        item.ReferencedSOPInstanceUID
        for item in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced == {str(d.SOPInstanceUID) for d in series.datasets}
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series.datasets[0].SeriesInstanceUID
    assert ds.StudyInstanceUID == series.datasets[0].StudyInstanceUID
    assert ds.FrameOfReferenceUID == series.datasets[0].FrameOfReferenceUID


def test_fractional_round_trip_within_one_step(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    series = read_source_series(synthetic_series)
    probabilities = rng.random((*synthetic_labels.shape, 2)).astype(np.float32)
    probabilities[..., 1] *= synthetic_labels == 2  # zeros outside: empty frames omitted
    mask = Volume(array=probabilities, affine=series.volume.affine)
    structures = build_structures([1, 2], names={1: "tumour", 2: "edema"})
    path = write_dicom_seg(
        mask,
        series,
        structures,
        tmp_path / "seg.dcm",
        segmentation_type=SegmentationType.FRACTIONAL,
    )
    assert pydicom.dcmread(path).SegmentationFractionalType == "PROBABILITY"
    back, names = read_dicom_seg(path, series)
    assert names == {1: "tumour", 2: "edema"}
    np.testing.assert_allclose(back.array, probabilities, atol=0.5 / 255 + 1e-6)


def test_label_without_structure_is_refused(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    series = read_source_series(synthetic_series)
    with pytest.raises(InputError, match=r"missing \[3\]"):
        write_dicom_seg(
            series.volume.with_array(synthetic_labels),
            series,
            build_structures([1, 2], names=NAMES),
            tmp_path / "seg.dcm",
        )
    assert not (tmp_path / "seg.dcm").exists()


def test_mask_on_another_grid_is_refused(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    series = read_source_series(synthetic_series)
    shifted = series.volume.affine.copy()
    shifted[:3, 3] += 0.5 * np.linalg.norm(shifted[:3, 0])  # half a voxel off
    with pytest.raises(GeometryError, match="resample"):
        write_dicom_seg(
            Volume(array=synthetic_labels, affine=shifted),
            series,
            build_structures([1, 2, 3], names=NAMES),
            tmp_path / "seg.dcm",
        )


def test_blank_uids_need_completion(tmp_path: Path, synthetic_labels: np.ndarray) -> None:
    folder = write_series(tmp_path / "blank", blank_uids=True)
    with pytest.raises(InputError, match="--complete-uids"):
        read_source_series(folder)
    series = read_source_series(folder, complete_uids=True)
    again = read_source_series(folder, complete_uids=True)
    assert series.datasets[0].StudyInstanceUID == again.datasets[0].StudyInstanceUID  # stable
    assert {str(d.SOPInstanceUID) for d in series.datasets} == {
        str(pydicom.dcmread(f).file_meta.MediaStorageSOPInstanceUID) for f in series.files
    }
    path = write_dicom_seg(
        series.volume.with_array(synthetic_labels),
        series,
        build_structures([1, 2, 3], names=NAMES),
        tmp_path / "seg.dcm",
    )
    assert pydicom.dcmread(path).StudyInstanceUID == series.datasets[0].StudyInstanceUID


def test_seg_of_another_series_is_an_input_error(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    series = read_source_series(synthetic_series)
    other = read_source_series(write_series(tmp_path / "other", seed=5))
    path = write_dicom_seg(
        series.volume.with_array(synthetic_labels),
        series,
        build_structures([1, 2, 3], names=NAMES),
        tmp_path / "seg.dcm",
    )
    with pytest.raises(InputError, match="cannot map the SEG"):
        read_dicom_seg(path, other)
