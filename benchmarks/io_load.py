"""Benchmark: load a 512×512 DICOM series with medseg vs SimpleITK, in the same run.

The series is generated from the bundled real CT slices (TotalSegmentator example): each
of the 20 slices is written again with a new SOPInstanceUID and position until there are
``--slices`` files, uncompressed (explicit VR little endian) by default, or kept in their
original JPEG 2000 encoding with ``--compressed``. Both readers start from the folder:

- medseg: ``read_dicom_series(folder)`` (header scan + pixel read/decode, rescale to HU).
- SimpleITK: ``GetGDCMSeriesIDs`` + ``GetGDCMSeriesFileNames`` + ``ImageSeriesReader``
  (rescale to HU) + ``GetArrayViewFromImage``.

Each reader runs once to warm the page cache, then ``--repeats`` times alternately; the
best and median times of each are reported. The arrays are checked equal before timing is trusted.

    python benchmarks/io_load.py                   # 300 uncompressed slices
    python benchmarks/io_load.py --compressed --slices 60
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import generate_uid

from medseg.io import read_dicom_series

REPO = Path(__file__).resolve().parent.parent
CT_DIR = REPO / "data/ct_totalsegmentator/example_ct_dicom"


def write_series(folder: Path, n_slices: int, *, compressed: bool) -> None:
    """Write ``n_slices`` copies of the real CT slices as one new series in ``folder``."""
    sources = [pydicom.dcmread(p) for p in sorted(CT_DIR.iterdir())]
    if not compressed:
        for ds in sources:
            ds.decompress()
    series_uid = generate_uid()
    for k in range(n_slices):
        ds = copy.deepcopy(sources[k % len(sources)])
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-249.51, -437.51, -800.0 + 2.0 * k]
        ds.save_as(folder / f"{(k * 7919) % n_slices:05d}.dcm", enforce_file_format=True)


def load_medseg(folder: Path, n_threads: int | None) -> np.ndarray:
    return read_dicom_series(folder, n_threads=n_threads).array


def load_simpleitk(folder: Path) -> tuple[sitk.Image, np.ndarray]:
    """The image is returned with its array view: the view is only valid while it lives."""
    reader = sitk.ImageSeriesReader()
    (series,) = reader.GetGDCMSeriesIDs(str(folder))
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series))
    image = reader.Execute()
    return image, sitk.GetArrayViewFromImage(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="medseg reader threads")
    parser.add_argument("--compressed", action="store_true", help="keep JPEG 2000 encoding")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medseg-io-bench-") as tmp:
        folder = Path(tmp)
        write_series(folder, args.slices, compressed=args.compressed)
        ours = load_medseg(folder, args.threads)  # warm-up, and correctness check
        _image, reference = load_simpleitk(folder)
        if not np.array_equal(ours, np.transpose(reference, (2, 1, 0))):
            raise SystemExit("medseg and SimpleITK arrays differ: timing not meaningful")
        times: dict[str, list[float]] = {"medseg": [], "simpleitk": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            load_medseg(folder, args.threads)
            times["medseg"].append(time.perf_counter() - start)
            start = time.perf_counter()
            load_simpleitk(folder)
            times["simpleitk"].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in times.items()}
    median = {name: float(np.median(values)) for name, values in times.items()}
    kind = "JPEG 2000" if args.compressed else "uncompressed"
    print(f"series: {args.slices} slices 512x512 int16 ({kind}), {args.repeats} runs each")
    for name in ("medseg", "simpleitk"):
        print(
            f"{name:10s} best {best[name]:.3f} s ({args.slices / best[name]:.0f} slices/s), "
            f"median {median[name]:.3f} s ({args.slices / median[name]:.0f} slices/s)"
        )
    print(
        f"ratio (medseg speed / SimpleITK speed): best {best['simpleitk'] / best['medseg']:.2f}, "
        f"median {median['simpleitk'] / median['medseg']:.2f}"
    )


if __name__ == "__main__":
    main()
