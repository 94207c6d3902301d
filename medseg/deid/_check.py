"""``deid-check``: prove that no identifying value of the originals survives in the outputs.

Every identifying value is collected from the original files (person names and their parts,
identifiers and free text of the attributes Table E.1-1 lists, dates, instance UIDs, private
text, file meta AE titles, NIfTI header text, original file and folder names), then every
element of every output file (sequences, private tags, file meta), every output file and
folder name and every other output text file (the audit) is searched for them, including as
substrings (whole words; numbers standing alone; dates also at the start of a date-time).
Values that the outputs' own De-identification Method Code Sequence says were retained on
purpose (an option such as Retain UIDs) are exempt, and an output value that is an unchanged
copy of an original attribute the profile keeps (Modality, Manufacturer, Image Type, code
meanings…) is counted as ``unchanged_kept_values`` rather than searched: the profile, not
the engine, decided to keep it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
from pydicom import Dataset
from pydicom.datadict import keyword_for_tag
from pydicom.multival import MultiValue
from pydicom.uid import UID_dictionary

from medseg.deid._dicomio import quiet_pydicom, read_dataset
from medseg.deid._engine import _KEEP_UID_KEYWORDS, _KEEP_UID_SUFFIXES
from medseg.deid._nifti import NIFTI_TEXT_FIELDS, is_nifti_path
from medseg.deid._table import Action, DeidOption, build_action_table
from medseg.deid._tree import AUDIT_NAME, NIFTI_FOLDER
from medseg.deid._values import DUMMY_VALUES

logger = logging.getLogger(__name__)

_CODE_TO_OPTION = {
    "113111": DeidOption.RETAIN_SAFE_PRIVATE,
    "113110": DeidOption.RETAIN_UIDS,
    "113109": DeidOption.RETAIN_DEVICE_IDENTITY,
    "113112": DeidOption.RETAIN_INSTITUTION_IDENTITY,
    "113108": DeidOption.RETAIN_PATIENT_CHARACTERISTICS,
    "113106": DeidOption.RETAIN_LONG_FULL_DATES,
    "113107": DeidOption.RETAIN_LONG_MODIFIED_DATES,
    "113105": DeidOption.CLEAN_DESCRIPTORS,
    "113104": DeidOption.CLEAN_STRUCTURED_CONTENT,
    "113103": DeidOption.CLEAN_GRAPHICS,
}
_DECIMAL = re.compile(r"^[-+]?\d*\.\d+(?:[eE][-+]?\d+)?$")
_TEXT = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "AE", "PN", "CS", "UR"})
_BINARY = frozenset({"OB", "UN"})


@dataclass(frozen=True)
class Leak:
    """One original value found in an output (the value itself is never reported).

    Attributes
    ----------
    output
        Output file, relative to the de-identified folder.
    where
        Element path such as ``(0040,A730)[0].(0040,A160)``, or ``path`` for a file name.
    category
        ``name``, ``identifier``, ``date``, ``uid``, ``private``, ``meta``, ``nifti``, ``path``.
    value_sha256
        First 12 hex digits of the SHA-256 of the leaked value, to tell leaks apart.
    """

    output: str
    where: str
    category: str
    value_sha256: str


@dataclass
class LeakReport:
    """Summary of a leak scan."""

    original_files: int = 0
    output_files: int = 0
    values_by_category: Counter[str] = field(default_factory=Counter)
    retained_options: list[str] = field(default_factory=list)
    retained_values: int = 0
    leaks: list[Leak] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary without any PHI."""
        return {
            "original_files": self.original_files,
            "output_files": self.output_files,
            "values_checked": dict(sorted(self.values_by_category.items())),
            "retained_options": self.retained_options,
            "unchanged_kept_values": self.retained_values,
            "leaks": len(self.leaks),
            "leak_details": [leak.__dict__ for leak in self.leaks],
        }


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _read_dicom(path: Path) -> Dataset | None:
    ds = read_dataset(path)
    if ds is not None:
        with quiet_pydicom():
            # convert every raw element now, while validation (which quotes values) is off
            for _ in _walk(ds):
                pass
    return ds


def _walk(ds: Dataset, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for elem in ds:
        where = f"{prefix}({elem.tag.group:04X},{elem.tag.element:04X})"
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value or []):
                yield from _walk(item, f"{where}[{index}].")
        else:
            yield where, elem


def _strings(elem: Any) -> list[str]:
    value = elem.value
    if value is None or value == "":
        return []
    if elem.VR in _BINARY and isinstance(value, bytes):
        return [value[:65536].decode("latin-1")] if elem.tag.is_private else []
    if isinstance(value, bytes):
        return []
    items = value if isinstance(value, list | tuple | MultiValue) else [value]
    return [str(v) for v in items if v is not None and str(v) != ""]


