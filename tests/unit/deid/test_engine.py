"""Deidentifier on single datasets: each option switch, dates, UIDs, private, overlays."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence

from medseg.core import ConfigError, parse_config
from medseg.deid import (
    BurnedInRefusedError,
    DeidConfig,
    Deidentifier,
    DeidKey,
    DeidOption,
    PixelRules,
    SafePrivateAttribute,
)
from tests.unit.deid.conftest import PhiFile


@pytest.fixture
def phi_dataset(tmp_path: Path, make_phi_file: Callable[..., PhiFile]) -> Callable[..., Dataset]:
    def build(**kwargs: object) -> Dataset:
        phi = make_phi_file(tmp_path / f"f{len(list(tmp_path.iterdir()))}.dcm", **kwargs)
        return pydicom.dcmread(phi.path)

    return build


def _deid(ds: Dataset, key: DeidKey, *options: DeidOption, **config: object) -> Dataset:
    engine = Deidentifier(DeidConfig(options=options, **config), key)
    engine.deidentify(ds)
    return ds


def test_basic_profile_replaces_uids_consistently(phi_dataset, deid_key: DeidKey) -> None:
    a = _deid(phi_dataset(instance=1), deid_key)
    b = _deid(phi_dataset(instance=2), deid_key)
    assert a.StudyInstanceUID == b.StudyInstanceUID
    assert a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # a registry UID is not replaced
    for uid in (a.StudyInstanceUID, a.SOPInstanceUID):
        assert uid.startswith("2.25.")
        assert len(uid) <= 64
        assert int(uid[5:]) < 2**128


def test_uids_depend_on_the_key(phi_dataset, deid_key: DeidKey) -> None:
    a = _deid(phi_dataset(), deid_key)
    b = _deid(phi_dataset(), DeidKey(b"another-secret-key-0123456789abc"))
    assert a.StudyInstanceUID != b.StudyInstanceUID
    assert a.PatientID != b.PatientID


def test_retain_uids_keeps_them(phi_dataset, deid_key: DeidKey) -> None:
    ds = phi_dataset(patient=3)
    original = ds.SOPInstanceUID
    _deid(ds, deid_key, DeidOption.RETAIN_UIDS)
    assert ds.SOPInstanceUID == original
    assert ds.file_meta.MediaStorageSOPInstanceUID == original


def test_references_follow_their_targets(phi_dataset, deid_key: DeidKey) -> None:
    target = phi_dataset(instance=1)
    target_uid = target.SOPInstanceUID
    referrer = phi_dataset(instance=2, referenced_sop=target_uid)
    overrides = {"SourceImageSequence": "K"}
    _deid(target, deid_key, overrides=overrides)
    _deid(referrer, deid_key, overrides=overrides)
    assert referrer.SourceImageSequence[0].ReferencedSOPInstanceUID == target.SOPInstanceUID


def test_source_image_sequence_follows_the_iod_type(phi_dataset, deid_key: DeidKey) -> None:
    # X/Z/U*: Type 3 in the CT Image IOD, so it is removed under the Basic Profile
    ds = _deid(phi_dataset(referenced_sop="1.2.3.4.5"), deid_key)
    assert "SourceImageSequence" not in ds


def test_patient_pseudonym_is_keyed_and_shared(phi_dataset, deid_key: DeidKey) -> None:
    a = _deid(phi_dataset(patient=5, study=1), deid_key)
    b = _deid(phi_dataset(patient=5, study=2), deid_key)
    c = _deid(phi_dataset(patient=6), deid_key)
    assert a.PatientID == b.PatientID == str(a.PatientName)
    assert a.PatientID != c.PatientID
    assert a.PatientID.isalpha()
    assert a.PatientID.isupper()
    assert len(a.PatientID) == 16


def test_basic_profile_actions(phi_dataset, deid_key: DeidKey) -> None:
    ds = _deid(phi_dataset(), deid_key)
    assert ds.AccessionNumber in ("", None)  # Z
    assert "InstitutionAddress" not in ds  # X
    assert "StationName" not in ds  # X/Z/D, Type 3 in the CT IOD
    assert ds.StudyDate in ("", None)  # Z
    assert ds.ReferringPhysicianName in ("", None)  # Z
    assert "OtherPatientIDsSequence" not in ds  # X
    assert "PatientSex" not in ds or ds.PatientSex in ("", None)  # Z
    assert "PatientAge" not in ds
    assert ds.DateOfLastCalibration == "19000101"  # unlisted date: hardened to a dummy
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]


@pytest.mark.parametrize(
    ("option", "keyword"),
    [
        (DeidOption.RETAIN_DEVICE_IDENTITY, "StationName"),
        (DeidOption.RETAIN_DEVICE_IDENTITY, "DeviceSerialNumber"),
        (DeidOption.RETAIN_INSTITUTION_IDENTITY, "InstitutionName"),
        (DeidOption.RETAIN_INSTITUTION_IDENTITY, "InstitutionAddress"),
        (DeidOption.RETAIN_PATIENT_CHARACTERISTICS, "PatientWeight"),
        (DeidOption.RETAIN_PATIENT_CHARACTERISTICS, "PatientSex"),
        (DeidOption.RETAIN_LONG_FULL_DATES, "StudyDate"),
        (DeidOption.RETAIN_LONG_FULL_DATES, "DateOfLastCalibration"),
    ],
)
def test_retain_options_keep_their_attributes(
    phi_dataset, deid_key: DeidKey, option: DeidOption, keyword: str
) -> None:
    ds = phi_dataset()
    ds.PatientWeight = "71.5"
    ds.PatientSex = "F"
    original = ds[keyword].value
    _deid(ds, deid_key, option)
    assert ds[keyword].value == original
    codes = [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
    assert len(codes) == 2


def test_full_dates_mark_unmodified(phi_dataset, deid_key: DeidKey) -> None:
    ds = _deid(phi_dataset(), deid_key, DeidOption.RETAIN_LONG_FULL_DATES)
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"


def test_modified_dates_shift_per_patient_and_keep_intervals(
    phi_dataset, deid_key: DeidKey
) -> None:
    def days(value: str) -> dt.date:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))

    first = phi_dataset(patient=2, study=1, study_date="20200115")
    later = phi_dataset(patient=2, study=2, study_date="20210301")
    other = phi_dataset(patient=4, study=1, study_date="20200115")
    interval = days(later.StudyDate) - days(first.StudyDate)
    acquisition_gap = days(first.AcquisitionDate) - days(first.StudyDate)
    original_time = first.AcquisitionDateTime[8:]
    for ds in (first, later, other):
        _deid(ds, deid_key, DeidOption.RETAIN_LONG_MODIFIED_DATES)
    assert days(later.StudyDate) - days(first.StudyDate) == interval
    assert days(first.AcquisitionDate) - days(first.StudyDate) == acquisition_gap
    shift = (days(first.StudyDate) - dt.date(2020, 1, 15)).days
    assert -3652 <= shift <= -366
    assert first.AcquisitionDateTime[8:] == original_time
    assert first.AcquisitionDateTime[:8] == first.StudyDate
    assert other.StudyDate != first.StudyDate  # another patient, another keyed offset
    assert first.LongitudinalTemporalInformationModified == "MODIFIED"
    assert first.PatientBirthDate in ("", None)  # Z in every column


def test_clean_descriptors_removes_identity_from_text(phi_dataset, deid_key: DeidKey) -> None:
    ds = phi_dataset(patient=7)
    ds.StudyDescription = "CT chest ZORBAQUEX7 seen 2020-01-15 MRN 12345678 follow-up"
    ds.ImageComments = "wilhelmina7 asked for copy"
    _deid(ds, deid_key, DeidOption.CLEAN_DESCRIPTORS)
    assert ds.StudyDescription == "CT chest seen MRN follow-up"
    assert ds.ImageComments == "asked for copy"
    basic = phi_dataset(patient=7)
    _deid(basic, deid_key)
    assert "StudyDescription" not in basic  # X without the option


def _sr_content(patient_name: str) -> Sequence:
    text = Dataset()
    text.RelationshipType = "CONTAINS"
    text.ValueType = "TEXT"
    concept = Dataset()
    concept.CodeValue = "121071"
    concept.CodingSchemeDesignator = "DCM"
    concept.CodeMeaning = "Finding"
    text.ConceptNameCodeSequence = Sequence([concept])
    text.TextValue = f"Nodule in {patient_name}, compare 20190101"
    person = Dataset()
    person.RelationshipType = "HAS OBS CONTEXT"
    person.ValueType = "PNAME"
    person.PersonName = patient_name
    return Sequence([text, person])


def test_structured_content_dummy_or_clean(phi_dataset, deid_key: DeidKey) -> None:
    basic = phi_dataset(patient=8)
    basic.ContentSequence = _sr_content("ZORBAQUEX8^WILHELMINA8")
    _deid(basic, deid_key)
    assert basic.ContentSequence[0].TextValue == "REMOVED"  # D: dummies inside
    assert basic.ContentSequence[0].ConceptNameCodeSequence[0].CodeMeaning == "Finding"
    assert str(basic.ContentSequence[1].PersonName) == "ANONYMOUS"
    clean = phi_dataset(patient=8)
    clean.ContentSequence = _sr_content("ZORBAQUEX8^WILHELMINA8")
    _deid(clean, deid_key, DeidOption.CLEAN_STRUCTURED_CONTENT)
    assert clean.ContentSequence[0].TextValue == "Nodule in , compare"
    assert str(clean.ContentSequence[1].PersonName) == "ANONYMOUS"


def _add_overlay(ds: Dataset) -> None:
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60003000, "OW", b"\xff\xff")
    ds.add_new(0x60004000, "LT", "overlay by ZORBAQUEX9")


def _annotation(text: str) -> Sequence:
    annotation = Dataset()
    text_object = Dataset()
    text_object.UnformattedTextValue = text
    annotation.TextObjectSequence = Sequence([text_object])
    return Sequence([annotation])


def test_graphics_removed_or_cleaned(phi_dataset, deid_key: DeidKey) -> None:
    basic = phi_dataset(patient=9)
    _add_overlay(basic)
    basic.GraphicAnnotationSequence = _annotation("ZORBAQUEX9 left")
    _deid(basic, deid_key)
    assert not any(tag >> 16 == 0x6000 for tag in list(basic.keys()))  # whole overlay group gone
    assert basic.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue == (
        "REMOVED"
    )
    clean = phi_dataset(patient=9)
    _add_overlay(clean)
    clean.GraphicAnnotationSequence = _annotation("ZORBAQUEX9 left")
    _deid(clean, deid_key, DeidOption.CLEAN_GRAPHICS)
    assert clean.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue == ("left")
    # no pixel rule blanked the bitmap: it is not kept uncleaned, nor its orphan attributes
    assert not any(tag >> 16 == 0x6000 for tag in list(clean.keys()))


def test_overlay_kept_and_blanked_with_a_pixel_rule(ct_slice: Dataset, deid_key: DeidKey) -> None:
    ds = _us_dataset(ct_slice, burned="YES")
    ds.PatientName = "ZORBAQUEX9^WILHELMINA9"
    _add_overlay(ds)  # 4x4 overlay at (1,1), all bits set
    rules = parse_config(
        PixelRules,
        {
            "rules": [
                {
                    "name": "r",
                    "manufacturer": "acme",
                    "regions": [{"x": 0, "y": 0, "width": 2, "height": 2}],
                }
            ]
        },
    )
    engine = Deidentifier(
        DeidConfig(options=(DeidOption.CLEAN_GRAPHICS,)), deid_key, pixel_rules=rules
    )
    engine.deidentify(ds)
    bits = np.unpackbits(np.frombuffer(ds[0x60003000].value, np.uint8), bitorder="little")
    grid = bits[:16].reshape(4, 4)
    assert grid[:2, :2].sum() == 0  # inside the blanked region
    assert grid[2:, :].all()
    assert grid[:, 2:].all()
    assert ds[0x60004000].value == "overlay by"


def test_safe_private_keeps_only_listed(phi_dataset, deid_key: DeidKey) -> None:
    safe = (SafePrivateAttribute(group="0009", creator="ACME PHI 1.0", element="01"),)
    ds = _deid(phi_dataset(), deid_key, DeidOption.RETAIN_SAFE_PRIVATE, safe_private=safe)
    block = ds.private_block(0x0009, "ACME PHI 1.0")
    assert block[0x01].value.startswith("PRIVTEXT")
    assert block.get_tag(0x02) not in ds
    assert block.get_tag(0x04) not in ds
    plain = _deid(phi_dataset(), deid_key, safe_private=safe)  # option off: all removed
    assert not any(e.tag.is_private for e in plain)


def test_overrides_and_their_validation(phi_dataset, deid_key: DeidKey) -> None:
    ds = _deid(phi_dataset(), deid_key, overrides={"StudyDescription": "K", "(0008,0070)": "X"})
    assert ds.StudyDescription.startswith("PHITXT")
    assert "Manufacturer" not in ds
    with pytest.raises(ConfigError, match="overrides"):
        parse_config(DeidConfig, {"overrides": {"StudyDescriptoin": "K"}})
    with pytest.raises(ConfigError, match="exclude each other"):
        parse_config(
            DeidConfig,
            {"options": ["retain_long_full_dates", "retain_long_modified_dates"]},
        )


def test_hostile_values_are_replaced(phi_dataset, deid_key: DeidKey) -> None:
    ds = phi_dataset()
    ds.PatientID = "../../../../etc/passwd"
    ds.StudyInstanceUID = "/etc"
    _deid(ds, deid_key)
    assert ds.PatientID.isalpha()
    assert ds.StudyInstanceUID.startswith("2.25.")


def _us_dataset(ct_slice: Dataset, *, burned: str | None) -> Dataset:
    ds = copy.deepcopy(ct_slice)
    ds.Modality = "US"
    ds.Manufacturer = "Acme Ultrasound"
    ds.ManufacturerModelName = "Sonic 9"
    if burned is not None:
        ds.BurnedInAnnotation = burned
    elif "BurnedInAnnotation" in ds:
        del ds.BurnedInAnnotation
    return ds


@pytest.mark.parametrize("burned", ["YES", None])
def test_burned_in_risk_is_refused(ct_slice: Dataset, deid_key: DeidKey, burned) -> None:
    ds = _us_dataset(ct_slice, burned=burned)
    with pytest.raises(BurnedInRefusedError) as info:
        Deidentifier(DeidConfig(), deid_key).deidentify(ds)
    assert info.value.reason in ("burned_in_annotation_yes", "modality_US_without_burned_in_no")


def test_explicit_no_is_accepted(ct_slice: Dataset, deid_key: DeidKey) -> None:
    ds = _us_dataset(ct_slice, burned="NO")
    result = Deidentifier(DeidConfig(), deid_key).deidentify(ds)
    assert result.pixels_cleaned_by is None


def test_pixel_rule_blanks_regions(ct_slice: Dataset, deid_key: DeidKey) -> None:
    rules = parse_config(
        PixelRules,
        {
            "rules": [
                {
                    "name": "other",
                    "manufacturer": "nobody",
                    "regions": [{"x": 0, "y": 0, "width": 1, "height": 1}],
                },
                {
                    "name": "acme-top",
                    "manufacturer": "acme",
                    "model": "sonic",
                    "rows": int(ct_slice.Rows),
                    "regions": [{"x": 10, "y": 0, "width": 100, "height": 40}],
                },
            ]
        },
    )
    ds = _us_dataset(ct_slice, burned="YES")
    before = ds.pixel_array.copy()
    result = Deidentifier(DeidConfig(), deid_key, pixel_rules=rules).deidentify(ds)
    after = ds.pixel_array
    assert result.pixels_cleaned_by == "acme-top"
    assert ds.BurnedInAnnotation == "NO"
    assert np.all(after[0:40, 10:110] == 0)
    np.testing.assert_array_equal(after[40:, :], before[40:, :])
    np.testing.assert_array_equal(after[:, 110:], before[:, 110:])
    assert "113101" in [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
    unmatched = _us_dataset(ct_slice, burned="YES")
    unmatched.Manufacturer = "Other Corp"
    with pytest.raises(BurnedInRefusedError, match="no_matching_rule"):
        Deidentifier(DeidConfig(), deid_key, pixel_rules=rules).deidentify(unmatched)


@pytest.mark.parametrize(("status", "kept"), [("SAFE", {1, 2}), ("MIXED", {1}), ("UNSAFE", set())])
def test_blocks_declared_safe_by_the_file(
    phi_dataset, deid_key: DeidKey, status: str, kept: set[int]
) -> None:
    ds = phi_dataset()
    declaration = Dataset()
    declaration.PrivateGroupReference = 0x0009
    declaration.PrivateCreatorReference = "ACME PHI 1.0"
    declaration.BlockIdentifyingInformationStatus = status
    if status == "MIXED":
        declaration.IdentifyingPrivateElements = [2, 3, 4]
    ds.PrivateDataElementCharacteristicsSequence = Sequence([declaration])
    block = ds.private_block(0x0009, "ACME PHI 1.0")
    del ds[block.get_tag(0x03)], ds[block.get_tag(0x04)]
    _deid(ds, deid_key, DeidOption.RETAIN_SAFE_PRIVATE)
    present = {offset for offset in (1, 2) if block.get_tag(offset) in ds}
    assert present == kept
    plain = phi_dataset()
    plain.PrivateDataElementCharacteristicsSequence = Sequence([declaration])
    _deid(plain, deid_key)  # without the option nothing private survives
    assert not any(e.tag.is_private for e in plain)
