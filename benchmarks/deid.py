"""De-identification throughput: medseg deid vs dicognito, same files, same process.

Builds a 1,000-file CT series in a temporary folder (copies of one real CT slice from the
bundled TotalSegmentator sample, each with its own SOP Instance UID, position and instance
number, and with patient, physician, institution and date attributes filled in), then
de-identifies it with

* medseg: ``deidentify_tree`` with the Basic Profile (one process: read, keyed input hash,
  Annex E actions, new tree named by pseudonym/UIDs, audit line per file), and
* dicognito (PyPI): ``Anonymizer.anonymize`` on each dataset and ``save_as`` into one
  folder by SOP Instance UID, the same work its command line does,

and prints files per second for both and the ratio. Each tool runs ``--repeats`` times,
alternating, on a warm page cache; the best time counts.

Run: PYTHONPATH=$PWD python benchmarks/deid.py [--files 1000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import pydicom
from dicognito.anonymizer import Anonymizer
from pydicom.uid import generate_uid

from medseg.deid import DeidConfig, DeidKey, deidentify_tree

REPO = Path(__file__).resolve().parent.parent
SLICE_DIR = REPO / "data" / "ct_totalsegmentator" / "example_ct_dicom"


def build_series(folder: Path, n_files: int) -> None:
    """Write ``n_files`` copies of a real CT slice as one series with PHI filled in."""
    template = pydicom.dcmread(sorted(SLICE_DIR.iterdir())[0])
    template.SOPClassUID = template.file_meta.MediaStorageSOPClassUID
    template.PatientName = "BENCHMARK^PATIENT^A"
    template.PatientID = "BENCH0001"
    template.PatientBirthDate = "19600203"
    template.PatientSex = "F"
    template.StudyDate = template.SeriesDate = template.AcquisitionDate = "20230314"
    template.ContentDate = "20230314"
    template.StudyTime = "101010"
    template.AccessionNumber = "ACC123456"
    template.StudyID = "S1"
    template.InstitutionName = "General Hospital"
    template.ReferringPhysicianName = "DOC^REFERRING"
    template.OperatorsName = "TECH^ONE"
    template.StationName = "CTSTATION1"
    template.StudyDescription = "CT ABDOMEN"
    template.SeriesDescription = "AXIAL 1MM"
    template.StudyInstanceUID = generate_uid(entropy_srcs=["bench-study"])
    template.SeriesInstanceUID = generate_uid(entropy_srcs=["bench-series"])
    template.FrameOfReferenceUID = generate_uid(entropy_srcs=["bench-for"])
    position = [float(v) for v in template.ImagePositionPatient]
    folder.mkdir(parents=True)
    for index in range(n_files):
        uid = generate_uid(entropy_srcs=["bench-sop", str(index)])
        template.SOPInstanceUID = uid
        template.file_meta.MediaStorageSOPInstanceUID = uid
        template.InstanceNumber = index + 1
        template.ImagePositionPatient = [position[0], position[1], position[2] - index * 1.0]
        template.SliceLocation = position[2] - index * 1.0
        template.save_as(folder / f"IM{index:05d}.dcm", enforce_file_format=True)


def run_medseg(src: Path, dst: Path) -> int:
    key = DeidKey(b"benchmark-secret-0123456789abcdef")
    summary = deidentify_tree(src, dst, config=DeidConfig(), key=key)
    return summary.statuses["written"]


def run_dicognito(src: Path, dst: Path) -> int:
    anonymizer = Anonymizer(seed="benchmark")
    dst.mkdir(parents=True)
    written = 0
    for path in sorted(src.iterdir()):
        with pydicom.dcmread(path) as dataset:
            anonymizer.anonymize(dataset)
            dataset.save_as(dst / f"{dataset.SOPInstanceUID}.dcm")
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="deid-bench-") as tmp:
        root = Path(tmp)
        src = root / "series"
        build_series(src, args.files)
        for path in src.iterdir():  # warm the page cache for both tools alike
            path.read_bytes()
        best = {"medseg": float("inf"), "dicognito": float("inf")}
        for repeat in range(args.repeats):
            for name, runner in (("medseg", run_medseg), ("dicognito", run_dicognito)):
                out = root / f"{name}-{repeat}"
                start = time.perf_counter()
                written = runner(src, out)
                seconds = time.perf_counter() - start
                if written != args.files:
                    raise SystemExit(f"{name} wrote {written} of {args.files} files")
                best[name] = min(best[name], seconds)
                rate = args.files / seconds
                print(f"{name:>9} run {repeat + 1}: {seconds:6.2f} s ({rate:6.1f} files/s)")
                shutil.rmtree(out)
        medseg_rate = args.files / best["medseg"]
        dicognito_rate = args.files / best["dicognito"]
        megabytes = sum(p.stat().st_size for p in src.iterdir()) / 1e6
        print(f"files: {args.files} (512x512 CT, {megabytes:.0f} MB)")
        print(f"medseg deid (Basic Profile, 1 process): {medseg_rate:7.1f} files/s")
        print(f"dicognito {_dicognito_version()} (1 process):        {dicognito_rate:7.1f} files/s")
        print(f"ratio medseg / dicognito: {medseg_rate / dicognito_rate:.2f}x (goal >= 2x)")


def _dicognito_version() -> str:
    from importlib.metadata import version

    return version("dicognito")


if __name__ == "__main__":
    main()