class _Collector:
    def __init__(self, min_length: int, options: frozenset[DeidOption]) -> None:
        self.min_length = min_length
        self.options = options
        self.actions = build_action_table(options).by_tag
        self.values: dict[str, str] = {}
        self.uids: set[str] = set()
        self.background: set[str] = set()
        self.retained: set[str] = set()

    def add(self, value: str, category: str) -> None:
        text = value.strip()
        if len(text) < self.min_length or text.upper() in DUMMY_VALUES:
            return
        if _DECIMAL.match(text):
            return  # measurements such as 0.000000 identify nobody
        self.values.setdefault(text, category)

    def add_dataset(self, ds: Dataset) -> None:
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            for _, elem in _walk(meta):
                for text in _strings(elem):
                    if elem.VR == "UI":
                        self._add_uid(elem, text)
                    elif elem.VR in _TEXT:
                        self.add(text, "meta")
        for _, elem in _walk(ds):
            self._add_element(elem)

    def _add_uid(self, elem: Any, text: str) -> None:
        keyword = keyword_for_tag(elem.tag)
        if text in UID_dictionary or keyword.endswith(_KEEP_UID_SUFFIXES):
            return
        if keyword in _KEEP_UID_KEYWORDS or DeidOption.RETAIN_UIDS in self.options:
            return
        if len(text) >= self.min_length:
            self.uids.add(text.strip())

    def _add_element(self, elem: Any) -> None:
        vr = elem.VR
        strings = _strings(elem)
        if not strings:
            return
        if elem.tag.is_private:
            if not (0x0010 <= elem.tag.element <= 0x00FF):  # creators name vendors, not people
                for text in strings:
                    self.add(text, "private")
            return
        action = self.actions.get(int(elem.tag))
        if vr == "UI":
            for text in strings:
                self._add_uid(elem, text)
        elif vr == "PN":
            for text in strings:
                self.add(text, "name")
                for part in text.replace("=", "^").replace(" ", "^").split("^"):
                    self.add(part, "name")
        elif vr in ("DA", "DT"):
            if DeidOption.RETAIN_LONG_FULL_DATES not in self.options:
                for text in strings:
                    if len(text) >= 8 and text[:8].isdigit():
                        self.add(text[:8], "date")
        elif vr in _TEXT and vr != "CS" and action is not None:
            if action in (Action.KEEP, Action.CLEAN):
                # kept on purpose by an option: a private copy of it is no leak either
                self.retained.update(text.strip().lower() for text in strings)
            else:
                for text in strings:
                    self.add(text, "identifier")
        elif action is None and vr not in ("TM", "AE"):
            # an attribute the profile keeps unchanged: its values are not identifying
            self.background.update(text.strip().lower() for text in strings)
            self.retained.update(text.strip().lower() for text in strings)

    def drop_retained(self) -> None:
        """Forget private/identifier copies of values a public attribute keeps on purpose."""
        for value in list(self.values):
            category = self.values[value]
            if category in ("private", "identifier", "meta") and value.lower() in self.retained:
                del self.values[value]


def _find_options(paths: list[Path]) -> frozenset[DeidOption]:
    found: set[DeidOption] = set()
    for path in paths:
        ds = _read_dicom(path)
        if ds is None:
            continue
        for item in ds.get("DeidentificationMethodCodeSequence", []) or []:
            option = _CODE_TO_OPTION.get(str(item.get("CodeValue", "")))
            if option is not None:
                found.add(option)
        break  # options are per run: the first DICOM output tells them
    return frozenset(found)


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _matches(value: str, lowered: str, haystack: str) -> bool:
    """Whether ``value`` occurs in ``haystack`` (lower case) as a whole word or number.

    Digits: a date (8+ digits) may start or end a longer number (a DT); shorter numbers must
    stand alone. Text: the match must not be inside a longer word (``MARY`` is not found in
    ``PRIMARY``), which is also how the cleaner removes names from free text.
    """
    if not value.isdigit():
        start = haystack.find(lowered)
        while start != -1:
            end = start + len(lowered)
            left_ok = start == 0 or not (_is_word(haystack[start - 1]) and _is_word(lowered[0]))
            right_ok = end == len(haystack) or not (
                _is_word(haystack[end]) and _is_word(lowered[-1])
            )
            if left_ok and right_ok:
                return True
            start = haystack.find(lowered, start + 1)
        return False
    if value.isdigit():
        start = haystack.find(value)
        while start != -1:
            end = start + len(value)
            left_ok = start == 0 or not haystack[start - 1].isdigit()
            right_ok = end == len(haystack) or not haystack[end].isdigit()
            # a date (8 digits) leaks at the start of a DT; shorter numbers must stand alone
            if (left_ok or right_ok) if len(value) >= 8 else (left_ok and right_ok):
                return True
            start = haystack.find(value, start + 1)
    return False


