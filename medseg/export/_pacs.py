"""Send DICOM files to a PACS (C-STORE, or DICOMweb STOW-RS) and verify them with C-FIND."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medseg.core import ExportError, InputError

logger = logging.getLogger(__name__)

_MAX_CONTEXTS = 128  # DICOM limit of presentation contexts per association
_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PacsNode:
    """A DICOM peer: address, port, its AE title, and ours (the calling AE title)."""

    host: str
    port: int
    called_aet: str = "ANY-SCP"
    calling_aet: str = "MEDSEG"


@dataclass(frozen=True)
class StoreResult:
    """Outcome of sending files: SOP Instance UIDs stored, and those refused."""

    stored: tuple[str, ...]
    failed: tuple[str, ...]
    #: SeriesInstanceUID → (StudyInstanceUID, SOP Instance UIDs), for verification.
    series: dict[str, tuple[str, tuple[str, ...]]]


def collect_dicom_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (recursively) into DICOM files (by the ``DICM`` preamble)."""
    found = []
    for given in paths:
        given = Path(given)
        if given.is_dir():
            candidates = sorted(p for p in given.rglob("*") if p.is_file())
        elif given.is_file():
            candidates = [given]
        else:
            raise InputError("file or folder not found", path=given)
        for path in candidates:
            with open(path, "rb") as stream:
                stream.seek(128)
                if stream.read(4) == b"DICM":
                    found.append(path)
    if not found:
        raise InputError("no DICOM files (with the DICM preamble) among the given paths")
    return found


def _associate(node: PacsNode, contexts: Sequence[tuple[str, list[str]]]) -> object:
    from pynetdicom import AE

    ae = AE(ae_title=node.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = _TIMEOUT_S
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, syntaxes)
    assoc = ae.associate(node.host, node.port, ae_title=node.called_aet)
    if not assoc.is_established:
        raise ExportError(
            f"no DICOM association with {node.called_aet} at {node.host}:{node.port} "
            "(check host, port, AE titles and that the PACS knows our AE title)"
        )
    return assoc


def send_dicom_files(files: Sequence[str | Path], node: PacsNode) -> StoreResult:
    """C-STORE every file to ``node`` in one association per 128 SOP class/syntax pairs.

    Each file is offered in its own transfer syntax (compressed pixel data arrive
    unchanged), with the uncompressed little-endian syntaxes as a fallback (the file is
    decompressed in memory only if the peer refuses its compressed syntax).

    Raises
    ------
    ExportError
        If no association can be made; per-file refusals are returned in ``failed``.
    """
    datasets = [pydicom.dcmread(str(f)) for f in files]
    pairs: dict[str, set[str]] = defaultdict(set)
    for ds in datasets:
        pairs[str(ds.SOPClassUID)].add(str(ds.file_meta.TransferSyntaxUID))
    contexts = []
    for sop_class, syntaxes in sorted(pairs.items()):
        # One context per compressed syntax (a peer accepts one syntax per context), and
        # one with the uncompressed syntaxes as the fallback.
        for syntax in sorted(syntaxes - {ExplicitVRLittleEndian, ImplicitVRLittleEndian}):
            contexts.append((sop_class, [syntax]))
        contexts.append((sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
    if len(contexts) > _MAX_CONTEXTS:
        raise ExportError(
            f"{len(contexts)} SOP class/transfer syntax pairs exceed the {_MAX_CONTEXTS} "
            "presentation contexts of one association; send them in smaller groups"
        )
    stored, failed = [], []
    series: dict[str, tuple[str, list[str]]] = {}
    assoc = _associate(node, contexts)
    try:
        for ds in datasets:
            uid = str(ds.SOPInstanceUID)
            try:
                status = assoc.send_c_store(ds)  # type: ignore[attr-defined]
            except ValueError:  # the peer refused the compressed syntax: send it decompressed
                if not ds.file_meta.TransferSyntaxUID.is_compressed:
                    raise
                ds.decompress()
                status = assoc.send_c_store(ds)  # type: ignore[attr-defined]
            code = int(getattr(status, "Status", -1)) if status else -1
            if code in (0x0000, 0xB000, 0xB006, 0xB007):  # success or warning
                stored.append(uid)
                study_series = series.setdefault(
                    str(ds.SeriesInstanceUID), (str(ds.StudyInstanceUID), [])
                )
                study_series[1].append(uid)
            else:
                failed.append(uid)
                reason = f"status 0x{code:04X}" if code >= 0 else "no response"
                logger.warning("C-STORE refused one instance (%s)", reason)
    finally:
        assoc.release()  # type: ignore[attr-defined]
    logger.info("C-STORE: %d stored, %d failed", len(stored), len(failed))
    return StoreResult(
        stored=tuple(stored),
        failed=tuple(failed),
        series={k: (v[0], tuple(v[1])) for k, v in series.items()},
    )


def find_series_instances(node: PacsNode, study_uid: str, series_uid: str) -> set[str]:
    """C-FIND (Study Root, IMAGE level) the SOP Instance UIDs of one series on ``node``."""
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind,
    )

    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    query.SOPInstanceUID = ""
    found = set()
    assoc = _associate(
        node, [(StudyRootQueryRetrieveInformationModelFind, [ImplicitVRLittleEndian])]
    )
    try:
        for status, identifier in assoc.send_c_find(  # type: ignore[attr-defined]
            query, StudyRootQueryRetrieveInformationModelFind
        ):
            code = int(getattr(status, "Status", -1)) if status else -1
            if code in (0xFF00, 0xFF01) and identifier is not None:
                found.add(str(identifier.SOPInstanceUID))
            elif code not in (0x0000, 0xFF00, 0xFF01):
                raise ExportError(f"C-FIND failed with status 0x{code & 0xFFFF:04X}")
    finally:
        assoc.release()  # type: ignore[attr-defined]
    return found


def verify_stored(node: PacsNode, result: StoreResult) -> dict[str, int]:
    """C-FIND every sent series; return series UID → instances found of those sent.

    Raises
    ------
    ExportError
        If any sent instance is not found on the PACS.
    """
    counts = {}
    missing = 0
    for series_uid, (study_uid, sent) in result.series.items():
        found = find_series_instances(node, study_uid, series_uid)
        counts[series_uid] = len(set(sent) & found)
        missing += len(set(sent) - found)
    if missing:
        raise ExportError(f"{missing} sent instance(s) not found on the PACS by C-FIND")
    return counts


def send_dicomweb(
    files: Sequence[str | Path], url: str, *, timeout_s: float = 60.0
) -> tuple[str, ...]:
    """STOW-RS ``files`` to a DICOMweb service (``url`` is its root, e.g. …/dicom-web).

    All files go in one ``multipart/related; type="application/dicom"`` POST to
    ``{url}/studies``. Returns the SOP Instance UIDs sent.

    Raises
    ------
    ExportError
        If the server does not answer 200 (all stored).
    """
    import requests

    boundary = uuid.uuid4().hex
    parts, uids = [], []
    for path in files:
        data = Path(path).read_bytes()
        uids.append(str(pydicom.dcmread(str(path), stop_before_pixels=True).SOPInstanceUID))
        parts.append(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    try:
        response = requests.post(
            f"{url.rstrip('/')}/studies", data=body, headers=headers, timeout=timeout_s
        )
    except requests.RequestException as err:
        raise ExportError(f"STOW-RS request failed ({type(err).__name__})") from err
    if response.status_code != 200:
        raise ExportError(
            f"STOW-RS answered HTTP {response.status_code}; expected 200 (all stored)"
        )
    return tuple(uids)
