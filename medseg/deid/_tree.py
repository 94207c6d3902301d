"""De-identify a folder tree: naming by pseudonyms and new UIDs, audit, resume, workers."""

from __future__ import annotations

import csv
import enum
import hashlib
import json
import logging
import os
import re
import struct
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.core import DeidError, InputError, atomic_output, progress
from medseg.deid._config import DeidConfig, PixelRules
from medseg.deid._dicomio import find_pixel_data_problem, read_dataset, write_dataset
from medseg.deid._engine import Deidentifier
from medseg.deid._keys import DeidKey
from medseg.deid._nifti import is_nifti_path, scrub_nifti
from medseg.deid._pixels import BurnedInRefusedError

logger = logging.getLogger(__name__)

AUDIT_NAME = "deid_audit.jsonl"
#: Folder of the NIfTI outputs; with AUDIT_NAME the only fixed names the tool writes.
NIFTI_FOLDER = "nifti"
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_PSEUDONYM = re.compile(r"^[A-Z]{16}$")
_UID_PART = re.compile(r"^[0-9]+(?:\.[0-9]+)*$")


class FileStatus(str, enum.Enum):
    """Outcome for one input file (the audit's ``status``)."""

    WRITTEN = "written"
    REFUSED = "refused"
    ALREADY_DONE = "already_done"
    UNREADABLE = "unreadable"
    NOT_SUPPORTED = "not_supported"
    DUPLICATE = "duplicate_output"
    FAILED = "failed"


#: Statuses that mean an input could not be de-identified (the CLI exits non-zero); a
#: ``duplicate_output`` input (another input with the same UIDs was written there first)
#: is not in the output tree, so it counts too.
FAILURE_STATUSES = frozenset(
    {FileStatus.UNREADABLE.value, FileStatus.FAILED.value, FileStatus.DUPLICATE.value}
)


@dataclass
class DeidRunSummary:
    """What a run did.

    Attributes
    ----------
    statuses
        Number of input files per :class:`FileStatus` value.
    refused
        ``(path relative to SRC, reason)`` of each refused file: for the operator's terminal
        inside the hospital only; never written into the output tree.
    failed
        ``(input path as given, status, reason)`` of each file that could not be
        de-identified (a :data:`FAILURE_STATUSES` status): for the local user only (the
        console and the local audit); never written into the output tree, whose audit
        identifies files by keyed hash alone.
    audit_path
        The JSON-lines audit in the output tree.
    link_table
        The linking table written, or None.
    """

    statuses: Counter[str] = field(default_factory=Counter)
    refused: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    audit_path: Path | None = None
    link_table: Path | None = None
    local_audit: Path | None = None


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
    except ValueError:
        return False
    return True


def check_output_locations(
    src: Path, dst: Path, link_table: Path | None, local_audit: Path | None = None
) -> None:
    """Refuse in-place runs, and a link table or local audit inside the output tree.

    Raises
    ------
    DeidError
        If ``dst`` is ``src``, inside it or contains it, or ``link_table`` or
        ``local_audit`` lies in ``dst``.
    """
    src_r, dst_r = src.resolve(), dst.resolve()
    if _is_within(dst_r, src_r) or _is_within(src_r, dst_r):
        raise DeidError(
            "the output folder must be outside the input folder and not contain it "
            "(de-identification never works in place); choose another DST"
        )
    if link_table is not None and _is_within(link_table.resolve(), dst_r):
        raise DeidError(
            "the link table must not be inside the output tree (it holds the originals); "
            "write it outside DST",
            path=link_table,
        )
    if local_audit is not None and _is_within(local_audit.resolve(), dst_r):
        raise DeidError(
            "the local audit must not be inside the output tree (it names the input files); "
            "write it outside DST",
            path=local_audit,
        )


def _safe_output(dst: Path, parts: list[str]) -> Path:
    """``dst/<pseudonym>/<study>/<series>/<sop>.dcm`` after checking every component.

    A pseudonym is 16 upper-case letters and a UID digits and dots (not starting with a
    dot), so no component can be empty, ``..``, absolute or contain a separator: the path
    cannot leave ``dst`` whatever the original values were.
    """
    if not _PSEUDONYM.match(parts[0]) or not all(_UID_PART.match(p) for p in parts[1:]):
        raise DeidError("an output path component is not a pseudonym or UID; refusing to write")
    return dst.joinpath(*parts[:-1], f"{parts[-1]}.dcm")