def check_for_leaks(original: Path, deidentified: Path, *, min_length: int = 4) -> LeakReport:
    """Scan every output under ``deidentified`` for identifying values of ``original``.

    Parameters
    ----------
    original
        Folder of the original DICOM/NIfTI files.
    deidentified
        Folder written by :func:`deidentify_tree`.
    min_length
        Values shorter than this many characters are not searched (``M``, ``CT``, ``1`` would
        match everywhere).

    Returns
    -------
    LeakReport
        ``leaks`` is empty when nothing leaked.
    """
    with quiet_pydicom():  # pydicom's warnings would quote the very values being checked
        return _check(original, deidentified, min_length=min_length)


def _check(original: Path, deidentified: Path, *, min_length: int) -> LeakReport:
    output_files = _files(deidentified)
    options = _find_options(output_files)
    collector = _Collector(min_length, options)
    original_files = _files(original)
    for path in original_files:
        for part in path.relative_to(original).parts:
            stem = part.split(".")[0] if "." in part and not part[0].isdigit() else part
            if not stem.isdigit() or len(stem) >= 6:  # 4467.dcm is an instance number
                collector.add(stem, "path")
        if is_nifti_path(path):
            try:
                header: Any = nib.load(str(path)).header
            except Exception:  # nibabel raises several kinds
                continue
            for name in NIFTI_TEXT_FIELDS:
                if name in header:
                    text = header[name].tobytes().split(b"\x00")[0].decode("latin-1")
                    collector.add(text, "nifti")
            continue
        ds = _read_dicom(path)
        if ds is not None:
            collector.add_dataset(ds)
    collector.drop_retained()
    report = LeakReport(original_files=len(original_files), output_files=len(output_files))
    report.retained_options = sorted(o.value for o in options)
    for category in collector.values.values():
        report.values_by_category[category] += 1
    report.values_by_category["uid"] += len(collector.uids)
    values = [(v, v.lower(), c) for v, c in collector.values.items() if c != "path"]
    path_values = [(v, v.lower(), c) for v, c in collector.values.items() if c == "path"]
    uids = collector.uids

    background = collector.background

    def scan(
        text: str, *, output: str, where: str, is_uid: bool, private: bool, names: bool = False
    ) -> None:
        if is_uid:
            if text.strip() in uids:
                report.leaks.append(Leak(output, where, "uid", _sha(text.strip())))
            return
        haystack = text.lower()
        if not private and where != "path" and haystack.strip() in background:
            report.retained_values += 1
            return
        # original file and folder names are searched in output names and text files only
        for value, lowered, category in values + path_values if names else values:
            if _matches(value, lowered, haystack):
                if (
                    private
                    and category == "private"
                    and (DeidOption.RETAIN_SAFE_PRIVATE in options)
                ):
                    continue
                report.leaks.append(Leak(output, where, category, _sha(value)))
        for uid in uids:
            if uid in text:
                report.leaks.append(Leak(output, where, "uid", _sha(uid)))

    for path in output_files:
        rel = path.relative_to(deidentified).as_posix()
        parts = path.relative_to(deidentified).parts
        for depth, part in enumerate(parts):
            if depth == 0 and part in (NIFTI_FOLDER, AUDIT_NAME):
                continue  # the tool's own fixed names carry no input text
            name = part[: -len(".dcm")] if part.endswith(".dcm") else part
            if name in uids:
                report.leaks.append(Leak(rel, "path", "uid", _sha(name)))
            scan(name, output=rel, where="path", is_uid=False, private=False, names=True)
        ds = _read_dicom(path)
        if ds is not None:
            datasets = [getattr(ds, "file_meta", Dataset()), ds]
            for dataset in datasets:
                for where, elem in _walk(dataset):
                    for text in _strings(elem):
                        scan(
                            text,
                            output=rel,
                            where=where,
                            is_uid=elem.VR == "UI",
                            private=elem.tag.is_private,
                        )
            continue
        if is_nifti_path(path):
            try:
                image: Any = nib.load(str(path))
            except Exception:  # nibabel raises several kinds
                continue
            for name in NIFTI_TEXT_FIELDS:
                if name in image.header:
                    text = image.header[name].tobytes().decode("latin-1")
                    scan(text, output=rel, where=name, is_uid=False, private=False)
            for index, ext in enumerate(image.header.extensions):
                scan(
                    ext.get_content().__repr__(),
                    output=rel,
                    where=f"extension[{index}]",
                    is_uid=False,
                    private=False,
                )
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(io.StringIO(text), start=1):
            scan(
                _without_keyed_hash(line),
                output=rel,
                where=f"line {number}",
                is_uid=False,
                private=False,
            )
    logger.info("leak check: %d leaks", len(report.leaks))
    return report


def _without_keyed_hash(line: str) -> str:
    """An audit line without its ``input_hash``: a keyed HMAC, random-looking hex whose digit
    runs would match short original numbers by chance."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return line
    if isinstance(entry, dict) and "input_hash" in entry:
        entry = {k: v for k, v in entry.items() if k != "input_hash"}
        return json.dumps(entry)
    return line


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]
