"""One size check for every reader, before any pixel buffer is allocated.

A header states how many bytes of image data follow; the file holds at most its own size
(uncompressed) or its size times the largest ratio the compression can reach (deflate:
1032:1). A header that claims more is corrupt or hostile: refusing it here keeps a 93-byte
file from allocating gigabytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from medseg.core import InputError

#: Largest expansion of a deflate (gzip, zlib, PNG) stream: 1032 output bytes per input byte.
DEFLATE_MAX_RATIO = 1032
#: Bound used for image formats whose codecs can exceed deflate (LZW, PackBits, JPEG…).
GENERIC_MAX_RATIO = 4096


def _format_bytes(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover


def claimed_bytes(shape: Sequence[int], itemsize: int) -> int:
    """Bytes an array of ``shape`` and ``itemsize`` needs (refusing negative sizes)."""
    if any(int(n) < 0 for n in shape) or itemsize <= 0:
        raise ValueError(f"invalid array shape {tuple(shape)} or item size {itemsize}")
    return math.prod(int(n) for n in shape) * int(itemsize)


def check_claimed_size(
    path: str | Path,
    claimed: int,
    *,
    available: int | None = None,
    max_ratio: int = 1,
    what: str = "image data",
) -> None:
    """Refuse a file whose header claims more data than it can hold.

    Parameters
    ----------
    path
        The file (named in the error).
    claimed
        Bytes the header says the data (plus any data offset) occupy.
    available
        Bytes that hold the data; default: the file's size.
    max_ratio
        1 for uncompressed data; the codec's largest expansion ratio otherwise.

    Raises
    ------
    InputError
        If ``claimed`` exceeds ``available * max_ratio``.
    """
    path = Path(path)
    if available is None:
        available = path.stat().st_size
    if claimed <= available * max_ratio:
        return
    if max_ratio == 1:
        detail = f"the file holds {_format_bytes(available)}"
    else:
        detail = (
            f"{_format_bytes(available)} of compressed data can hold at most "
            f"{_format_bytes(available * max_ratio)}"
        )
    raise InputError(
        f"header claims {_format_bytes(claimed)} of {what} but {detail}; the file is "
        "truncated or its header is corrupt",
        path=path,
    )
