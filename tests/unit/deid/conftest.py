"""Fixtures for the de-identification tests: a key and DICOM files full of planted PHI.

The PHI files start from a real CT slice of the bundled TotalSegmentator series and carry
unique marker values in more than 50 attributes: person names, IDs, addresses, free text,
dates, UIDs, nested sequences (two levels), private tags (text, name, bytes, a private
sequence), the file meta header (AE titles, private information) and the preamble.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from medseg.deid import DeidKey

KEY_BYTES = b"medseg-test-key-0123456789abcdef"

# keyword -> VR class of the planted value; every value is unique and searched for later
PN_TAGS = [
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "PatientBirthName",
    "PatientMotherBirthName",
    "OtherPatientNames",
    "ConsultingPhysicianName",
    "ResponsiblePerson",
    "ContentCreatorName",
]
TEXT_TAGS = [
    "OtherPatientIDs",
    "AccessionNumber",
    "StudyID",
    "IssuerOfPatientID",
    "MedicalRecordLocator",
    "AdmissionID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MilitaryRank",
    "BranchOfService",
    "CountryOfResidence",
    "RegionOfResidence",
    "Occupation",
    "AdditionalPatientHistory",
    "PatientComments",
    "StudyDescription",
    "SeriesDescription",
    "ProtocolName",
    "ImageComments",
    "RequestedProcedureDescription",
    "PerformedProcedureStepDescription",
    "PerformedProcedureStepID",
    "ReasonForStudy",
    "RequestingService",
    "DetectorID",
    "GantryID",
    "PlateID",
    "ResponsibleOrganization",
    "FillerOrderNumberImagingServiceRequest",
    "PlacerOrderNumberImagingServiceRequest",
    "DerivationDescription",
    "FrameComments",
    "ClinicalTrialSponsorName",
    "ClinicalTrialSubjectID",
]
DATE_TAGS = [
    "PatientBirthDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "DateOfLastCalibration",
    "PerformedProcedureStepStartDate",
    "LastMenstrualDate",
    "AdmittingDate",
]


@dataclass
class PhiFile:
    """A generated file and every marker planted in it."""

    path: Path
    markers: dict[str, str] = field(default_factory=dict)
    uids: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def deid_key() -> DeidKey:
    return DeidKey(KEY_BYTES)


@pytest.fixture(scope="session")
def ct_slice(ct_dicom_dir: Path) -> Dataset:
    """One real CT slice (TotalSegmentator sample), read once."""
    first = sorted(ct_dicom_dir.iterdir())[0]
    return pydicom.dcmread(first)


def _marker(prefix: str, index: int, tag: str) -> str:
    return f"{prefix}{zlib.crc32(tag.encode()) % 100000:05d}Q{index:02d}"


@pytest.fixture
def make_phi_file(ct_slice: Dataset) -> Callable[..., PhiFile]:
    """Build a PHI-laden CT file; ``patient``/``study``/``series`` pick shared identities."""

    def build(
        path: Path,
        *,
        patient: int = 0,
        study: int = 0,
        series: int = 0,
        instance: int = 0,
        study_date: str = "20200115",
        referenced_sop: str | None = None,
    ) -> PhiFile:
        ds = copy.deepcopy(ct_slice)
        phi = PhiFile(path=path)
        names = {
            "PatientName": f"ZORBAQUEX{patient}^WILHELMINA{patient}",
            "PatientID": f"PIDX{patient:06d}77",
        }
        for keyword, value in names.items():
            setattr(ds, keyword, value)
            phi.markers[keyword] = value
        for keyword in PN_TAGS:
            value = f"DRNAME{_marker('', patient, keyword)}^GIVENAB{patient}"
            setattr(ds, keyword, value)
            phi.markers[keyword] = value
        for keyword in TEXT_TAGS:
            value = f"PHITXT{_marker('', patient, keyword)}"
            setattr(ds, keyword, value)
            phi.markers[keyword] = value
        for offset, keyword in enumerate(DATE_TAGS):
            value = f"1987{(offset % 12) + 1:02d}{(patient % 20) + 3:02d}"
            setattr(ds, keyword, value)
            phi.markers[keyword] = value
        ds.StudyDate = study_date
        phi.markers["StudyDate"] = study_date
        ds.AcquisitionDateTime = f"{study_date}101500.000000"
        uid_root = "1.2.826.0.1.3680043.10.9999"
        uids = {
            "StudyInstanceUID": f"{uid_root}.1.{patient}.{study}",
            "SeriesInstanceUID": f"{uid_root}.2.{patient}.{study}.{series}",
            "SOPInstanceUID": f"{uid_root}.3.{patient}.{study}.{series}.{instance}",
            "FrameOfReferenceUID": f"{uid_root}.4.{patient}.{study}",
            "IrradiationEventUID": f"{uid_root}.5.{patient}.{study}.{series}.{instance}",
            "InstanceCreatorUID": f"{uid_root}.6.{patient}",
        }
        for keyword, value in uids.items():
            setattr(ds, keyword, value)
        phi.uids.update(uids)
        ds.SOPClassUID = CTImageStorage
        # nested sequences, two levels deep
        request = Dataset()
        request.RequestedProcedureID = f"REQPROC{patient}X91"
        request.ScheduledProcedureStepID = f"SCHEDSTEP{patient}X92"
        request.ScheduledProcedureStepDescription = f"SCHEDDESC{patient}X93"
        request.RequestedProcedureDescription = f"REQDESC{patient}X94"
        inner_ref = Dataset()
        inner_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        inner_ref.ReferencedSOPInstanceUID = f"{uid_root}.7.{patient}"
        request.ReferencedStudySequence = Sequence([inner_ref])
        ds.RequestAttributesSequence = Sequence([request])
        for keyword in (
            "RequestedProcedureID",
            "ScheduledProcedureStepID",
            "ScheduledProcedureStepDescription",
        ):
            phi.markers[f"RequestAttributesSequence.{keyword}"] = request.get(keyword)
        phi.uids["RequestAttributesSequence.ReferencedSOPInstanceUID"] = f"{uid_root}.7.{patient}"
        other = Dataset()
        other.PatientID = f"OTHERPID{patient}X95"
        other.IssuerOfPatientID = f"OTHERISSUER{patient}X96"
        ds.OtherPatientIDsSequence = Sequence([other])
        phi.markers["OtherPatientIDsSequence.PatientID"] = other.PatientID
        phi.markers["OtherPatientIDsSequence.IssuerOfPatientID"] = other.IssuerOfPatientID
        person = Dataset()
        code = Dataset()
        code.CodeValue = f"EMPL{patient}X97"
        code.CodingSchemeDesignator = "99HOSP"
        code.CodeMeaning = f"EMPLOYEE{patient}X98"
        person.PersonIdentificationCodeSequence = Sequence([code])
        person.InstitutionName = f"PERSONINST{patient}X99"
        ds.PerformingPhysicianIdentificationSequence = Sequence([person])
        phi.markers["PerformingPhysicianIdentificationSequence.code"] = code.CodeMeaning
        phi.markers["PerformingPhysicianIdentificationSequence.inst"] = person.InstitutionName
        if referenced_sop is not None:
            ref = Dataset()
            ref.ReferencedSOPClassUID = CTImageStorage
            ref.ReferencedSOPInstanceUID = referenced_sop
            ds.SourceImageSequence = Sequence([ref])
        # private tags: text, person name, bytes and a private sequence
        block = ds.private_block(0x0009, "ACME PHI 1.0", create=True)
        block.add_new(0x01, "LO", f"PRIVTEXT{patient}X81")
        block.add_new(0x02, "PN", f"PRIVNAME{patient}^X82")
        block.add_new(0x03, "UN", f"PRIVBYTES{patient}X83".encode())
        item = Dataset()
        item.PatientName = f"PRIVSEQNAME{patient}^X84"
        block.add_new(0x04, "SQ", Sequence([item]))
        phi.markers["private1"] = f"PRIVTEXT{patient}X81"
        phi.markers["private2"] = f"PRIVNAME{patient}^X82"
        phi.markers["private3"] = f"PRIVBYTES{patient}X83"
        phi.markers["private4"] = f"PRIVSEQNAME{patient}^X84"
        # file meta and preamble
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = uids["SOPInstanceUID"]
        meta.TransferSyntaxUID = ct_slice.file_meta.TransferSyntaxUID
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.9999.100"
        meta.SourceApplicationEntityTitle = f"SRCAE{patient}X71"
        meta.SendingApplicationEntityTitle = f"SENDAE{patient}X72"
        meta.PrivateInformationCreatorUID = f"{uid_root}.8.{patient}"
        meta.PrivateInformation = f"METAPRIV{patient}X73".encode()
        ds.file_meta = meta
        phi.markers["meta.source_ae"] = meta.SourceApplicationEntityTitle
        phi.markers["meta.sending_ae"] = meta.SendingApplicationEntityTitle
        phi.markers["meta.private"] = f"METAPRIV{patient}X73"
        phi.uids["meta.creator"] = f"{uid_root}.8.{patient}"
        ds.preamble = f"PREAMBLEPHI{patient}X74".encode().ljust(128, b"\x00")
        phi.markers["preamble"] = f"PREAMBLEPHI{patient}X74"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        return phi

    return build


def count_planted_tags(phi: PhiFile) -> int:
    """Distinct attributes carrying planted PHI (markers plus UIDs)."""
    return len(phi.markers) + len(phi.uids)
