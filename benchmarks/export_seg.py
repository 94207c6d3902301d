"""Time DICOM SEG writing for the real 31-structure CT: medseg vs bare highdicom.

medseg's ``write_dicom_seg`` = grid mapping + renumbering + segment descriptions (SNOMED CT,
colours, algorithm) + highdicom + atomic save. The reference is highdicom's
``Segmentation`` alone on an already frame-ordered array with minimal descriptions, saved
the same way, so the ratio is medseg's overhead over the library it wraps.

Run from the repository root: ``python benchmarks/export_seg.py``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import highdicom as hd
import numpy as np
import yaml
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medseg.export import (
    SegmentationType,
    build_structures,
    load_structure_codes,
    map_mask_to_series,
    read_source_series,
    write_dicom_seg,
    write_rtstruct,
)
from medseg.io import read_nifti

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3


def _best(function) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    series = read_source_series(
        ROOT / "data/ct_totalsegmentator/example_ct_dicom", complete_uids=True
    )
    mask = read_nifti(ROOT / "data/ct_totalsegmentator/example_seg_dicom.nii.gz")
    names = yaml.safe_load((ROOT / "data_manifests/ct_totalsegmentator.yaml").read_text())["labels"]
    values = [int(v) for v in np.unique(mask.array) if v]
    structures = build_structures(
        values,
        names=names,
        code_map=load_structure_codes(ROOT / "configs/export/structure_codes.yaml"),
    )
    frames = map_mask_to_series(mask, series).array.transpose(2, 1, 0)
    lookup = np.zeros(256, dtype=np.uint8)
    lookup[values] = np.arange(1, len(values) + 1)
    renumbered = np.ascontiguousarray(lookup[frames])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def reference() -> None:
            descriptions = [
                hd.seg.SegmentDescription(
                    segment_number=i,
                    segment_label=f"s{i}",
                    segmented_property_category=codes.SCT.AnatomicalStructure,
                    segmented_property_type=codes.SCT.AnatomicalStructure,
                    algorithm_type="MANUAL",
                )
                for i in range(1, len(values) + 1)
            ]
            seg = hd.seg.Segmentation(
                source_images=list(series.datasets),
                pixel_array=renumbered,
                segmentation_type="BINARY",
                segment_descriptions=descriptions,
                series_instance_uid=generate_uid(),
                series_number=1,
                sop_instance_uid=generate_uid(),
                instance_number=1,
                manufacturer="x",
                manufacturer_model_name="x",
                software_versions="x",
                device_serial_number="0",
                transfer_syntax_uid=ExplicitVRLittleEndian,
            )
            seg.save_as(out / "ref.dcm", enforce_file_format=True)

        rows = []
        for seg_type in (SegmentationType.BINARY, SegmentationType.LABELMAP):
            seconds = _best(
                lambda seg_type=seg_type: write_dicom_seg(
                    mask, series, structures, out / "m.dcm", segmentation_type=seg_type,
                    overwrite=True,
                )
            )  # fmt: skip
            rows.append((f"medseg write_dicom_seg {seg_type.value}", seconds))
        reference_s = _best(reference)
        rtstruct_s = _best(
            lambda: write_rtstruct(mask, series, structures, out / "r.dcm", overwrite=True)
        )
    print(f"real CT 512x512x20, {len(values)} structures, best of {REPEATS}:")
    for name, seconds in rows:
        print(f"  {name}: {seconds:.2f} s (ratio to bare highdicom {seconds / reference_s:.2f})")
    print(f"  bare highdicom Segmentation BINARY + save: {reference_s:.2f} s")
    print(f"  medseg write_rtstruct: {rtstruct_s:.2f} s")


if __name__ == "__main__":
    main()
