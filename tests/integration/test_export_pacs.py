"""PACS round trip against a real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``).

Orthanc runs on 127.0.0.1 with a throwaway JSON config in a temporary folder (free DICOM
and HTTP ports, storage there, no authentication, only our AE title known), and is always
stopped in teardown. The source series and its SEG are sent with C-STORE and queried back
by UID with C-FIND; the RTSTRUCT goes in with DICOMweb STOW-RS and is found the same way.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg.cli import main
from medseg.core import ExitCode, ExportError
from medseg.export import (
    PacsNode,
    build_structures,
    find_series_instances,
    map_mask_to_series,
    read_source_series,
    send_dicom_files,
    send_dicomweb,
    verify_stored,
    write_dicom_seg,
    write_rtstruct,
    write_source_series,
)
from medseg.io import read_nifti

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CALLING_AET = "MEDSEGTEST"
ORTHANC_AET = "ORTHANCTEST"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(process: subprocess.Popen[bytes], dicom_port: int, http_port: int) -> None:
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited early with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", dicom_port), timeout=1.0):
                pass
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/system", timeout=2.0):
                return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError("Orthanc did not open its ports within 60 s")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A throwaway Orthanc on 127.0.0.1; stopped (killed if need be) in teardown."""
    executable = shutil.which("Orthanc")
    assert executable, "Orthanc missing: run scripts/install_system_deps.sh as root"
    assert DICOMWEB_PLUGIN.is_file(), "orthanc-dicomweb missing: run install_system_deps.sh"
    root = tmp_path_factory.mktemp("orthanc")
    dicom_port, http_port = _free_port(), _free_port()
    config = {
        "Name": "medseg-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "DicomAet": ORTHANC_AET,
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomModalities": {"medseg": [CALLING_AET, "127.0.0.1", 104]},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    config_path = root / "orthanc.json"
    config_path.write_text(json.dumps(config))
    log = open(root / "orthanc.log", "wb")  # noqa: SIM115 - closed in teardown
    process = subprocess.Popen([executable, str(config_path)], stdout=log, stderr=log)
    try:
        _wait_ready(process, dicom_port, http_port)
        yield {
            "node": PacsNode(
                host="127.0.0.1", port=dicom_port, called_aet=ORTHANC_AET, calling_aet=CALLING_AET
            ),
            "http": f"http://127.0.0.1:{http_port}",
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, ct_dicom_dir: Path, repo_root: Path
) -> dict[str, object]:
    """The real CT with completed UIDs, and a SEG and RTSTRUCT of three of its organs."""
    out = tmp_path_factory.mktemp("export")
    series = read_source_series(ct_dicom_dir, complete_uids=True)
    mask = read_nifti(repo_root / "data/ct_totalsegmentator/example_seg_dicom.nii.gz")
    labels = map_mask_to_series(mask, series).array
    keep = np.isin(labels, [1, 5, 6])
    small = series.volume.with_array(np.where(keep, labels, 0).astype(np.uint8))
    structures = build_structures([1, 5, 6], names={1: "spleen", 5: "liver", 6: "stomach"})
    source_files = write_source_series(series, out / "source")
    seg = write_dicom_seg(small, series, structures, out / "seg.dcm")
    rtstruct = write_rtstruct(small, series, structures, out / "rtstruct.dcm")
    return {"series": series, "source": source_files, "seg": seg, "rtstruct": rtstruct}


def test_cstore_then_cfind_finds_series_and_seg(
    orthanc: dict[str, object], exported: dict[str, object]
) -> None:
    node = orthanc["node"]
    assert isinstance(node, PacsNode)
    files = [*exported["source"], exported["seg"]]  # type: ignore[misc]
    result = send_dicom_files(files, node)
    assert not result.failed
    assert len(result.stored) == 21
    counts = verify_stored(node, result)
    series = exported["series"]
    source_uid = str(series.datasets[0].SeriesInstanceUID)  # type: ignore[attr-defined]
    assert counts[source_uid] == 20
    seg = pydicom.dcmread(exported["seg"], stop_before_pixels=True)  # type: ignore[arg-type]
    found = find_series_instances(node, str(seg.StudyInstanceUID), str(seg.SeriesInstanceUID))
    assert found == {str(seg.SOPInstanceUID)}
    # The SEG shares the source's study: one study, two series on the PACS.
    assert str(seg.StudyInstanceUID) == str(series.datasets[0].StudyInstanceUID)  # type: ignore[attr-defined]


def test_stow_rs_then_cfind(orthanc: dict[str, object], exported: dict[str, object]) -> None:
    node = orthanc["node"]
    assert isinstance(node, PacsNode)
    rtstruct = pydicom.dcmread(exported["rtstruct"], stop_before_pixels=True)  # type: ignore[arg-type]
    sent = send_dicomweb([exported["rtstruct"]], f"{orthanc['http']}/dicom-web")  # type: ignore[list-item]
    assert sent == (str(rtstruct.SOPInstanceUID),)
    found = find_series_instances(
        node, str(rtstruct.StudyInstanceUID), str(rtstruct.SeriesInstanceUID)
    )
    assert found == {str(rtstruct.SOPInstanceUID)}


def test_unknown_calling_aet_is_refused(
    orthanc: dict[str, object], exported: dict[str, object]
) -> None:
    node = orthanc["node"]
    assert isinstance(node, PacsNode)
    stranger = PacsNode(
        host=node.host, port=node.port, called_aet=node.called_aet, calling_aet="STRANGER"
    )
    # Orthanc accepts the association but drops it at the C-STORE of an unknown AE.
    result = send_dicom_files([exported["seg"]], stranger)  # type: ignore[list-item]
    assert result.failed == (str(pydicom.dcmread(exported["seg"]).SOPInstanceUID),)  # type: ignore[arg-type]
    assert result.stored == ()


def test_cli_pacs_sends_and_verifies(
    orthanc: dict[str, object], exported: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    node = orthanc["node"]
    assert isinstance(node, PacsNode)
    code = main(
        [
            "export", "pacs",
            "--host", node.host, "--port", str(node.port),
            "--aet", CALLING_AET, "--called-aet", ORTHANC_AET,
            str(exported["seg"]),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert "verified by C-FIND: 1 of 1" in out


def test_cli_pacs_wrong_port_is_one_line_export_error(
    exported: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", "pacs", "--host", "127.0.0.1", "--port", str(_free_port()),
                 "--aet", CALLING_AET, str(exported["seg"])])  # fmt: skip
    err = capsys.readouterr().err
    assert code == ExitCode.EXPORT
    assert err.count("\n") == 1
    assert "no DICOM association" in err
    assert ExportError.exit_code == ExitCode.EXPORT
