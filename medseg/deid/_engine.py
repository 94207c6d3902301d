"""The de-identification engine: applies the resolved profile to one pydicom Dataset.

Actions are applied recursively inside every sequence item; private attributes are removed
unless kept by the safe-private list; the file meta header is rebuilt from scratch (so nothing
in the original meta group, preamble or trailing padding survives); UIDs are replaced by keyed
``2.25`` UIDs; the patient gets one keyed pseudonym and, with Modified Dates, one keyed date
offset. Pixel data is copied as stored (never decoded) unless a pixel rule must blank it.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID_dictionary

from medseg.core import DeidError
from medseg.deid._config import DeidConfig, PixelRules
from medseg.deid._dicomio import quiet_pydicom
from medseg.deid._iod import find_attribute_types
from medseg.deid._keys import DeidKey
from medseg.deid._pixels import (
    BurnedInRefusedError,
    blank_regions,
    find_burned_in_risk,
    match_pixel_rule,
)
from medseg.deid._table import Action, DeidOption, build_action_table, resolve_combined_action
from medseg.deid._values import (
    BYTES_VRS,
    DUMMY_PERSON_NAME,
    TEXT_VRS,
    clean_text,
    collect_text_tokens,
    compile_cleaner,
    make_dummy,
    shift_date,
    shift_datetime,
)

logger = logging.getLogger(__name__)

try:
    _VERSION = version("medseg")
except PackageNotFoundError:  # a source tree that is not installed
    _VERSION = "0"

_CODE_MACRO = range(0x00080100, 0x00080130)  # Basic Code Sequence Macro: codes are kept
_KEEP_UID_SUFFIXES = ("ClassUID", "ClassUIDInFile", "TransferSyntaxUID", "TransferSyntaxUIDInFile")
_KEEP_UID_KEYWORDS = frozenset({"CodingSchemeUID", "MappingResourceUID"})
_IDENTITY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientBirthDate",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MedicalRecordLocator",
    "AccessionNumber",
    "StudyID",
    "AdmissionID",
    "IssuerOfPatientID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "OperatorsName",
    "RequestingPhysician",
    "StationName",
    "DeviceSerialNumber",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
)
_OPTION_CODES = {
    DeidOption.RETAIN_SAFE_PRIVATE: codes.DCM.RetainSafePrivateOption,
    DeidOption.RETAIN_UIDS: codes.DCM.RetainUidsOption,
    DeidOption.RETAIN_DEVICE_IDENTITY: codes.DCM.RetainDeviceIdentityOption,
    DeidOption.RETAIN_INSTITUTION_IDENTITY: codes.DCM.RetainInstitutionIdentityOption,
    DeidOption.RETAIN_PATIENT_CHARACTERISTICS: codes.DCM.RetainPatientCharacteristicsOption,
    DeidOption.RETAIN_LONG_FULL_DATES: (
        codes.DCM.RetainLongitudinalTemporalInformationFullDatesOption
    ),
    DeidOption.RETAIN_LONG_MODIFIED_DATES: (
        codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption
    ),
    DeidOption.CLEAN_DESCRIPTORS: codes.DCM.CleanDescriptorsOption,
    DeidOption.CLEAN_STRUCTURED_CONTENT: codes.DCM.CleanStructuredContentOption,
    DeidOption.CLEAN_GRAPHICS: codes.DCM.CleanGraphicsOption,
}
_CLEANING_OPTIONS = frozenset(
    {
        DeidOption.CLEAN_DESCRIPTORS,
        DeidOption.CLEAN_STRUCTURED_CONTENT,
        DeidOption.CLEAN_GRAPHICS,
        DeidOption.RETAIN_PATIENT_CHARACTERISTICS,
    }
)
_GRAPHIC_GROUPS = frozenset(range(0x5000, 0x5020, 2)) | frozenset(range(0x6000, 0x6020, 2))
_MODE_DUMMY = "dummy"
_MODE_CLEAN = "clean"


@dataclass
class DeidResult:
    """What de-identifying one dataset did (no PHI except in ``original_*``).

    Attributes
    ----------
    pseudonym
        The patient pseudonym (16 upper-case letters).
    study_uid, series_uid, sop_uid
        The new UIDs, used to name the output file.
    counts
        Number of elements per action code (``X``, ``Z``, ``D``, ``C``, ``U``, ``K``).
    pixels_cleaned_by
        Name of the pixel rule that blanked regions, or None.
    original_patient_id, original_patient_name, original_study_uid
        Originals for the optional link table only; never logged or written elsewhere.
    """

    pseudonym: str
    study_uid: str
    series_uid: str
    sop_uid: str
    counts: Counter[str] = field(default_factory=Counter)
    pixels_cleaned_by: str | None = None
    original_patient_id: str = ""
    original_patient_name: str = ""
    original_study_uid: str = ""


@dataclass
class _Context:
    offset_days: int
    cleaner: re.Pattern[str] | None
    counts: Counter[str]
    types: dict[tuple[str, ...], str] | None
    pixels_cleaned: bool = False
    declared_safe: dict[tuple[int, str], frozenset[int] | None] = field(default_factory=dict)


class Deidentifier:
    """Apply a de-identification profile to datasets.

    Parameters
    ----------
    config
        The profile (options, overrides, safe private list, date shift bounds).
    key
        The project secret's derivations.
    pixel_rules
        ``--clean-pixels`` rules; without them files at risk of burned-in text are refused.
    """

    def __init__(
        self, config: DeidConfig, key: DeidKey, *, pixel_rules: PixelRules | None = None
    ) -> None:
        self.config = config
        self.key = key
        self.pixel_rules = pixel_rules
        self.options = frozenset(config.options)
        table = build_action_table(self.options)
        self._actions: dict[int, Action | str] = {**table.by_tag, **config.override_tags()}
        self._table = table
        self._retain_uids = DeidOption.RETAIN_UIDS in self.options
        if DeidOption.RETAIN_LONG_FULL_DATES in self.options:
            self._date_action = Action.KEEP
        elif DeidOption.RETAIN_LONG_MODIFIED_DATES in self.options:
            self._date_action = Action.CLEAN
        else:
            self._date_action = Action.DUMMY
        self._ae_action = (
            Action.KEEP if DeidOption.RETAIN_DEVICE_IDENTITY in self.options else Action.DUMMY
        )
        self._shift_dates = DeidOption.RETAIN_LONG_MODIFIED_DATES in self.options
        self._keep_dates = DeidOption.RETAIN_LONG_FULL_DATES in self.options
        self._safe_private = {
            (int(s.group, 16), s.creator.strip(), int(s.element, 16)) for s in config.safe_private
        }
        self._needs_cleaner = bool(self.options & _CLEANING_OPTIONS) or any(
            a is Action.CLEAN for a in config.override_tags().values()
        )

    # ------------------------------------------------------------------ public
    def deidentify(self, ds: Dataset) -> DeidResult:
        """De-identify ``ds`` in place (the in-memory dataset; files are never touched).

        Raises
        ------
        BurnedInRefusedError
            If the file may carry burned-in text and no pixel rule matched it.
        DeidError
            If the dataset has no SOP Instance UID to name it by.
        """
        with quiet_pydicom():  # pydicom's validation warnings would quote PHI values
            return self._deidentify(ds)

    def _deidentify(self, ds: Dataset) -> DeidResult:
        rule = match_pixel_rule(ds, self.pixel_rules) if self.pixel_rules else None
        risk = find_burned_in_risk(ds)
        if risk is not None and rule is None:
            raise BurnedInRefusedError(risk + ("_no_matching_rule" if self.pixel_rules else ""))

        original_id = str(ds.get("PatientID", "") or "").strip()
        original_name = str(ds.get("PatientName", "") or "").strip()
        original_study = str(ds.get("StudyInstanceUID", "") or "")
        identity = original_id or original_name or f"study:{original_study}"
        pseudonym = self.key.make_pseudonym(identity)
        offset = self.key.compute_date_offset_days(
            identity,
            min_days=self.config.date_shift.min_days,
            max_days=self.config.date_shift.max_days,
        )
        cleaner = None
        if self._needs_cleaner:
            cleaner = compile_cleaner(collect_text_tokens(self._identity_values(ds)))
        meta = getattr(ds, "file_meta", None)
        transfer_syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        sop_instance = ds.get("SOPInstanceUID") or (
            meta.get("MediaStorageSOPInstanceUID") if meta is not None else None
        )
        if not sop_instance:
            raise DeidError("the dataset has no SOP Instance UID; it cannot be named safely")

        result = DeidResult(
            pseudonym=pseudonym,
            study_uid="",
            series_uid="",
            sop_uid="",
            original_patient_id=original_id,
            original_patient_name=original_name,
            original_study_uid=original_study,
        )
        if rule is not None:
            if meta is None:
                ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = transfer_syntax or "1.2.840.10008.1.2.1"
            blank_regions(ds, rule)
            transfer_syntax = ds.file_meta.TransferSyntaxUID
            result.pixels_cleaned_by = rule.name
            ds.BurnedInAnnotation = "NO"

        sop_class = str(ds.get("SOPClassUID", "") or "")
        ctx = _Context(
            offset_days=offset,
            cleaner=cleaner,
            counts=result.counts,
            types=find_attribute_types(sop_class) if sop_class else None,
            pixels_cleaned=rule is not None,
            declared_safe=self._declared_safe_blocks(ds),
        )
        self._walk(ds, ctx, None, ())
        self._drop_orphan_overlays(ds)
        self._set_identity(ds, pseudonym, str(sop_instance), rule is not None)
        sop_class = ds.get("SOPClassUID") or (
            meta.get("MediaStorageSOPClassUID") if meta is not None else None
        )
        if not sop_class:
            raise DeidError("the dataset has no SOP Class UID; it cannot be written validly")
        if not ds.get("SOPClassUID"):
            ds.SOPClassUID = sop_class
        self._rebuild_file_meta(ds, transfer_syntax)
        result.study_uid = str(ds.get("StudyInstanceUID", "") or "")
        result.series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        result.sop_uid = str(ds.SOPInstanceUID)
        return result

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _identity_values(ds: Dataset) -> list[str]:
        """Identifying values the file's own free text is cleaned of.

        The top-level identity attributes plus every person name anywhere in the data set
        (operators, interpreters, observers in sequences).
        """
        values: list[str] = [
            str(elem.value) for elem in ds.iterall() if elem.VR == "PN" and elem.value
        ]
        for keyword in _IDENTITY_KEYWORDS:
            value = ds.get(keyword)
            if value is None or value == "":
                continue
            items = value if isinstance(value, list | tuple | MultiValue) else [value]
            values += [str(v) for v in items if str(v).strip()]
        return values

    def _action_for(
        self, tag: int, vr: str, mode: str | None, ctx: _Context, path: tuple[str, ...]
    ) -> Action:
        action = self._actions.get(tag)
        if isinstance(action, Action):
            return action
        if action is not None:
            attribute_type = None
            if ctx.types is not None:
                # top level: absent from the IOD means Type 3; nested: the module tables
                # miss functional-group macros, so an unknown path takes the safe default
                attribute_type = ctx.types.get((*path, keyword_for_tag(tag)), None if path else "3")
            return resolve_combined_action(
                action, attribute_type=attribute_type, is_sequence=vr == "SQ"
            )
        group = tag >> 16
        if 0x5000 <= group <= 0x501E:
            return self._table.curve_action
        if 0x6000 <= group <= 0x601E:
            element = tag & 0xFFFF
            if element == 0x3000:
                return self._table.overlay_data_action
            if element == 0x4000:
                return self._table.overlay_comments_action
        if self.config.harden_unlisted:
            if vr in ("DA", "DT"):
                return self._date_action
            if vr == "PN":
                return Action.DUMMY
            if vr == "UI":
                return Action.KEEP if self._retain_uids else Action.REPLACE_UID
            if vr == "AE":
                return self._ae_action
        if mode is not None and vr in TEXT_VRS and tag not in _CODE_MACRO:
            return Action.DUMMY if mode == _MODE_DUMMY else Action.CLEAN
        if mode is not None and vr in ("DA", "DT"):
            return self._date_action
        return Action.KEEP

    def _walk(self, ds: Dataset, ctx: _Context, mode: str | None, path: tuple[str, ...]) -> None:
        creators_used: set[int] = set()
        creator_tags: list[int] = []
        for tag in list(ds.keys()):
            group = tag >> 16
            if group & 1:
                element = tag & 0xFFFF
                if 0x0010 <= element <= 0x00FF:
                    creator_tags.append(tag)
                    continue
                if element < 0x0010:  # group length or illegal
                    del ds[tag]
                    continue
                if self._keep_private(ds, tag, ctx):
                    creators_used.add((group << 16) | (element >> 8))
                    elem = ds[tag]
                    if elem.VR == "SQ":
                        for item in elem.value:
                            self._walk(item, ctx, mode, ())
                    ctx.counts["K"] += 1
                else:
                    del ds[tag]
                    ctx.counts["X"] += 1
                continue
            if group == 0x0002 or group == 0x0000 or tag == 0xFFFCFFFC:
                del ds[tag]  # meta or command elements inside the data set; padding
                ctx.counts["X"] += 1
                continue
            raw = ds.get_item(tag)
            vr = raw.VR if raw is not None and raw.VR else _dictionary_vr(tag)
            action = self._action_for(tag, vr, mode, ctx, path)
            self._apply(ds, tag, vr, action, ctx, mode, path)
        for tag in creator_tags:
            if tag not in creators_used:
                del ds[tag]

    @staticmethod
    def _drop_orphan_overlays(ds: Dataset) -> None:
        """Remove a whole overlay group whose Overlay Data was removed.

        Leaving rows, columns and origin without the bitmap would make an incomplete Overlay
        Plane module (a Type 1 attribute missing); without any of it the module is absent,
        which is valid.
        """
        groups = {tag >> 16 for tag in list(ds.keys()) if 0x6000 <= (tag >> 16) <= 0x601E}
        for group in groups:
            if ((group << 16) | 0x3000) not in ds:
                for tag in [t for t in list(ds.keys()) if t >> 16 == group]:
                    del ds[tag]

    def _declared_safe_blocks(self, ds: Dataset) -> dict[tuple[int, str], frozenset[int] | None]:
        """Private blocks the file itself declares safe (PS3.15 E.3.10, PS3.3 C.12.1.1.7).

        From the Private Data Element Characteristics Sequence: a SAFE block maps to None
        (every element kept), a MIXED block to the offsets listed as identifying (all others
        kept); UNSAFE blocks are not listed. Only used with Retain Safe Private.
        """
        if self._table.private_action is not Action.CLEAN:
            return {}
        declared: dict[tuple[int, str], frozenset[int] | None] = {}
        for item in ds.get("PrivateDataElementCharacteristicsSequence", None) or []:
            group = item.get("PrivateGroupReference")
            creator = str(item.get("PrivateCreatorReference", "") or "").strip()
            status = str(item.get("BlockIdentifyingInformationStatus", "") or "").upper()
            if group is None or not creator:
                continue
            if status == "SAFE":
                declared[(int(group), creator)] = None
            elif status == "MIXED":
                unsafe = item.get("IdentifyingPrivateElements", None) or []
                unsafe = [unsafe] if isinstance(unsafe, int) else list(unsafe)
                declared[(int(group), creator)] = frozenset(int(e) for e in unsafe)
        return declared

    def _keep_private(self, ds: Dataset, tag: int, ctx: _Context) -> bool:
        if self._table.private_action is not Action.CLEAN:
            return False
        if not self._safe_private and not ctx.declared_safe:
            return False
        group, element = tag >> 16, tag & 0xFFFF
        creator_tag = (group << 16) | (element >> 8)
        if creator_tag not in ds:
            return False
        creator = str(ds[creator_tag].value or "").strip()
        if (group, creator, element & 0xFF) in self._safe_private:
            return True
        if (group, creator) in ctx.declared_safe:
            unsafe = ctx.declared_safe[(group, creator)]
            return unsafe is None or (element & 0xFF) not in unsafe
        return False

    def _apply(
        self,
        ds: Dataset,
        tag: int,
        vr: str,
        action: Action,
        ctx: _Context,
        mode: str | None,
        path: tuple[str, ...],
    ) -> None:
        ctx.counts[action.value] += 1
        if action is Action.REMOVE:
            del ds[tag]
            return
        inner = (*path, keyword_for_tag(tag)) if vr == "SQ" else path
        if action is Action.KEEP:
            if vr == "SQ":
                for item in ds[tag].value:
                    self._walk(item, ctx, mode, inner)
            return
        is_bitmap = (tag >> 16) < 0x6000 or (tag & 0xFFFF) == 0x3000
        if action is Action.CLEAN and (tag >> 16) in _GRAPHIC_GROUPS and is_bitmap:
            # overlay/curve bitmaps cannot be cleaned of text by themselves: they are kept only
            # when a pixel rule blanked the same regions in them, else removed
            if not ctx.pixels_cleaned or (tag >> 16) < 0x6000:
                del ds[tag]
            return
        elem = ds[tag]
        if action is Action.EMPTY:
            elem.value = Sequence() if elem.VR == "SQ" else None
        elif action is Action.DUMMY:
            if elem.VR == "SQ":
                for item in elem.value:
                    self._walk(item, ctx, _MODE_DUMMY, inner)
            elif elem.VR == "UI":
                self._replace_uids(elem)
            else:
                elem.value = make_dummy(elem.VR)
        elif action is Action.REPLACE_UID:
            if elem.VR == "UI":  # with Retain UIDs the table already says K where allowed
                self._replace_uids(elem)
            elif elem.VR != "UI":
                elem.value = make_dummy(elem.VR)
        elif action is Action.CLEAN:
            self._clean(elem, ctx, mode, inner)

    def _replace_uids(self, elem: object) -> None:
        keyword = keyword_for_tag(elem.tag)  # type: ignore[attr-defined]
        if keyword.endswith(_KEEP_UID_SUFFIXES) or keyword in _KEEP_UID_KEYWORDS:
            return
        value = elem.value  # type: ignore[attr-defined]
        if value is None or value == "":
            return
        values = list(value) if not isinstance(value, str) else [value]
        new = [v if (not v or v in UID_dictionary) else self.key.replace_uid(v) for v in values]
        elem.value = new if len(new) > 1 else new[0]  # type: ignore[attr-defined]

    def _clean(self, elem: object, ctx: _Context, mode: str | None, path: tuple[str, ...]) -> None:
        vr = elem.VR  # type: ignore[attr-defined]
        value = elem.value  # type: ignore[attr-defined]
        if vr == "SQ":
            for item in value:
                self._walk(item, ctx, _MODE_CLEAN if mode != _MODE_DUMMY else mode, path)
            return
        if value is None or value == "":
            return
        values = list(value) if isinstance(value, list | tuple | MultiValue) else [value]
        if vr in ("DA", "DT", "TM"):
            if self._keep_dates or (vr == "TM" and self._shift_dates):
                return
            if self._shift_dates:
                shift = shift_date if vr == "DA" else shift_datetime
                new = [shift(str(v), ctx.offset_days) for v in values]
            else:
                new = [make_dummy(vr)] * len(values)
        elif vr == "UI":
            self._replace_uids(elem)
            return
        elif vr == "PN":
            new = [DUMMY_PERSON_NAME]
        elif vr in TEXT_VRS or vr == "CS":
            new = [clean_text(str(v), ctx.cleaner) for v in values]
        elif vr in BYTES_VRS:
            elem.value = None  # type: ignore[attr-defined]
            return
        else:
            return  # numbers, AS, AT: nothing identifying to clean
        elem.value = new if len(new) > 1 else new[0]  # type: ignore[attr-defined]

    def _set_identity(self, ds: Dataset, pseudonym: str, sop_instance: str, pixels: bool) -> None:
        ds.PatientID = pseudonym
        ds.PatientName = pseudonym
        if not ds.get("SOPInstanceUID"):
            # an empty SOP Instance UID (the meta header still has one): derive it from that
            ds.SOPInstanceUID = (
                sop_instance if self._retain_uids else self.key.replace_uid(sop_instance)
            )
        ds.PatientIdentityRemoved = "YES"
        option_names = sorted(o.value for o in self.options)
        ds.DeidentificationMethod = [f"medseg {_VERSION} PS3.15 E.1-1 Basic Profile"] + [
            name.replace("_", " ") for name in option_names
        ]
        method_codes = [codes.DCM.BasicApplicationConfidentialityProfile]
        if pixels:
            method_codes.append(codes.DCM.CleanPixelDataOption)
        method_codes += [_OPTION_CODES[o] for o in sorted(self.options, key=lambda o: o.value)]
        items = []
        for code in method_codes:
            item = Dataset()
            item.CodeValue = code.value
            item.CodingSchemeDesignator = code.scheme_designator
            item.CodeMeaning = code.meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        if self._keep_dates:
            ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
        elif self._shift_dates:
            ds.LongitudinalTemporalInformationModified = "MODIFIED"
        else:
            ds.LongitudinalTemporalInformationModified = "REMOVED"

    @staticmethod
    def _rebuild_file_meta(ds: Dataset, transfer_syntax: object) -> None:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = transfer_syntax or "1.2.840.10008.1.2.1"
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = f"MEDSEG_{_VERSION}"[:16]
        ds.file_meta = meta
        ds.preamble = b"\x00" * 128


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"