def _publish_exclusively(tmp: Path, path: Path) -> bool:
    """Give the complete file ``tmp`` the name ``path`` unless ``path`` exists (atomic, even
    between processes: a hard link never replaces); False if it exists."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system: exclusive create, then copy
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as stream:
            stream.write(tmp.read_bytes())
    return True


def _write_bytes(path: Path, data: bytes) -> str:
    """Write without ever replacing a file; an identical existing file (a resumed run) is
    fine, a different one (two inputs with the same UIDs, even in two workers at once) makes
    this input a ``duplicate_output``."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}{path.suffix}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode per umask
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
            published = _publish_exclusively(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        if published:
            return FileStatus.WRITTEN.value
    same = path.read_bytes() == data
    return FileStatus.WRITTEN.value if same else FileStatus.DUPLICATE.value


class _Worker:
    """Per-process state: the engine built once, then one call per input file."""

    def __init__(
        self, config: DeidConfig, key: DeidKey, rules: PixelRules | None, dst: Path
    ) -> None:
        self.engine = Deidentifier(config, key, pixel_rules=rules)
        self.key = key
        self.dst = dst
        self.options = sorted(o.value for o in config.options)

    def run(self, path: Path, done: frozenset[str]) -> dict[str, Any]:
        """De-identify one file; any failure becomes a ``failed`` record, never a crash.

        Corrupt inputs make pydicom and nibabel raise many kinds of errors, some late
        (pydicom parses elements lazily); one bad file must not stop a run over millions.
        """
        try:
            return self._run(path, done)
        except Exception as err:  # the per-file boundary of a batch run
            logger.debug("file failed", exc_info=True)
            logger.warning("file failed: %s", type(err).__name__)
            return {
                "record": {
                    "status": FileStatus.FAILED.value,
                    "reason": f"error_{type(err).__name__}",
                }
            }

    def _run(self, path: Path, done: frozenset[str]) -> dict[str, Any]:
        try:
            data = path.read_bytes()
        except OSError:
            return {"record": {"status": FileStatus.UNREADABLE.value, "reason": "cannot_read"}}
        digest = self.key.digest_bytes(data)
        record: dict[str, Any] = {"input_hash": digest}
        if digest in done:
            record["status"] = FileStatus.ALREADY_DONE.value
            return {"record": record, "skip_audit": True}
        if is_nifti_path(path):
            return self._run_nifti(path, record, digest)
        ds = read_dataset(data)
        if ds is None:
            if path.suffix.lower() in _DICOM_SUFFIXES:  # named DICOM but does not parse
                record.update(status=FileStatus.UNREADABLE.value, reason="corrupt_dicom")
            else:
                record.update(status=FileStatus.NOT_SUPPORTED.value, reason="not_dicom_or_nifti")
            return {"record": record}
        record["kind"] = "dicom"
        problem = find_pixel_data_problem(ds)
        if problem is not None:
            logger.warning("file skipped: incomplete pixel data (%s)", problem)
            record.update(status=FileStatus.UNREADABLE.value, reason="truncated_pixel_data")
            return {"record": record}
        meta = getattr(ds, "file_meta", None)
        if meta is not None and meta.get("MediaStorageSOPClassUID") == _DICOMDIR_CLASS:
            # a DICOMDIR lists the original file names and identities; the new tree has
            # neither, so it is not carried over (rebuild one from the outputs if needed)
            record.update(status=FileStatus.NOT_SUPPORTED.value, reason="dicomdir")
            return {"record": record}
        try:
            result = self.engine.deidentify(ds)
        except BurnedInRefusedError as err:
            record.update(status=FileStatus.REFUSED.value, reason=err.reason)
            return {"record": record, "refused": err.reason}
        except DeidError as err:
            record.update(status=FileStatus.FAILED.value, reason=type(err).__name__)
            logger.warning("file failed: %s", err.message)
            return {"record": record}
        parts = [
            result.pseudonym,
            result.study_uid or "0",
            result.series_uid or "0",
            result.sop_uid,
        ]
        try:
            out = _safe_output(self.dst, parts)
        except DeidError:
            record.update(status=FileStatus.FAILED.value, reason="unsafe_output_path")
            return {"record": record}
        try:
            data_out = write_dataset(ds)
        except (AttributeError, ValueError, TypeError, OverflowError, struct.error) as err:
            logger.warning("file could not be encoded (%s)", type(err).__name__)
            record.update(status=FileStatus.FAILED.value, reason="cannot_encode")
            return {"record": record}
        status = _write_bytes(out, data_out)
        record.update(
            status=status,
            output=out.relative_to(self.dst).as_posix(),
            actions=dict(sorted(result.counts.items())),
            options=self.options,
        )
        if result.pixels_cleaned_by:
            record["pixel_rule"] = result.pixels_cleaned_by
        links = [
            ("patient_id", result.original_patient_id, result.pseudonym),
            ("patient_name", result.original_patient_name, result.pseudonym),
            ("study_instance_uid", result.original_study_uid, result.study_uid),
        ]
        return {"record": record, "links": [row for row in links if row[1]]}

    def _run_nifti(self, path: Path, record: dict[str, Any], digest: str) -> dict[str, Any]:
        suffix = ".nii.gz" if path.name.lower().endswith(".gz") else ".nii"
        out = self.dst / NIFTI_FOLDER / f"{self.key.make_pseudonym('nifti:' + digest)}{suffix}"
        record["kind"] = "nifti"
        try:
            with atomic_output(out, overwrite=True) as tmp:
                counts = scrub_nifti(path, tmp)
        except InputError:
            record.update(status=FileStatus.UNREADABLE.value, reason="unreadable_nifti")
            return {"record": record}
        record.update(
            status=FileStatus.WRITTEN.value,
            output=out.relative_to(self.dst).as_posix(),
            actions=counts,
        )
        return {"record": record}


_WORKER: _Worker | None = None


def _init_worker(config: DeidConfig, key: DeidKey, rules: PixelRules | None, dst: Path) -> None:
    global _WORKER
    _WORKER = _Worker(config, key, rules, dst)


def _run_in_worker(args: tuple[Path, frozenset[str]]) -> dict[str, Any]:
    if _WORKER is None:  # pragma: no cover - the initializer always runs first
        raise DeidError("worker used before initialisation")
    return _WORKER.run(*args)


def compute_profile_fingerprint(config: DeidConfig, rules: PixelRules | None) -> str:
    """Short hash of the profile and pixel rules: a resumed run only skips files done alike."""
    text = json.dumps(
        [config.model_dump(mode="json"), rules.model_dump(mode="json") if rules else None],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_done_hashes(audit_path: Path, profile: str) -> frozenset[str]:
    """Input hashes an existing audit lists as written with the same profile (for resuming)."""
    if not audit_path.exists():
        return frozenset()
    done = set()
    for line in audit_path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from an interrupted run
        written = entry.get("status") == FileStatus.WRITTEN.value
        if written and entry.get("input_hash") and entry.get("profile") == profile:
            done.add(entry["input_hash"])
    return frozenset(done)


def list_input_files(src: Path) -> list[Path]:
    """Every regular file under ``src`` (symbolic links are not followed), sorted.

    Raises
    ------
    InputError
        If ``src`` is not a folder or holds no file.
    """
    if not src.is_dir():
        raise InputError("the input must be a folder of DICOM/NIfTI files", path=src)
    files = sorted(p for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    if not files:
        raise InputError(
            "the input folder holds no files (symbolic links are not followed); "
            "nothing to de-identify",
            path=src,
        )
    return files


def write_local_audit(path: Path, rows: list[dict[str, str]]) -> None:
    """Write the local audit (JSON lines, mode 0600, replaced atomically).

    One line per input file that could not be de-identified: ``input`` (the path as the
    user gave it), ``input_hash`` (the keyed hash that the output tree's audit lists),
    ``status`` and ``reason``. It names the user's own files, so it stays with them,
    outside the output tree.
    """
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise DeidError("the local audit must be a regular file, not a link or folder", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            for row in rows:
                stream.write(json.dumps(row, sort_keys=True) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_link_table(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """Merge ``rows`` into the CSV link table at ``path`` with mode 0600.

    Columns: ``kind,original,replacement``. This file re-identifies: keep it inside the
    hospital.
    """
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise DeidError("the link table must be a regular file, not a link or folder", path=path)
    existing: set[tuple[str, str, str]] = set()
    if path.exists():
        with open(path, newline="", encoding="utf-8") as stream:
            reader = csv.reader(stream)
            next(reader, None)
            existing = {(r[0], r[1], r[2]) for r in reader if len(r) == 3}
    merged = sorted(existing | set(rows))
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh, unpredictable name created exclusively: a planted file or symlink at a
    # guessable temporary name cannot redirect the table
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(["kind", "original", "replacement"])
            writer.writerows(merged)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _iterate(
    files: list[Path],
    done: frozenset[str],
    *,
    config: DeidConfig,
    key: DeidKey,
    rules: PixelRules | None,
    dst: Path,
    workers: int,
) -> Iterator[tuple[Path, dict[str, Any]]]:
    if workers <= 1:
        worker = _Worker(config, key, rules, dst)
        for path in files:
            yield path, worker.run(path, done)
        return
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(config, key, rules, dst)
    ) as pool:
        chunk = max(1, min(64, len(files) // (workers * 4) or 1))
        results = pool.map(_run_in_worker, [(p, done) for p in files], chunksize=chunk)
        yield from zip(files, results, strict=True)


def deidentify_tree(
    src: Path,
    dst: Path,
    *,
    config: DeidConfig,
    key: DeidKey,
    pixel_rules: PixelRules | None = None,
    workers: int = 1,
    link_table: Path | None = None,
    local_audit: Path | None = None,
) -> DeidRunSummary:
    """De-identify every DICOM and NIfTI file under ``src`` into ``dst``.

    DICOM outputs are named ``DST/<pseudonym>/<study UID>/<series UID>/<SOP UID>.dcm`` (all
    new values: no original text reaches a path); NIfTI outputs ``DST/nifti/<letters>.nii.gz``.
    Files that are neither are not copied. A JSON line per input file is appended to
    ``DST/deid_audit.jsonl``: keyed input hash, status, output path, counts per action,
    refusal reason, profile fingerprint, never a PHI value. Files whose keyed hash the audit
    already lists as written with the same profile are skipped, so an interrupted run
    resumes; a changed profile processes everything again (outputs that differ from an
    existing file are reported as ``duplicate_output``, never overwritten).

    Parameters
    ----------
    src, dst
        Input and output folders; ``dst`` must lie outside ``src`` (never in place).
    config
        The de-identification profile.
    key
        The project secret.
    pixel_rules
        ``--clean-pixels`` rules; without them burned-in-risk files are refused.
    workers
        Processes; 1 runs in this process.
    link_table
        If given, a CSV (mode 0600, outside ``dst``) mapping originals to replacements.
    local_audit
        If given, a JSON-lines file (mode 0600, outside ``dst``) naming each input that
        could not be de-identified by its path (see :func:`write_local_audit`).

    Raises
    ------
    DeidError
        On an in-place request, or a link table or local audit inside ``dst``.
    InputError
        If ``src`` is not a folder or holds no file.
    """
    check_output_locations(src, dst, link_table, local_audit)
    files = list_input_files(src)
    dst.mkdir(parents=True, exist_ok=True)
    audit_path = dst / AUDIT_NAME
    profile = compute_profile_fingerprint(config, pixel_rules)
    done = read_done_hashes(audit_path, profile)
    summary = DeidRunSummary(audit_path=audit_path)
    links: list[tuple[str, str, str]] = []
    failures: list[dict[str, str]] = []
    results = _iterate(
        files, done, config=config, key=key, rules=pixel_rules, dst=dst, workers=workers
    )
    with open(audit_path, "a", encoding="utf-8") as audit:
        for path, outcome in progress(results, description="deid", total=len(files), unit="file"):
            record = outcome["record"]
            record["profile"] = profile
            summary.statuses[record["status"]] += 1
            if "refused" in outcome:
                summary.refused.append((path.relative_to(src).as_posix(), outcome["refused"]))
            if record["status"] in FAILURE_STATUSES:
                given = str(src / path.relative_to(src))  # the user's own path, as given
                summary.failed.append((given, record["status"], record.get("reason", "")))
                failures.append(
                    {
                        "input": given,
                        "input_hash": record.get("input_hash", ""),
                        "status": record["status"],
                        "reason": record.get("reason", ""),
                    }
                )
            links += outcome.get("links", [])
            if not outcome.get("skip_audit"):
                audit.write(json.dumps(record, sort_keys=True) + "\n")
                audit.flush()
    if link_table is not None:
        write_link_table(link_table, links)
        summary.link_table = link_table
    if local_audit is not None:
        write_local_audit(local_audit, failures)
        summary.local_audit = local_audit
    logger.info("de-identified: %s", dict(summary.statuses))
    return summary
