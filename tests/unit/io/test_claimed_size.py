"""One size check in the readers before any allocation (issue 17, item 2)."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.core import InputError
from medseg.io import read_image, write_image
from medseg.io._volume import Volume


def _nifti_claiming(tmp_path: Path, dims: tuple[int, int, int]) -> bytes:
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), tmp_path / "s.nii")
    raw = bytearray((tmp_path / "s.nii").read_bytes())
    raw[40:56] = struct.pack("<8h", 3, *dims, 1, 1, 1, 1)
    return bytes(raw[:352])


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_header_claiming_more_than_the_file_is_refused_without_allocating(
    tmp_path: Path, suffix: str
) -> None:
    data = _nifti_claiming(tmp_path, (1024, 1024, 512))  # 2 GiB of float32 in 352 bytes
    path = tmp_path / f"huge{suffix}"
    path.write_bytes(gzip.compress(data, mtime=0) if suffix == ".nii.gz" else data)
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"header claims 2\.0 GiB") as caught:
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(caught.value)
    assert peak < 50 * 2**20


def test_compressed_nifti_within_the_deflate_bound_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "zeros.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((64, 64, 64), np.float32), np.eye(4)), path)
    assert path.stat().st_size * 1032 > 64**3 * 4  # highly compressible, yet honest
    assert read_image(path).array.shape == (64, 64, 64)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_itk_header_claiming_more_than_the_file_is_refused(tmp_path: Path, suffix: str) -> None:
    good = tmp_path / f"good{suffix}"
    write_image(Volume(array=np.ones((4, 5, 6), np.int16), affine=np.eye(4)), good)
    assert read_image(good).array.shape == (4, 5, 6)
    header = good.read_bytes()
    if suffix == ".nrrd":
        text = (
            b"NRRD0004\ntype: float\ndimension: 3\nsizes: 2048 2048 1024\n"
            b"endian: little\nencoding: raw\n\n"
        )
    else:
        text = (
            b"ObjectType = Image\nNDims = 3\nDimSize = 2048 2048 1024\n"
            b"ElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
        )
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(text + header[-64:])
    with pytest.raises(InputError, match=r"header claims 16\.0 GiB"):
        read_image(bad)
