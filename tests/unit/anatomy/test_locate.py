"""The reference-free CT locator: lung rules on a phantom, atlas registration on real CT."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg.anatomy import Atlas, LocatedBox, LocatorConfig, locate_lungs, locate_structures
from medseg.anatomy._locate import _own_regions, _refine_with_intensity
from medseg.core import InputError
from medseg.io import Volume, axis_codes, read_image, reorient


@pytest.fixture(scope="module")
def atlas(repo_root: Path) -> Atlas:
    folder = repo_root / "data" / "ct_totalsegmentator"
    names = json.loads((folder / "labels_total.json").read_text())["labels"]
    return Atlas(
        image=read_image(folder / "example_ct_sm.nii.gz"),
        labels=read_image(folder / "example_seg.nii.gz"),
        names={int(k): v for k, v in names.items()},
    )


def _box_iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    low = np.maximum(a[:3], b[:3])
    high = np.minimum(a[3:], b[3:])
    inter = float(np.prod(np.clip(high - low + 1, 0, None)))
    size = lambda box: float(np.prod(np.asarray(box[3:]) - box[:3] + 1))  # noqa: E731
    return inter / (size(a) + size(b) - inter)


def _phantom_chest() -> Volume:
    """Soft-tissue body (40 HU) in air, two lungs (-850 HU) and a bowel gas bubble."""
    shape = (80, 60, 40)  # (i, j, k); RAS affine, 4 mm voxels
    hu = np.full(shape, -1000.0)
    i, j, _ = np.ogrid[: shape[0], : shape[1], : shape[2]]
    body = ((i - 40) / 36.0) ** 2 + ((j - 30) / 26.0) ** 2 <= 1
    hu[np.broadcast_to(body, shape)] = 40.0
    hu[16:34, 18:42, 20:38] = -850.0  # patient left (RAS: i grows to the right)
    hu[46:64, 18:42, 20:38] = -850.0  # patient right
    hu[36:42, 20:26, 5:9] = -1000.0  # gas bubble, far below 100 mL
    return Volume(array=hu, affine=np.diag([4.0, 4.0, 4.0, 1.0]))


def test_lung_rules_find_both_lungs_on_their_sides() -> None:
    found = locate_structures(_phantom_chest(), ["lung_left", "lung_right"], config=None)
    left, right = found["lung_left"].box_ijk, found["lung_right"].box_ijk
    assert found["lung_left"].method == "rules"
    # RAS: i grows to the patient's right; a 5 mm margin is one voxel at 4 mm.
    assert _box_iou(left, (15, 17, 19, 34, 42, 38)) > 0.8
    assert _box_iou(right, (45, 17, 19, 64, 42, 38)) > 0.8


def test_lung_rules_ignore_small_gas_and_air_outside_the_body() -> None:
    hu = np.full((30, 30, 30), 40.0)
    hu[:, :, :3] = -1000.0  # air around the body, touching it
    hu[10:14, 10:14, 10:14] = -1000.0  # 64 voxels = 1.7 mL at 3 mm
    body = hu > -400
    assert not locate_lungs(hu, body | (hu < -400), 3.0).any()


def test_lung_rule_keeps_air_the_atlas_lungs_overlap_not_bowel_gas() -> None:
    # (z, y, x) at 3 mm: two lung bases of 27 mL each (under the atlas-free 100 mL floor)
    # and 156 mL of bowel gas below them; the registered atlas lungs, shifted by 2 voxels,
    # cover part of each base and none of the gas.
    hu = np.full((40, 60, 60), 40.0)
    hu[28:38, 20:30, 10:20] = -850.0  # low x: patient right in LPS
    hu[28:38, 20:30, 40:50] = -850.0
    hu[2:20, 15:35, 22:38] = -1000.0
    body = np.ones(hu.shape, dtype=bool)
    atlas_lungs = np.zeros(hu.shape, dtype=bool)
    atlas_lungs[26:36, 22:32, 12:22] = True
    atlas_lungs[26:36, 22:32, 42:52] = True
    lungs = locate_lungs(hu, body, 3.0, atlas_lungs=atlas_lungs)
    # each base whole (the 1-voxel opening takes the cube's 104 edge voxels)
    assert (lungs == 1).sum() == 896
    assert (lungs[29:37, 21:29, 11:19] == 1).all()
    assert (lungs == 2).sum() == 896
    assert (lungs[29:37, 21:29, 41:49] == 2).all()
    assert not lungs[:20].any()
    # Without the atlas the volume rule takes the gas and misses both bases.
    plain = locate_lungs(hu, body, 3.0)
    assert plain[10, 25, 30] > 0
    assert not plain[28:].any()
    # Air the atlas lungs barely touch (< 20% of it, < 20% of the atlas lungs' air) is not lung.
    touch = np.zeros(hu.shape, dtype=bool)
    touch[19, 25, 30] = True
    assert not locate_lungs(hu, body, 3.0, atlas_lungs=atlas_lungs | touch)[:20].any()


def test_lungs_on_the_atlas_ct_are_its_lung_bases_not_its_colon_gas(atlas: Atlas) -> None:
    # The atlas CT itself (T11-L2): the lung bases are 116 mL in all, its colon holds more
    # gas; the former 100 mL rule took the colon gas (Dice 0.0).
    found = locate_structures(atlas.image, ["lung_left", "lung_right"], atlas=atlas)
    for name, values in (("lung_left", [10, 11]), ("lung_right", [12, 13, 14])):
        where = np.nonzero(np.isin(atlas.labels.array, values))
        exact = (*[int(w.min()) for w in where], *[int(w.max()) for w in where])
        assert _box_iou(found[name].box_ijk, exact) > 0.5, name
        # The rule's own mask (air of the target's voxels) is what gets written.
        mask = found[name].mask
        assert mask is not None
        reference = np.isin(atlas.labels.array, values)
        dice = 2 * (mask & reference).sum() / (mask.sum() + reference.sum())
        assert dice > 0.9, name  # measured 0.930 left, 0.958 right


def test_structures_outside_the_field_of_view_are_absent_not_drawn(
    atlas: Atlas, ct_dicom_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The 4 cm DICOM slab ends above the kidneys and below the lungs (its TotalSegmentator
    # labels hold neither): both are absent, each warned once; the partly shown liver and
    # spleen are found.
    image = read_image(ct_dicom_dir)
    names = ["liver", "spleen", "kidney_left", "kidney_right", "lung_left", "lung_right"]
    with caplog.at_level(logging.WARNING, logger="medseg.anatomy"):
        found = locate_structures(image, names, atlas=atlas)
    assert sorted(found) == ["liver", "spleen"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted(w.split(":")[0] for w in warnings) == sorted(names[2:])
    assert all("absent" in w and "not drawn" in w for w in warnings)
    # The field-of-view test is what removes the kidneys: without it they are placed.
    placed = locate_structures(
        image, ["kidney_left", "kidney_right"], atlas=atlas, config=LocatorConfig(min_in_view=0)
    )
    assert sorted(placed) == ["kidney_left", "kidney_right"]


def test_no_lung_in_the_field_of_view_is_reported_not_invented() -> None:
    hu = np.full((40, 40, 20), 40.0)
    found = locate_structures(Volume(array=hu, affine=np.eye(4) * 3), ["lung_left"])
    assert found == {}


def test_unknown_names_and_a_missing_atlas_are_refused() -> None:
    with pytest.raises(InputError, match="no atlas given"):
        locate_structures(_phantom_chest(), ["liver"])


def test_atlas_finds_the_spleen_in_the_msd_crop(atlas: Atlas, repo_root: Path) -> None:
    # A 13 cm crop around another patient's spleen: no body outline to align by.
    image = read_image(repo_root / "data" / "ct_msd_spleen" / "sub-spleen2_ct.nii.gz")
    reference = read_image(
        repo_root / "data" / "ct_msd_spleen" / "sub-spleen2_ct_seg-manual.nii.gz"
    ).array
    found = locate_structures(image, ["spleen"], atlas=atlas)
    where = np.nonzero(reference > 0)
    exact = (*[int(w.min()) for w in where], *[int(w.max()) for w in where])
    located = found["spleen"]
    assert isinstance(located, LocatedBox)
    assert located.method == "atlas+intensity"
    assert _box_iou(located.box_ijk, exact) > 0.5  # measured 0.62


def test_atlas_finds_the_liver_in_the_dicom_slab(atlas: Atlas, ct_dicom_dir: Path) -> None:
    # Another patient, DICOM (LPS), 4 cm slab at 0.98 mm: the liver box in-plane.
    image = read_image(ct_dicom_dir)
    found = locate_structures(image, ["liver"], atlas=atlas)
    # The labels are stored with j flipped relative to the DICOM series: same world grid.
    labels = reorient(read_image(ct_dicom_dir.parent / "example_seg_dicom.nii.gz"), "LPS")
    assert axis_codes(image) == "LPS"
    assert np.allclose(labels.affine, image.affine, atol=1e-3)
    reference = labels.array == 5
    where = np.nonzero(reference)
    exact = (*[int(w.min()) for w in where], *[int(w.max()) for w in where])
    assert _box_iou(found["liver"].box_ijk, exact) > 0.8  # measured 0.91 (0.81 unfitted)
    # The atlas liver is cut by the atlas slab's top: propagation may continue upwards.
    assert found["liver"].open_k[1] if image.affine[2, 2] > 0 else found["liver"].open_k[0]


def test_intensity_fit_grows_a_shifted_cut_atlas_label_onto_the_organ() -> None:
    # Body of fat (-100 HU) holding an organ (60 HU); the warped atlas label is the organ
    # moved 3 voxels and cut at the top: the fit recovers the organ's full extent.
    rng = np.random.default_rng(0)
    hu = rng.normal(-100.0, 10.0, (40, 50, 50))
    hu[:, :2] = -1000.0
    organ = np.zeros(hu.shape, dtype=bool)
    organ[8:30, 12:30, 15:35] = True
    hu[organ] = rng.normal(60.0, 10.0, int(organ.sum()))
    body = hu > -400
    warped = np.zeros_like(organ)
    warped[11:24, 15:33, 18:38] = True
    fitted = _refine_with_intensity(hu, body, warped, LocatorConfig())
    where = np.nonzero(fitted)
    assert [int(w.min()) for w in where] == [8, 12, 15]
    assert [int(w.max()) for w in where] == [29, 29, 34]
    # A label the intensities cannot support (no organ there) is kept as it was.
    plain = rng.normal(-100.0, 10.0, hu.shape)
    assert (_refine_with_intensity(plain, plain > -400, warped, LocatorConfig()) == warped).all()


def test_fit_statistics_leave_out_the_fat_a_misplaced_label_covers() -> None:
    # The warped label lies mostly on fat (-100 HU) beside the organ (60 HU), as IRCAD 17's
    # registered spleen did (median -10 HU): fitted to all its voxels, the fit follows the
    # fat and is rejected; fitted to its soft tissue (> 0 HU), it finds the organ.
    rng = np.random.default_rng(1)
    hu = rng.normal(-100.0, 10.0, (40, 50, 50))
    hu[:, :2] = -1000.0
    organ = np.zeros(hu.shape, dtype=bool)
    organ[8:30, 12:30, 15:35] = True
    hu[organ] = rng.normal(60.0, 10.0, int(organ.sum()))
    body = hu > -400
    warped = np.zeros_like(organ)
    warped[8:30, 12:30, 27:47] = True  # 8 of its 20 columns on the organ
    reach = LocatorConfig(refine_reach_mm=60.0)  # the organ reaches 12 voxels beyond it
    all_voxels = _refine_with_intensity(
        hu, body, warped, reach.model_copy(update={"refine_floor_hu": -1000.0})
    )
    assert (all_voxels == warped).all()
    fitted = _refine_with_intensity(hu, body, warped, reach)
    where = np.nonzero(fitted)
    assert [int(w.min()) for w in where] == [8, 12, 15]
    assert [int(w.max()) for w in where] == [29, 29, 34]


def test_own_regions_split_between_structures_with_a_slack() -> None:
    # Two structures on a line of 1 mm voxels, at x 0-1 and 9-10: x 5 is 4 mm from both.
    line = np.zeros((1, 1, 11), dtype=bool)
    a, b = line.copy(), line.copy()
    a[..., :2] = True
    b[..., 9:] = True
    regions = _own_regions({"a": a, "b": b}, 1.0, 0.0)[0, 0]
    assert np.flatnonzero(regions & 1).tolist() == [0, 1, 2, 3, 4, 5]
    assert np.flatnonzero(regions & 2).tolist() == [5, 6, 7, 8, 9, 10]
    # With 2 mm of slack x 6 (5 mm from a, 3 mm from b) is a's too, x 7 (6 vs 2) is not.
    regions = _own_regions({"a": a, "b": b}, 1.0, 2.0)[0, 0]
    assert np.flatnonzero(regions & 1).tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert np.flatnonzero(regions & 2).tolist() == [4, 5, 6, 7, 8, 9, 10]


def test_structures_located_together_keep_to_their_own_regions(atlas: Atlas) -> None:
    # On the atlas CT itself: the left kidney's region holds its own label, and of the
    # spleen beside it only what lies within the slack of the kidney's registered label
    # (the IRCAD spleen's SAM mask had covered the left kidney).
    names = ["spleen", "kidney_left", "liver"]
    labels = atlas.labels.array
    spacing = atlas.labels.spacing_mm
    for slack_mm in (0.0, 20.0):
        config = LocatorConfig(own_slack_mm=slack_mm)
        found = locate_structures(atlas.image, names, atlas=atlas, config=config)
        regions = {}
        for name, value in (("spleen", 1), ("kidney_left", 3), ("liver", 5)):
            region = found[name].region
            assert region is not None
            assert region.shape == labels.shape
            assert region[labels == value].mean() > 0.95, name
            assert (found[name].expected_ml or 0.0) > 10.0, name
            regions[name] = region
        # a 3 mm voxel of tolerance for the registration of the atlas onto itself
        from_kidney = ndimage.distance_transform_edt(labels != 3, sampling=spacing)
        far_spleen = (labels == 1) & (from_kidney > slack_mm + 3.0)
        assert far_spleen.sum() > 1000
        assert not regions["kidney_left"][far_spleen].any()
        assert not regions["liver"][(labels == 1) | (labels == 3)].any()
    # Alone, or with the limit off, a structure has no region.
    assert locate_structures(atlas.image, ["spleen"], atlas=atlas)["spleen"].region is None
    free = locate_structures(
        atlas.image, names, atlas=atlas, config=LocatorConfig(own_slack_mm=None)
    )
    assert all(box.region is None for box in free.values())
