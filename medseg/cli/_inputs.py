"""Inputs as users have them (files, folders of images, glob patterns) and the output path
of each, decided before any heavy import.

A folder holding image files (2D images, NIfTI, NRRD, MHA) stands for those files, one
output each; a folder without any is a DICOM series. ``--out`` naming a file (a known
image suffix) writes that file; anything else is a folder that receives
``<input stem><tag>.<ext>``. The output type follows the input: a 2D image gives a PNG
(TIFF for a TIFF), a volume gives NIfTI, unless ``--format`` says otherwise.
"""

from __future__ import annotations

import enum
import glob
from collections.abc import Sequence
from pathlib import Path

from medseg.core import ConfigError, InputError, check_distinct_outputs, check_output_path

#: 2D image suffixes read by ``medseg.io.read_image_2d`` (kept equal by a test; not
#: imported from ``medseg.io`` so that argument checks stay light).
IMAGE_2D_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".gif", ".bmp")
#: Volume file suffixes ``medseg.io.read_image`` reads.
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
#: Suffixes that make ``--out`` a file rather than a folder.
OUTPUT_FILE_SUFFIXES = (".png", ".tif", ".tiff", ".nii.gz", ".nii", ".nrrd", ".mha")


class OutputFormat(str, enum.Enum):
    """``--format``: what a mask is written as."""

    AUTO = "auto"
    PNG = "png"
    TIF = "tif"
    NIFTI = "nifti"


_FORMAT_SUFFIX = {OutputFormat.PNG: ".png", OutputFormat.TIF: ".tif", OutputFormat.NIFTI: ".nii.gz"}


def _has_suffix(path: Path, suffixes: Sequence[str]) -> bool:
    return path.name.lower().endswith(tuple(suffixes))


def is_2d_image(path: Path) -> bool:
    """Whether ``path`` names a 2D image file (by suffix)."""
    return _has_suffix(path, IMAGE_2D_SUFFIXES)


def is_output_file(path: Path) -> bool:
    """Whether ``--out path`` names a file (a known image suffix) rather than a folder."""
    return _has_suffix(path, OUTPUT_FILE_SUFFIXES) and not path.is_dir()


def output_stem(path: Path) -> str:
    """The input's file name without ``.nii.gz``/``.nii``/its extension."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem if path.suffix else name


def expand_inputs(given: Sequence[Path], *, what: str = "input") -> list[Path]:
    """Files named by ``given``: files as they are, folders of images as their images
    (sorted), DICOM folders as themselves, glob patterns (``'scans/*.png'``) as their
    matches (sorted).

    Raises
    ------
    InputError
        If a path does not exist or a pattern matches nothing.
    """
    paths: list[Path] = []
    for path in given:
        text = str(path)
        if not path.exists() and glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"{what} pattern matches no file", path=path)
            paths += [p for p in matches if p.is_file() or p.is_dir()]
            continue
        if not path.exists():
            raise InputError(f"{what} not found", path=path)
        if path.is_dir():
            images = sorted(
                p
                for p in path.iterdir()
                if p.is_file()
                and not p.name.startswith(".")
                and _has_suffix(p, (*IMAGE_2D_SUFFIXES, *VOLUME_SUFFIXES))
            )
            paths += images or [path]  # no image files: a DICOM series folder
            continue
        paths.append(path)
    return paths


def output_suffix(source: Path, fmt: OutputFormat) -> str:
    """The mask suffix for ``source``: ``fmt``'s, else PNG for 2D images (TIFF for TIFF),
    NIfTI for volumes."""
    if fmt is not OutputFormat.AUTO:
        return _FORMAT_SUFFIX[fmt]
    if _has_suffix(source, (".tif", ".tiff")):
        return ".tif"
    return ".png" if is_2d_image(source) else ".nii.gz"


def check_2d_output(source: Path, out: Path, *, what: str = "--out") -> None:
    """Refuse a PNG/TIFF output for an input that is not a 2D image (a volume's mask)."""
    if _has_suffix(out, (".png", ".tif", ".tiff")) and not is_2d_image(source):
        raise ConfigError(
            f"{what} {out.name!r} is a 2D image file but the input is a volume or DICOM "
            "series; write .nii.gz",
            path=out,
        )


def plan_outputs(
    inputs: Sequence[Path],
    out: Path,
    *,
    tag: str,
    fmt: OutputFormat = OutputFormat.AUTO,
    overwrite: bool = False,
    reads: Sequence[Path] = (),
) -> list[Path]:
    """One output path per input, all checked (not an input, distinct, absent unless
    ``overwrite``, writable) before any work.

    ``out`` with a file suffix is the one output (then exactly one input); otherwise a
    folder receiving ``<stem><tag><suffix>``.

    Raises
    ------
    ConfigError
        If ``out`` is a file for several inputs, or two outputs collide.
    OutputExistsError, OutputPathError
        As :func:`medseg.core.check_output_path`.
    """
    every_input = [*inputs, *reads]
    if is_output_file(out):
        if len(inputs) != 1:
            raise ConfigError(
                f"--out names one file but {len(inputs)} inputs were given; give a folder",
                path=out,
            )
        check_2d_output(inputs[0], out)
        return [check_output_path(out, overwrite=overwrite, inputs=every_input, what="--out")]
    folder = check_output_path(out, folder=True, inputs=every_input, what="--out")
    outputs = [folder / f"{output_stem(p)}{tag}{output_suffix(p, fmt)}" for p in inputs]
    for source, path in zip(inputs, outputs, strict=True):
        check_2d_output(source, path, what="--format")
    check_distinct_outputs(outputs, overwrite=overwrite)
    return outputs


def companion_path(labels: Path, tag: str, suffix: str) -> Path:
    """A file beside ``labels``: ``x_labels.png`` → ``x<tag><suffix>`` (``_labels``
    dropped), ``mask.nii.gz`` → ``mask<tag><suffix>``."""
    stem = output_stem(labels).removesuffix("_labels")
    return labels.with_name(f"{stem}{tag}{suffix}")
