"""2D images (PNG, TIFF, JPEG, GIF, BMP): fundus, microscopy and label maps as Volumes.

A 2D image becomes a one-slice Volume: array axes ``(column, row, 1)`` plus a trailing
channel axis for RGB, and affine ``diag(-sx, -sy, 1, 1)`` (axis codes ``LPS``, pixel size
1 mm unless the file states one). This is the same layout as a DICOM slice, so
``to_display_slice(volume.array[:, :, 0])`` gives the image as it is displayed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.core import InputError, atomic_output
from medseg.io._size import (
    DEFLATE_MAX_RATIO,
    GENERIC_MAX_RATIO,
    check_claimed_size,
    claimed_bytes,
)
from medseg.io._volume import Volume

IMAGE_2D_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".gif", ".bmp")


#: Bits per pixel as stored, by Pillow mode (unknown modes: 64, the widest).
_MODE_BITS = {"1": 1, "L": 8, "P": 8, "LA": 16, "PA": 16, "RGB": 24, "RGBA": 32, "CMYK": 32}
_MODE_BITS |= {"I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32, "YCbCr": 24}


def _read_pixels(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tiff:
                series = tiff.series[0]
                claimed = claimed_bytes(series.shape, np.dtype(series.dtype).itemsize)
                check_claimed_size(path, claimed, max_ratio=GENERIC_MAX_RATIO)
                return np.asarray(series.asarray())
        except InputError:
            raise
        except Exception:  # not every TIFF is tifffile's: fall back to Pillow below
            pass
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            columns, rows = opened.size
            bits = _MODE_BITS.get(opened.mode, 64)
            claimed = rows * (1 + -(-columns * bits // 8))  # stored bytes (+ PNG filter byte)
            ratio = DEFLATE_MAX_RATIO if opened.format == "PNG" else GENERIC_MAX_RATIO
            check_claimed_size(path, claimed, max_ratio=ratio)
            opened.seek(0)  # first frame of an animated GIF
            image: Image.Image = opened
            if image.mode == "P":
                image = (
                    image.convert("RGB")
                    if "transparency" not in image.info
                    else image.convert("RGBA")
                )
            return np.asarray(image)
    except InputError:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
    ) as err:
        raise InputError(f"cannot read 2D image ({type(err).__name__})", path=path) from err


def read_image_2d(path: str | Path) -> Volume:
    """Read a 2D image into a one-slice Volume (see the module docstring for the layout).

    Grey images give ``(columns, rows, 1)``; RGB/RGBA give ``(columns, rows, 1, C)``. The
    dtype is kept (uint8, uint16 …).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("image file not found", path=path)
    pixels = _read_pixels(path)
    if pixels.ndim == 3 and pixels.shape[-1] in (1, 3, 4):
        array = np.swapaxes(pixels, 0, 1)[:, :, None, :]
        if array.shape[-1] == 1:
            array = array[..., 0]
    elif pixels.ndim == 2:
        array = np.swapaxes(pixels, 0, 1)[:, :, None]
    else:
        raise InputError(
            f"expected a 2D grey or RGB image, found array shape {pixels.shape}", path=path
        )
    return Volume(
        array=np.ascontiguousarray(array),
        affine=np.diag([-1.0, -1.0, 1.0, 1.0]),
        metadata={"format": path.suffix.lower().lstrip("."), "is_2d": True},
    )


def collapse_grey_channels(array: np.ndarray, *, what: str, path: str | Path) -> np.ndarray:
    """A label map read from an image file with a colour axis (GIF/PNG stored as RGB) as one
    channel; refuses a map whose channels differ (a colour image is not a label map).

    Raises
    ------
    InputError
        If the trailing channel axis holds different values per channel.
    """
    if array.ndim != 4:
        return array
    if not all(np.array_equal(array[..., 0], array[..., c]) for c in range(array.shape[3])):
        raise InputError(f"{what} must be a grey label map, found colour channels", path=path)
    return array[..., 0]


#: Suffixes :func:`write_image_2d` writes.
WRITE_2D_SUFFIXES = (".png", ".tif", ".tiff")


def _pixels_for_file(volume: Volume, path: Path) -> np.ndarray:
    """``volume``'s one slice as stored in an image file: ``(rows, columns[, C])``."""
    array = volume.array
    if array.ndim == 4 and array.shape[2] == 1:
        return np.swapaxes(array[:, :, 0, :], 0, 1)
    if array.ndim == 3 and array.shape[2] == 1:
        return np.swapaxes(array[:, :, 0], 0, 1)
    if array.ndim == 2:
        return np.swapaxes(array, 0, 1)
    raise InputError(
        f"a PNG/TIFF holds one 2D image, found array shape {array.shape}; write the volume "
        "as .nii.gz",
        path=path,
    )


def write_image_2d(volume: Volume, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a one-slice ``volume`` atomically as PNG or TIFF in the image's own ``(H, W)``.

    The inverse of :func:`read_image_2d`: the file's rows are the volume's second axis, so
    a mask written from an image's grid overlays that image pixel for pixel. PNG holds
    integer label maps (``uint8`` when they fit, else ``uint16``) and 8-bit RGB(A);
    TIFF holds any dtype, a channel axis (probabilities: one page per class, ``(C, H, W)``)
    included. Pixel size is not stored.

    Raises
    ------
    InputError
        If the volume is not one slice, the suffix is not one of :data:`WRITE_2D_SUFFIXES`
        or a PNG cannot hold the values (floats, negatives, above 65535).
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_2D_SUFFIXES:
        raise InputError(
            f"unsupported 2D output: expected a name ending in {', '.join(WRITE_2D_SUFFIXES)}",
            path=path,
        )
    pixels = _pixels_for_file(volume, path)
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8)
    if suffix == ".png":
        pixels = _png_pixels(pixels, path)
        from PIL import Image

        with atomic_output(path, overwrite=overwrite) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
        return path
    import tifffile

    rgb = pixels.ndim == 3 and pixels.dtype == np.uint8 and pixels.shape[2] in (3, 4)
    if pixels.ndim == 3 and not rgb:
        pixels = np.moveaxis(pixels, 2, 0)  # one page per channel: (C, H, W)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tifffile.imwrite(
            tmp, np.ascontiguousarray(pixels), photometric="rgb" if rgb else "minisblack"
        )
    return path


def _png_pixels(pixels: np.ndarray, path: Path) -> np.ndarray:
    if pixels.ndim == 3:
        if pixels.dtype == np.uint8 and pixels.shape[2] in (3, 4):
            return np.ascontiguousarray(pixels)
        raise InputError(
            f"a PNG holds grey or 8-bit RGB(A) pixels, not {pixels.shape[2]} channels of "
            f"{pixels.dtype}; write .tif",
            path=path,
        )
    if not np.issubdtype(pixels.dtype, np.integer):
        raise InputError(f"a PNG holds integers, not {pixels.dtype}; write .tif", path=path)
    low, high = (int(pixels.min()), int(pixels.max())) if pixels.size else (0, 0)
    if low < 0 or high > 65535:
        raise InputError(f"a PNG holds values 0-65535, found {low}..{high}; write .tif", path=path)
    return np.ascontiguousarray(pixels.astype(np.uint8 if high <= 255 else np.uint16))
