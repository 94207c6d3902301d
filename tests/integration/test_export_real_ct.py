"""Exports of the real CT (20 slices, 31 TotalSegmentator structures) that validate and
round-trip: SEG voxel for voxel, RTSTRUCT per-ROI Dice and world centroids, dciodvfy clean."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import yaml

from medseg.evaluation import compute_dice
from medseg.export import (
    SegmentationType,
    SourceSeries,
    Structure,
    build_structures,
    load_structure_codes,
    map_mask_to_series,
    read_dicom_seg,
    read_rtstruct,
    read_source_series,
    validate_dicom_iod,
    write_dicom_seg,
    write_rtstruct,
)
from medseg.io import LPS_TO_RAS, Volume, read_nifti, reorient_like
from tests.unit.export.test_rtstruct import _contour_centroid_lps

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def case(ct_dicom_dir: Path, repo_root: Path) -> dict[str, object]:
    series = read_source_series(ct_dicom_dir, complete_uids=True)
    mask = read_nifti(repo_root / "data/ct_totalsegmentator/example_seg_dicom.nii.gz")
    names = yaml.safe_load((repo_root / "data_manifests/ct_totalsegmentator.yaml").read_text())[
        "labels"
    ]
    codes = load_structure_codes(repo_root / "configs/export/structure_codes.yaml")
    values = [int(v) for v in np.unique(mask.array) if v]
    structures = build_structures(values, names=names, code_map=codes)
    return {"series": series, "mask": mask, "structures": structures, "names": names}


@pytest.fixture(scope="module")
def seg_path(case: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seg") / "seg.dcm"
    return write_dicom_seg(
        case["mask"], case["series"], case["structures"], out, model_name="TotalSegmentator"
    )  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def rtstruct_path(case: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rt") / "rt.dcm"
    return write_rtstruct(case["mask"], case["series"], case["structures"], out)  # type: ignore[arg-type]


def test_the_case_has_31_structures(case: dict[str, object]) -> None:
    assert len(case["structures"]) == 31  # type: ignore[arg-type]


def test_seg_round_trip_is_voxel_exact(case: dict[str, object], seg_path: Path) -> None:
    series: SourceSeries = case["series"]  # type: ignore[assignment]
    names: dict[int, str] = case["names"]  # type: ignore[assignment]
    back, back_names = read_dicom_seg(
        seg_path, series, label_values={v: k for k, v in names.items()}
    )
    expected = map_mask_to_series(case["mask"], series).array  # type: ignore[arg-type]
    np.testing.assert_array_equal(back.array, expected)
    assert len(back_names) == 31
    # Back in the NIfTI's own grid (LAS), through the affines: the input label map.
    mask: Volume = case["mask"]  # type: ignore[assignment]
    np.testing.assert_array_equal(reorient_like(back, mask).array, mask.array)


def test_seg_labelmap_round_trip_is_voxel_exact(case: dict[str, object], tmp_path: Path) -> None:
    series: SourceSeries = case["series"]  # type: ignore[assignment]
    names: dict[int, str] = case["names"]  # type: ignore[assignment]
    path = write_dicom_seg(
        case["mask"], series, case["structures"], tmp_path / "lm.dcm",  # type: ignore[arg-type]
        segmentation_type=SegmentationType.LABELMAP,
    )  # fmt: skip
    back, _ = read_dicom_seg(path, series, label_values={v: k for k, v in names.items()})
    expected = map_mask_to_series(case["mask"], series).array  # type: ignore[arg-type]
    np.testing.assert_array_equal(back.array, expected)


def test_seg_world_centroids_match_the_nifti(case: dict[str, object], seg_path: Path) -> None:
    """Geometry read from the SEG alone (highdicom) vs the NIfTI's own affine."""
    mask: Volume = case["mask"]  # type: ignore[assignment]
    seg = hd.seg.segread(str(seg_path))
    volume = seg.get_volume(combine_segments=True)
    spacing = np.asarray(mask.spacing_mm)
    for number, structure in enumerate(case["structures"], start=1):  # type: ignore[arg-type]
        expected = mask.affine @ np.append(
            np.argwhere(mask.array == structure.label_value).mean(0), 1
        )
        got = LPS_TO_RAS @ volume.affine @ np.append(np.argwhere(volume.array == number).mean(0), 1)
        assert np.all(np.abs(got - expected)[:3] < 0.5 * spacing), structure.name


def test_rtstruct_rerasterised_dice_per_roi(case: dict[str, object], rtstruct_path: Path) -> None:
    series: SourceSeries = case["series"]  # type: ignore[assignment]
    structures: list[Structure] = case["structures"]  # type: ignore[assignment]
    back, names = read_rtstruct(rtstruct_path, series)
    expected = map_mask_to_series(case["mask"], series).array  # type: ignore[arg-type]
    assert list(names.values()) == [s.name for s in structures]
    dice = {
        s.name: compute_dice(back.array[..., i], expected == s.label_value)
        for i, s in enumerate(structures)
    }
    # Every ROI, the smallest (rib_left_12, 123 voxels) included, is held to 0.95; the
    # contours trace voxel boundaries, so here they reproduce the mask exactly.
    assert min(dice.values()) >= 0.95, dice
    assert all(d == 1.0 for d in dice.values()), dice


def test_rtstruct_contour_centroids_within_half_a_voxel(
    case: dict[str, object], rtstruct_path: Path
) -> None:
    """Centroids from the raw ContourData (mm) vs the NIfTI mask through its own affine."""
    mask: Volume = case["mask"]  # type: ignore[assignment]
    ds = pydicom.dcmread(rtstruct_path)
    spacing = np.asarray(mask.spacing_mm)
    for number, structure in enumerate(case["structures"], start=1):  # type: ignore[arg-type]
        voxels = np.argwhere(mask.array == structure.label_value).mean(axis=0)
        expected_lps = (LPS_TO_RAS @ mask.affine @ np.append(voxels, 1))[:3]
        got = _contour_centroid_lps(ds, number, spacing[2])
        assert np.all(np.abs(got - expected_lps) < 0.5 * spacing), structure.name


@pytest.mark.parametrize("which", ["seg", "rtstruct"])
def test_dciodvfy_reports_no_errors(which: str, seg_path: Path, rtstruct_path: Path) -> None:
    report = validate_dicom_iod(seg_path if which == "seg" else rtstruct_path)
    assert report.ok, report.errors
